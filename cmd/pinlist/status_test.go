package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// clearPinlistEnv keeps the machine's pinlist settings out of a test.
func clearPinlistEnv(t *testing.T) {
	for _, k := range []string{"PINTEREST_API_BASE_URL", "PINTEREST_AD_ACCOUNT_ID", "PINLIST_ADDR", "PINLIST_DATA_DIR",
		"PINLIST_INGEST_TOKEN", "PINLIST_REFRESH_BEFORE", "PINLIST_MAX_RECORDS_PER_REQUEST", "PINLIST_LOG_LEVEL"} {
		t.Setenv(k, "")
	}
}

// TestServeThenStatus runs `pinlist serve` in-process until cancelled, and
// `pinlist status --json` beside it and after it.
func TestServeThenStatus(t *testing.T) {
	clearPinlistEnv(t)
	dir := filepath.Join(t.TempDir(), "data")
	simAddr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--sim-addr", simAddr, "--data-dir", dir}, stdout, stderr)
	}()
	waitUntil(t, "the serve banner", func() bool { return strings.Contains(stdout.String(), "status:") })
	for _, want := range []string{"ingest:", "ingest token:", "pinterest:     built-in simulator at http://" + simAddr + "/v5", "data dir:"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, stdout)
		}
	}

	var out strings.Builder
	if err := run(context.Background(), []string{"status", "--json", "--data-dir", dir, "--sim-addr", simAddr}, &out, io.Discard); err != nil {
		t.Fatalf("status: %v", err)
	}
	var st struct {
		Token *struct {
			AccountExpiresAt time.Time
			AccountDaysLeft  float64
		}
		Queue      *struct{ Depth, DeadLetters int }
		Lists      []json.RawMessage
		ListsError string
	}
	if err := json.Unmarshal([]byte(out.String()), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out.String())
	}
	if st.Token == nil || st.Token.AccountDaysLeft < 59 || st.Queue == nil || st.Lists == nil || st.ListsError != "" {
		t.Errorf("status beside serve = %s", out.String())
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop within 30s of cancel")
	}
	out.Reset()
	if err := run(context.Background(), []string{"status", "--data-dir", dir, "--sim-addr", simAddr}, &out, io.Discard); err != nil {
		t.Fatalf("status after serve: %v", err)
	}
	for _, want := range []string{"account expiration date:", "depth:", "Customer lists", "unavailable"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status text after serve lacks %q:\n%s", want, out.String())
		}
	}
}

func TestServeAndStatusFlags(t *testing.T) {
	clearPinlistEnv(t)
	tests := []struct {
		name string
		args []string
	}{
		{"serve negative write rate", []string{"serve", "--write-rate", "-2"}},
		{"serve extra argument", []string{"serve", "now"}},
		{"status extra argument", []string{"status", "now"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, io.Discard, io.Discard)
			if !errors.Is(err, errUsage) {
				t.Errorf("err = %v, want a usage error", err)
			}
		})
	}
	t.Setenv("PINLIST_REFRESH_BEFORE", "soon")
	if err := run(context.Background(), []string{"serve"}, io.Discard, io.Discard); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "PINLIST_REFRESH_BEFORE") {
		t.Errorf("bad environment: err = %v, want a usage error naming the variable", err)
	}
}
