package loadgen_test

import (
	"bytes"
	"context"
	"os"
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
		Shape:             loadgen.ShapeBulk,
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
		// A phase's bound counts its records from empty lists; the ledger
		// sends only what flips against earlier phases, so only the whole
		// run's bound below is a bound.
		if p.WriteCalls == 0 || p.LowerBound == 0 {
			t.Errorf("%s: %d list writes, lower bound %d: want both above zero", p.Name, p.WriteCalls, p.LowerBound)
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

// TestRunLoadAEPShape runs a seconds-long AEP-shaped load (retry delays
// scaled down) through an in-process stack: every phase must run and be
// measured, retries and replays must be posted, the second pass must run,
// and every goal must get a verdict. Whether today's pipeline meets the
// goals is the benchmark's business, not this test's.
func TestRunLoadAEPShape(t *testing.T) {
	s, err := local.Start(context.Background(), local.Config{
		Addr: "127.0.0.1:0", SimAddr: "127.0.0.1:0", DataDir: t.TempDir(), IngestToken: "load-test-token",
		PollInterval: 20 * time.Millisecond,
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
		Ingest:          loadgen.NewIngest(s.IngestURL(), s.IngestToken()),
		Sim:             loadgen.NewSim(s.SimulatorURL(), s.AdAccountID()),
		WarmupProfiles:  200,
		Profiles:        1500,
		Concurrency:     3,
		FixedRate:       500,
		FixedDuration:   time.Second,
		RetryDelays:     []time.Duration{100 * time.Millisecond, 200 * time.Millisecond},
		ReplayDelay:     1500 * time.Millisecond,
		GiveUpQuiet:     time.Second,
		SecondPassQuiet: 2 * time.Second,
		ServePID:        os.Getpid(),
		AEP:             loadgen.AEPOptions{Seed: 42, RetryShare: 0.2, ReplayShare: 0.1},
		Progress:        &progress,
		ProgressEvery:   200 * time.Millisecond,
		SettleQuiet:     200 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("RunLoad: %v\nprogress:\n%s", err, progress.String())
	}
	if res.Shape != loadgen.ShapeAEP {
		t.Errorf("shape %q, want the default %q", res.Shape, loadgen.ShapeAEP)
	}
	for _, p := range []loadgen.PhaseResult{res.Warmup, res.Saturation, res.Fixed} {
		if p.Bodies == 0 || p.Flips == 0 || p.Resent == 0 || p.FollowUps == 0 || p.Sustained <= 0 || p.OfferedFlipRate <= 0 {
			t.Errorf("%s: %+v", p.Name, p)
		}
		if p.LowerBound == 0 || p.WriteCalls == 0 {
			t.Errorf("%s: %d write calls, lower bound %d", p.Name, p.WriteCalls, p.LowerBound)
		}
		sum := 0
		for _, n := range p.PairFlips {
			sum += n
		}
		if sum != p.Flips || len(p.PairFlips) > 2*res.Lists {
			t.Errorf("%s: flips by list and operation %v sum to %d in %d pairs, want the phase's %d flips in at most %d", p.Name, p.PairFlips, sum, len(p.PairFlips), p.Flips, 2*res.Lists)
		}
	}
	if res.Saturation.Profiles < 1500 || res.Saturation.Profiles > 1500+loadgen.MaxAEPProfiles {
		t.Errorf("saturation posted %d profiles, want 1500", res.Saturation.Profiles)
	}
	if res.Fixed.Freshness.N == 0 || res.Fixed.OfferedRate != 500 {
		t.Errorf("paced phase: %+v", res.Fixed)
	}
	sent := res.Warmup.Profiles + res.Saturation.Profiles + res.Fixed.Profiles
	if sp := res.SecondPass; sp == nil || sp.Profiles == 0 || sp.Profiles > sent || sp.Changes == 0 {
		t.Errorf("second pass %+v, want every distinct profile of the %d sent", sp, sent)
	}
	names := map[string]bool{}
	for _, c := range loadgen.DefaultBudgetGoals.Check(res) {
		names[c.Name] = true
		if c.Verdict != loadgen.VerdictMet && c.Verdict != loadgen.VerdictMissed && c.Verdict != loadgen.VerdictNA {
			t.Errorf("goal %q: verdict %q", c.Name, c.Verdict)
		}
		// What the ledger promises holds whatever the machine's speed:
		// the lists end as the oracle says (retries, replays and all),
		// and re-sending unchanged memberships writes nothing.
		if (strings.HasPrefix(c.Name, "lists equal the oracle") || strings.HasPrefix(c.Name, "writes caused by unchanged")) && c.Verdict != loadgen.VerdictMet {
			t.Errorf("goal %q: %s (%s), want met", c.Name, c.Verdict, c.Measured)
		}
	}
	if len(names) != 7 {
		t.Errorf("goals checked: %v, want 7", names)
	}
	var out strings.Builder
	loadgen.WriteText(&out, res, loadgen.DefaultGoals)
	for _, want := range []string{"AEP shape", "second pass:", "Goals:", "sustained state flips/s at saturation"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("WriteText lacks %q:\n%s", want, out.String())
		}
	}
	t.Logf("%s", out.String())
}
