package loadgen_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/pinlist/pinlist/internal/loadgen"
	"github.com/pinlist/pinlist/internal/local"
)

// TestRunLoadAgainstTheLocalStack runs a small load through an in-process
// stack and its built-in simulator: both phases must end with the
// simulator holding exactly the oracle's membership (RunLoad fails
// otherwise), every 202 must count the oracle's changes, and the numbers
// must be sane.
func TestRunLoadAgainstTheLocalStack(t *testing.T) {
	s, err := local.Start(context.Background(), local.Config{
		Addr:         "127.0.0.1:0",
		SimAddr:      "127.0.0.1:0",
		DataDir:      t.TempDir(),
		IngestToken:  "load-test-token",
		PollInterval: 20 * time.Millisecond,
		// The load, not the write budget, is tested.
		SimWriteLimit: local.NoSimWriteLimit,
		WriteRate:     rate.Inf,
	})
	if err != nil {
		t.Fatalf("start the local stack: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close the local stack: %v", err)
		}
	})
	var progress bytes.Buffer
	res, err := loadgen.RunLoad(t.Context(), loadgen.LoadOptions{
		Ingest:            loadgen.NewIngest(s.IngestURL(), s.IngestToken()),
		Sim:               loadgen.NewSim(s.SimulatorURL(), s.AdAccountID()),
		Profiles:          3000,
		BodyProfiles:      200,
		Concurrency:       3,
		FixedRate:         2000,
		FixedDuration:     time.Second,
		FixedBodyProfiles: 20,
		Gen:               loadgen.GenOptions{Seed: 42},
		Progress:          &progress,
		ProgressEvery:     200 * time.Millisecond,
		SettleQuiet:       200 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("RunLoad: %v\nprogress:\n%s", err, progress.String())
	}
	for _, p := range []loadgen.PhaseResult{res.Fixed, res.Saturation} {
		if p.Bodies == 0 || p.Changes == 0 || p.Ingest.N != p.Bodies || p.Throughput <= 0 || p.Messages == 0 {
			t.Errorf("%s: %+v", p.Name, p)
		}
		if p.WriteCalls < p.LowerBound || p.LowerBound == 0 {
			t.Errorf("%s: %d list writes, lower bound %d: the bound is not a bound", p.Name, p.WriteCalls, p.LowerBound)
		}
	}
	if res.Fixed.Freshness.N == 0 {
		t.Errorf("no freshness sample at the fixed load")
	}
	if res.Fixed.Profiles+res.Saturation.Profiles != 3000 {
		t.Errorf("posted %d + %d profiles, want 3000", res.Fixed.Profiles, res.Saturation.Profiles)
	}
	if res.WriteCalls < res.LowerBound || res.Lists == 0 || res.Lists > 60 {
		t.Errorf("calls %d, bound %d, lists %d", res.WriteCalls, res.LowerBound, res.Lists)
	}
	var out strings.Builder
	loadgen.WriteText(&out, res, loadgen.DefaultGoals)
	if !strings.Contains(out.String(), "sustained identity changes/s") {
		t.Errorf("WriteText:\n%s", out.String())
	}
	if !strings.Contains(progress.String(), "[saturation]") {
		t.Errorf("no progress lines:\n%s", progress.String())
	}
}
