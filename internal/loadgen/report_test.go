package loadgen

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestReplaceSection(t *testing.T) {
	section := "## Load\n\nnew results\n"
	tests := []struct {
		name, doc, want string
	}{
		{
			name: "appended when missing",
			doc:  "# Benchmarks\n\n## Local queue\n\nqueue text\n",
			want: "# Benchmarks\n\n## Local queue\n\nqueue text\n\n## Load\n\nnew results\n",
		},
		{
			name: "replaced at the end",
			doc:  "# Benchmarks\n\n## Local queue\n\nqueue text\n\n## Load\n\nold results\n",
			want: "# Benchmarks\n\n## Local queue\n\nqueue text\n\n## Load\n\nnew results\n",
		},
		{
			name: "replaced in the middle, the next section kept",
			doc:  "# B\n\n## Load\n\nold\n```sh\n## not a heading\n```\n\n## Other\n\nother text\n",
			want: "# B\n\n## Load\n\nnew results\n\n## Other\n\nother text\n",
		},
		{
			name: "hand-written notes kept",
			doc:  "# B\n\n## Load\n\nold\n\n### Notes\n\nby hand\n\n## Other\n\nx\n",
			want: "# B\n\n## Load\n\nnew results\n\n### Notes\n\nby hand\n\n## Other\n\nx\n",
		},
		{
			name: "a heading that only starts the same is not it",
			doc:  "# B\n\n## Loader\n\nx\n",
			want: "# B\n\n## Loader\n\nx\n\n## Load\n\nnew results\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ReplaceSection(tt.doc, "Load", section)); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	got := summarize(d)
	want := Summary{N: 100, P50: 50 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond}
	if got != want {
		t.Fatalf("summarize = %+v, want %+v", got, want)
	}
	if got := summarize([]time.Duration{7}); got.P50 != 7 || got.P99 != 7 {
		t.Fatalf("one sample: %+v", got)
	}
	if got := summarize(nil); got != (Summary{}) {
		t.Fatalf("no samples: %+v", got)
	}
}

func TestGoalsAndMarkdown(t *testing.T) {
	r := &LoadResult{
		Fixed: PhaseResult{Name: "fixed load", Bodies: 10, Changes: 1000, OfferedRate: 1000, WriteCalls: 60, Converged: 1040 * time.Millisecond,
			Freshness: Summary{N: 5, P50: 300 * time.Millisecond, P99: time.Second}},
		Saturation: PhaseResult{Name: "saturation", Bodies: 20, Changes: 50_000, Throughput: 25_000, WriteCalls: 150, Converged: 2 * time.Second},
		WriteCalls: 210, LowerBound: 100, MaxRecords: 5000, PeakRSS: 300 << 20,
		Calls: map[string]int{"customer_lists.update": 200, "customer_lists.create": 10},
	}
	var met []bool
	for _, c := range DefaultGoals.Check(r) {
		met = append(met, c.Met)
	}
	if diff := cmp.Diff([]bool{true, false, true, false}, met); diff != "" {
		t.Fatalf("goals met (throughput, calls, freshness, RSS) (-want +got):\n%s", diff)
	}
	md := Markdown("Load", r, DefaultGoals, Machine{Cores: 2, MemoryGiB: 24, CPU: "Test CPU", GoVersion: "go1.26", OS: "linux/amd64"},
		"make bench-load", time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC), "Why: because.")
	for _, want := range []string{"## Load\n", "make bench-load", "2 cores (Test CPU), 24 GiB", "2026-11-27",
		"| Pinterest write calls / lower bound | ≤ 1.05 | 2.10 (210 / 100) | **missed** |", "Why: because.\n",
		// The calls goal is missed, so the section says why from the run's numbers.
		"the ledger sends changes in flush rounds", "fixed load: 60 list writes in 1s carried 16.7 changes each.",
		"saturation: 150 list writes in 2s carried 333.3 changes each."} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
}
