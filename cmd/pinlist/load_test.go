package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/pinlist/pinlist/internal/local"
	"github.com/pinlist/pinlist/internal/token"
)

// TestLoadAgainstALocalStack runs `pinlist load` against an in-process
// stack (its built-in simulator stands in for pinlist sim): a small run
// must print the results with the goals and rewrite only the Load section
// of the document it is given.
func TestLoadAgainstALocalStack(t *testing.T) {
	const ingestToken = "load-command-token"
	s, err := local.Start(context.Background(), local.Config{
		Addr: "127.0.0.1:0", SimAddr: "127.0.0.1:0", DataDir: t.TempDir(), IngestToken: ingestToken,
		PollInterval: 20 * time.Millisecond,
		// The load, not the write budget, is tested.
		SimWriteLimit: local.NoSimWriteLimit, WriteRate: rate.Inf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close the local stack: %v", err)
		}
	})
	doc := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := os.WriteFile(doc, []byte("# Benchmarks\n\n## Local queue\n\nkept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PINLIST_INGEST_TOKEN", ingestToken)
	var stdout, stderr bytes.Buffer
	err = run(t.Context(), []string{"load", "--shape", "bulk", "--ingest-url", s.IngestURL(), "--sim-url", s.SimulatorURL(),
		"--ad-account", s.AdAccountID(), "--profiles", "600", "--body-profiles", "100", "--fixed-duration", "500ms",
		"--fixed-rate", "2000", "--serve-pid", strconv.Itoa(os.Getpid()), "--doc", doc, "--doc-command", "make bench-load"},
		&stdout, &stderr)
	if err != nil {
		t.Fatalf("pinlist load: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	for _, want := range []string{"[fixed load]", "[saturation]", "Goals:", "sustained identity changes/s", "peak RSS", "wrote the results to"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Local queue\n\nkept\n", "\n## Load\n", "make bench-load", "Machine: "} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the document lacks %q:\n%s", want, b)
		}
	}
}

// TestLoadAEPShapeAgainstALocalStack runs a seconds-long `pinlist load`
// of the default AEP shape (the way `make test` can): it must print every
// phase and the budget goals, each MET, MISSED or n/a, and write them into
// the document.
func TestLoadAEPShapeAgainstALocalStack(t *testing.T) {
	const ingestToken = "load-command-token"
	s, err := local.Start(context.Background(), local.Config{
		Addr: "127.0.0.1:0", SimAddr: "127.0.0.1:0", DataDir: t.TempDir(), IngestToken: ingestToken,
		PollInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close the local stack: %v", err)
		}
	})
	doc := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := os.WriteFile(doc, []byte("# Benchmarks\n\n## Load\n\nold\n\n### Notes\n\nby hand\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PINLIST_INGEST_TOKEN", ingestToken)
	var stdout, stderr bytes.Buffer
	err = run(t.Context(), []string{"load", "--ingest-url", s.IngestURL(), "--sim-url", s.SimulatorURL(),
		"--ad-account", s.AdAccountID(), "--warmup-profiles", "100", "--profiles", "400", "--fixed-rate", "300",
		"--fixed-duration", "500ms", "--retry-delays", "100ms,200ms", "--replay-delay", "300ms", "--retry-share", "0.2",
		"--give-up-quiet", "1s", "--settle-quiet", "200ms", "--second-pass-quiet", "1500ms",
		"--serve-pid", strconv.Itoa(os.Getpid()), "--doc", doc, "--doc-command", "make bench-load"},
		&stdout, &stderr)
	if err != nil {
		t.Fatalf("pinlist load: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	for _, want := range []string{"[warm-up]", "[saturation]", "[300 flips/s]", "[second pass]", "AEP shape", "Goals:",
		"sustained state flips/s at saturation", "Pinterest write calls at saturation", "freshness p50 at 300 flips/s",
		"429 answers / write calls", "writes caused by unchanged memberships", "peak RSS", "wrote the results to"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\n## Load\n", "make bench-load", "Machine: ", "| sustained state flips/s at saturation |",
		"How it is measured.", "### Notes\n\nby hand\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the document lacks %q:\n%s", want, b)
		}
	}
	if strings.Contains(string(b), "\nold\n") {
		t.Errorf("the old section was kept:\n%s", b)
	}
}

// TestLoadProvisionsASimulatorToken: --provision-token writes a token file
// the simulator accepts, as pinlist connect would, and prints no token.
func TestLoadProvisionsASimulatorToken(t *testing.T) {
	s, err := local.Start(context.Background(), local.Config{
		Addr: "127.0.0.1:0", SimAddr: "127.0.0.1:0", DataDir: t.TempDir(), IngestToken: "x",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	path := filepath.Join(t.TempDir(), "token.json")
	var stdout, stderr bytes.Buffer
	err = run(t.Context(), []string{"load", "--sim-url", s.SimulatorURL(), "--provision-token", path,
		"--client-id", local.SimClientID, "--client-secret", local.SimClientSecret, "--ad-account", s.AdAccountID()}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("pinlist load --provision-token: %v\n%s", err, stderr.String())
	}
	tok, err := token.FileStore{Path: path}.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if tok.ClientID != local.SimClientID || tok.AccessToken == "" || tok.RefreshToken == "" || tok.AdAccountID != s.AdAccountID() ||
		time.Until(tok.AccessTokenExpiresAt) < 29*24*time.Hour {
		t.Fatalf("token file: client %q, ad account %q, access expires %s, pair present %v",
			tok.ClientID, tok.AdAccountID, tok.AccessTokenExpiresAt, tok.AccessToken != "" && tok.RefreshToken != "")
	}
	if strings.Contains(stdout.String(), tok.AccessToken) || strings.Contains(stdout.String(), tok.RefreshToken) {
		t.Fatalf("a token was printed:\n%s", stdout.String())
	}
}

func TestLoadUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"an extra argument", []string{"extra"}},
		{"an unknown shape", []string{"--shape", "trickle"}},
		{"a retry delay that is no duration", []string{"--retry-delays", "15s,soon"}},
		{"a negative retry delay", []string{"--retry-delays", "-1s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			// No server listens at the URLs: a usage error comes first.
			err := run(t.Context(), append([]string{"load", "--sim-url", "http://127.0.0.1:1"}, tt.args...), &stdout, &stderr)
			if !errors.Is(err, errUsage) {
				t.Fatalf("%v, want a usage error", err)
			}
		})
	}
}
