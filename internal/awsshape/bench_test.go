package awsshape

import (
	"strings"
	"testing"
	"time"
)

// TestBenchCallsPerChange is the short AWS-shape benchmark: a small fixed
// AEP traffic set through the real handlers and drivers. It fails when
// Pinterest write calls exceed DefaultCallsFactor × the lower bound, when
// the replay of the same traffic writes anything, or when a flip never
// reaches Pinterest.
func TestBenchCallsPerChange(t *testing.T) {
	t.Parallel()
	res, err := RunBench(t.Context(), BenchOptions{
		Template: "../../template.yaml",
		Moto:     moto,
		Traffic:  TrafficOptions{Profiles: 40, Audiences: 2, Seed: 7},
		// The template's sweep runs every minute; this short run cannot
		// wait for it.
		SweepEvery: 2 * time.Second,
		// moto's DynamoDB writes a batch far slower than DynamoDB, so
		// flushes would start on partly written batches far more often
		// than in AWS, and how often depends on the machine's load. Held
		// until the ledger has the phase, the count is the upload side's
		// alone and does not depend on timing: a regression there (a
		// call per record, per message or per shard) fails the test.
		HoldFlush: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	WriteText(&out, res, DefaultCallsFactor)
	t.Log("\n" + out.String())
	for _, p := range res.Phases {
		if p.Missing > 0 || p.Extra > 0 {
			t.Errorf("phase %s: %d flips never reached Pinterest, %d records it got were no flip of the phase", p.Name, p.Missing, p.Extra)
		}
	}
	for _, g := range res.Goals(DefaultCallsFactor) {
		if !g.Met {
			t.Errorf("goal missed: %s: want %s, got %s", g.Name, g.Target, g.Got)
		}
	}
}
