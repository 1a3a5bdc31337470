package local

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/time/rate"

	"github.com/pinlist/pinlist/internal/config"
	"github.com/pinlist/pinlist/internal/pinterestsim"
	"github.com/pinlist/pinlist/internal/queue"
)

func TestConfigFrom(t *testing.T) {
	env := map[string]string{
		config.EnvAddr:                 "127.0.0.1:9000",
		config.EnvDataDir:              "/var/lib/pinlist",
		config.EnvIngestToken:          "tok",
		config.EnvAPIBaseURL:           "http://127.0.0.1:9001/v5/",
		config.EnvAdAccountID:          "123",
		config.EnvRefreshBefore:        "48h",
		config.EnvMaxRecordsPerRequest: "100",
		config.EnvConnectionName:       "shop",
	}
	c, err := config.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Addr: "127.0.0.1:9000", DataDir: "/var/lib/pinlist", IngestToken: "tok",
		PinterestURL: "http://127.0.0.1:9001/v5", AdAccountID: "123", RefreshBefore: 48 * time.Hour,
		MaxRecordsPerRequest: 100, ConnectionName: "shop",
	}
	if diff := cmp.Diff(want, ConfigFrom(c), cmp.AllowUnexported()); diff != "" {
		t.Errorf("ConfigFrom (-want +got):\n%s", diff)
	}

	c, err = config.Load(func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	got := ConfigFrom(c)
	if got.PinterestURL != "" {
		t.Errorf("no %s gave PinterestURL %q, want the simulator", config.EnvAPIBaseURL, got.PinterestURL)
	}
	if got.Addr != DefaultAddr || got.DataDir != DefaultDataDir {
		t.Errorf("defaults = %q, %q", got.Addr, got.DataDir)
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:8080" || c.SimAddr != "127.0.0.1:8081" || c.DataDir != "./.pinlist" || c.Workers != DefaultWorkers {
		t.Errorf("defaults: %+v", c)
	}
	if c.RetryMax < c.RetryBase || c.Stdout == nil || c.Logger == nil {
		t.Errorf("defaults: %+v", c)
	}
	if c.SimWriteLimit != pinterestsim.PinterestWriteLimit {
		t.Errorf("simulator write limit %d, want Pinterest's 400 a minute", c.SimWriteLimit)
	}
	if c, err := (Config{SimWriteLimit: NoSimWriteLimit}).withDefaults(); err != nil || c.SimWriteLimit != NoSimWriteLimit {
		t.Errorf("no simulator write limit: %v, %v; want NoSimWriteLimit kept", c.SimWriteLimit, err)
	}
	if c.BatchSize != 100 || c.BatchWindow != time.Second {
		t.Errorf("batch defaults: size %d, window %v; want 100, 1s", c.BatchSize, c.BatchWindow)
	}
	if c, err := (Config{BatchWindow: -time.Minute}).withDefaults(); err != nil || c.BatchWindow != NoBatchWindow {
		t.Errorf("a negative window: %v, %v; want NoBatchWindow", c.BatchWindow, err)
	}
	for name, bad := range map[string]Config{
		"address without port":  {Addr: "localhost"},
		"negative write rate":   {WriteRate: rate.Limit(-1)},
		"simulator address":     {SimAddr: "8081"},
		"batch size":            {BatchSize: queue.MaxLocalBatch + 1},
		"simulator write limit": {SimWriteLimit: -2},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
