package chaos

import (
	"context"
	"testing"
	"time"

	"github.com/pinlist/pinlist/internal/loadgen"
)

// waitForMembership polls the simulator until its lists equal the oracle's
// expected membership, and fails with the difference if they do not within
// limit.
func waitForMembership(t *testing.T, sim *loadgen.Sim, oracle *loadgen.Oracle, limit time.Duration) {
	t.Helper()
	if diff := settle(t, sim, oracle, limit); len(diff) > 0 {
		t.Fatalf("the simulator's lists did not reach the expected membership within %s:\n  %s", limit, joinLines(diff))
	}
}

// settle polls the simulator until its lists equal the oracle's expected
// membership or limit passes, and returns the last difference (none when
// they matched).
func settle(t *testing.T, sim *loadgen.Sim, oracle *loadgen.Oracle, limit time.Duration) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), limit)
	defer cancel()
	want := oracle.Expected()
	for {
		got, _, err := sim.Memberships(ctx)
		var diff []string
		if err == nil {
			if diff = loadgen.Diff(want, got); len(diff) == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if err != nil {
				t.Fatalf("read the simulator's lists: %v", err)
			}
			return diff
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func joinLines(lines []string) string {
	out := ""
	for i, l := range lines {
		if i == 20 {
			out += "\n  ..."
			break
		}
		if i > 0 {
			out += "\n  "
		}
		out += l
	}
	return out
}
