package config

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func lookupMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load(lookupMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.APIBaseURL != DefaultAPIBaseURL || c.APIBaseURLSet {
		t.Errorf("APIBaseURL = %q (set %v), want default", c.APIBaseURL, c.APIBaseURLSet)
	}
	if c.RefreshBefore != 240*time.Hour {
		t.Errorf("RefreshBefore = %v, want 240h", c.RefreshBefore)
	}
	if c.MaxRecordsPerRequest != 5000 || c.Addr != "127.0.0.1:8080" || c.DataDir != "./.pinlist" || c.ConnectionName != "pinlist" {
		t.Errorf("defaults wrong: %+v", c)
	}
}

func TestLoadValues(t *testing.T) {
	c, err := Load(lookupMap(map[string]string{
		EnvAPIBaseURL:           "http://127.0.0.1:8081/v5/",
		EnvAdAccountID:          "549755885175",
		EnvRefreshBefore:        "72h",
		EnvMaxRecordsPerRequest: "1900",
		EnvQueueURL:             " http://q ",
		EnvLedgerTable:          " pinlist-ledger ",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.APIBaseURL != "http://127.0.0.1:8081/v5" || !c.APIBaseURLSet {
		t.Errorf("APIBaseURL = %q", c.APIBaseURL)
	}
	if c.RefreshBefore != 72*time.Hour || c.MaxRecordsPerRequest != 1900 || c.QueueURL != "http://q" || c.AdAccountID != "549755885175" || c.LedgerTable != "pinlist-ledger" {
		t.Errorf("values wrong: %+v", c)
	}
}

func TestLoadRejects(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"ad account not digits":   {EnvAdAccountID: "abc"},
		"ad account too long":     {EnvAdAccountID: "1234567890123456789"},
		"refresh before bad":      {EnvRefreshBefore: "ten days"},
		"refresh before negative": {EnvRefreshBefore: "-1h"},
		"max records zero":        {EnvMaxRecordsPerRequest: "0"},
		"max records text":        {EnvMaxRecordsPerRequest: "many"},
		"log level unknown":       {EnvLogLevel: "LOUD"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Load(lookupMap(env))
			if err == nil {
				t.Fatal("Load accepted a malformed value")
			}
			for k := range env {
				if !strings.Contains(err.Error(), k) {
					t.Errorf("error %q does not name %s", err, k)
				}
			}
		})
	}
}

func TestRequire(t *testing.T) {
	c, _ := Load(lookupMap(map[string]string{EnvQueueURL: "q"}))
	if err := c.Require(EnvQueueURL); err != nil {
		t.Errorf("Require(queue) = %v", err)
	}
	err := c.Require(EnvQueueURL, EnvTokenSecretID)
	if err == nil || !strings.Contains(err.Error(), EnvTokenSecretID) {
		t.Errorf("Require(token secret) = %v, want an error naming it", err)
	}
}

func TestLogLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{"": slog.LevelInfo, "DEBUG": slog.LevelDebug, "warn": slog.LevelWarn, "ERROR": slog.LevelError} {
		c, err := Load(lookupMap(map[string]string{EnvLogLevel: in}))
		if err != nil || c.LogLevel != want {
			t.Errorf("%s=%q: level %v, err %v; want %v", EnvLogLevel, in, c.LogLevel, err, want)
		}
	}
	c, _ := Load(lookupMap(map[string]string{EnvLogLevel: "WARN"}))
	var buf bytes.Buffer
	log := c.Logger(&buf)
	log.Info("dropped")
	log.Warn("kept")
	if out := buf.String(); strings.Contains(out, "dropped") || !strings.Contains(out, `"msg":"kept"`) {
		t.Errorf("logger at WARN wrote %q", out)
	}
}
