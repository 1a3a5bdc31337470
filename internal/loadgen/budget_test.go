package loadgen

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// budgetResult is an AEP result that meets every goal; cases change one
// figure.
func budgetResult() *LoadResult {
	return &LoadResult{
		Shape: ShapeAEP, Budget: 400, MaxRecords: 5000, RetryDelays: []time.Duration{15 * time.Second, 30 * time.Second},
		Saturation: PhaseResult{Name: "saturation", Bodies: 100, Flips: 100_000, OfferedFlipRate: 20_000, Sustained: 17_000,
			Converged: 6 * time.Second, WriteCalls: 60, LowerBound: 50},
		Fixed: PhaseResult{Name: "1,000 flips/s", Bodies: 10, OfferedRate: 1000,
			Freshness: Summary{N: 20, P50: 1500 * time.Millisecond, P99: 3 * time.Second}},
		WriteCalls: 200, Throttled: 10, ThrottledKnown: true, Lists: 60,
		SecondPass: &SecondPassResult{Bodies: 10, Profiles: 100, Changes: 400},
		PeakRSS:    100 << 20,
	}
}

// saturate makes the base's saturation phase offer more than the budget
// carries (400/min × 5,000 = 33,333 flips/s) and sustain 80 % of that.
func saturate(r *LoadResult) {
	r.Saturation.OfferedFlipRate, r.Saturation.Sustained = 100_000, 26_700
}

func TestBudgetGoalVerdicts(t *testing.T) {
	const (
		sustained = "sustained state flips/s at saturation"
		calls     = "Pinterest write calls at saturation"
		fresh     = "freshness p50 at 1,000 flips/s"
		share429  = "429 answers / write calls"
		second    = "writes caused by unchanged memberships (second pass)"
		lists     = "lists equal the oracle's membership"
		rss       = "peak RSS of pinlist serve"
	)
	tests := []struct {
		name   string
		change func(r *LoadResult)
		want   map[string]string // verdicts that differ from MET
	}{
		{name: "every goal met", change: func(*LoadResult) {}},
		{name: "sustained exactly 80 % of the offered rate is met", change: func(r *LoadResult) { r.Saturation.Sustained = 16_000 }},
		{name: "sustained below 80 % of the offered rate", change: func(r *LoadResult) { r.Saturation.Sustained = 15_999 },
			want: map[string]string{sustained: VerdictMissed}},
		{name: "the budget caps the goal: 80 % of 400/min × 5,000 is 26,667", change: saturate,
			want: map[string]string{calls: VerdictMet}},
		{name: "below 80 % of the budget's ceiling", change: func(r *LoadResult) {
			saturate(r)
			r.Saturation.Sustained = 26_000
		}, want: map[string]string{sustained: VerdictMissed, calls: VerdictMet}},
		{name: "no flips sustain nothing", change: func(r *LoadResult) {
			r.Saturation.Flips, r.Saturation.OfferedFlipRate, r.Saturation.Sustained = 0, 0, 0
		},
			want: map[string]string{sustained: VerdictMissed}},
		{name: "write calls at 1.25 × the bound are met", change: func(r *LoadResult) {
			saturate(r)
			r.Saturation.WriteCalls, r.Saturation.LowerBound = 62, 50
		}, want: map[string]string{calls: VerdictMet}},
		{name: "write calls over 1.25 × the bound", change: func(r *LoadResult) {
			saturate(r)
			r.Saturation.WriteCalls = 63
		}, want: map[string]string{calls: VerdictMissed}},
		{name: "write calls over 1.25 × the bound below the budget's ceiling: not saturated", change: func(r *LoadResult) { r.Saturation.WriteCalls = 63 }},
		{name: "freshness p50 over 2 s", change: func(r *LoadResult) { r.Fixed.Freshness.P50 = 2001 * time.Millisecond },
			want: map[string]string{fresh: VerdictMissed}},
		{name: "no freshness sample", change: func(r *LoadResult) { r.Fixed.Freshness = Summary{} },
			want: map[string]string{fresh: VerdictMissed}},
		{name: "429s at 5 % are met", change: func(r *LoadResult) { r.Throttled = 10 }},
		{name: "429s over 5 %", change: func(r *LoadResult) { r.Throttled = 11 },
			want: map[string]string{share429: VerdictMissed}},
		{name: "429s not reported by the simulator", change: func(r *LoadResult) { r.Throttled, r.ThrottledKnown = 0, false },
			want: map[string]string{share429: VerdictNA}},
		{name: "one write from the second pass", change: func(r *LoadResult) { r.SecondPass.WriteCalls = 1 },
			want: map[string]string{second: VerdictMissed}},
		{name: "lists differ after a phase", change: func(r *LoadResult) { r.Saturation.Mismatch = []string{"ups:a EMAIL: ..."} },
			want: map[string]string{lists: VerdictMissed}},
		{name: "lists differ after the second pass", change: func(r *LoadResult) { r.SecondPass.Mismatch = []string{"ups:a EMAIL: ..."} },
			want: map[string]string{lists: VerdictMissed}},
		{name: "too much memory", change: func(r *LoadResult) { r.PeakRSS = 300 << 20 },
			want: map[string]string{rss: VerdictMissed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := budgetResult()
			tt.change(r)
			got := map[string]string{}
			for _, c := range DefaultBudgetGoals.Check(r) {
				got[c.Name] = c.Verdict
			}
			// The base offers less than the budget carries: the calls goal,
			// for a saturated budget, is n/a unless a case saturates it.
			want := map[string]string{sustained: VerdictMet, calls: VerdictNA, fresh: VerdictMet, share429: VerdictMet,
				second: VerdictMet, lists: VerdictMet, rss: VerdictMet}
			for k, v := range tt.want {
				want[k] = v
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("verdicts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBudgetGoalsLeaveOutWhatDidNotRun(t *testing.T) {
	r := budgetResult()
	r.Fixed, r.SecondPass, r.PeakRSS = PhaseResult{}, nil, 0
	var names []string
	for _, c := range DefaultBudgetGoals.Check(r) {
		names = append(names, c.Name)
	}
	want := []string{"sustained state flips/s at saturation", "Pinterest write calls at saturation", "429 answers / write calls",
		"lists equal the oracle's membership"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Fatalf("goals (-want +got):\n%s", diff)
	}
}

func TestBudgetReport(t *testing.T) {
	r := budgetResult()
	saturate(r)
	r.Saturation.WriteCalls = 100
	r.Calls = map[string]int{"customer_lists.update": 190, "customer_lists.create": 10}
	var text strings.Builder
	WriteText(&text, r, DefaultGoals)
	for _, want := range []string{"AEP shape, budget 400 write calls/min, 5000 records per call", "MISSED Pinterest write calls at saturation",
		"MET    sustained state flips/s at saturation: goal ≥ 80 % of min(offered 100,000, budget 400/min × 5000 = 33,333) = 26,667; measured 26,700",
		"second pass: 100 profiles re-sent unchanged"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("WriteText lacks %q:\n%s", want, text.String())
		}
	}
	md := Markdown("Load", r, DefaultGoals, Machine{Cores: 2, CPU: "Test CPU"}, "make bench-load", time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC), "")
	for _, want := range []string{"## Load\n", "some bodies retried 15s and 30s after", "Budget: 400 write calls a minute, 5000 records per call (33,333 flips/s at most). Lists: 60.",
		"| Pinterest write calls at saturation | ≤ 1.25 × lower bound 50 = 62 | 100 (2.00×) | **MISSED** |",
		"| 429 answers / write calls | ≤ 5 % | 5.0 % (10 / 200) | MET |"} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestParseCalls(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want CallCounts
	}{
		{name: "no 429 yet", raw: `{"customer_lists.update": 7, "customer_lists.create": 2}`,
			want: CallCounts{Routes: map[string]int{"customer_lists.update": 7, "customer_lists.create": 2}, ThrottledKnown: true}},
		{name: "429s by route, summed", raw: `{"customer_lists.update": 7, "customer_lists.update.429": 2, "audiences.create": 1, "audiences.create.429": 1}`,
			want: CallCounts{Routes: map[string]int{"customer_lists.update": 7, "audiences.create": 1}, Throttled: 3, ThrottledKnown: true}},
		{name: "a key that is only the suffix is a route", raw: `{".429": 1}`,
			want: CallCounts{Routes: map[string]int{".429": 1}, ThrottledKnown: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCalls([]byte(tt.raw))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
	if _, err := ParseCalls([]byte(`[1, 2]`)); err == nil {
		t.Fatal("an array: no error")
	}
}

// FuzzParseCalls: any answer is read without a panic; an object always
// gives a route map.
func FuzzParseCalls(f *testing.F) {
	for _, s := range []string{`{"customer_lists.update": 7}`, `{"429": {"a": {"b": 1}}}`, `{"routes": {"x": 1.5}}`, `{"a": {"calls": "x"}}`, `[]`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := ParseCalls(raw)
		if err == nil && c.Routes == nil {
			t.Fatalf("%q: no route map", raw)
		}
	})
}

func TestFreshCeiling(t *testing.T) {
	uniform := make([]int, 120) // the benchmark's 20 audiences × 3 lists × 2 operations, evenly
	for i := range uniform {
		uniform[i] = 100
	}
	tests := []struct {
		name           string
		pairs          []int
		callsPerSec    float64
		within         time.Duration
		share, busiest float64
	}{
		// 400 calls a minute write 13.3 pairs every 2 s: 13.3 of 120.
		{"many even pairs", uniform, 400.0 / 60, 2 * time.Second, (400.0 / 60 * 2) / 120, 400.0 / 60 * 2},
		{"fewer pairs than calls in the window", []int{5, 1, 9}, 400.0 / 60, 2 * time.Second, 1, 3},
		// 1.5 pairs every 2 s: all of the busiest, half of the next.
		{"busiest first, in any order given", []int{20, 50, 30}, 0.75, 2 * time.Second, (50 + 15) / 100.0, 1.5},
		{"no flips", nil, 1, time.Second, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			share, busiest := FreshCeiling(tt.pairs, tt.callsPerSec, tt.within)
			if math.Abs(share-tt.share) > 1e-9 || math.Abs(busiest-tt.busiest) > 1e-9 {
				t.Fatalf("FreshCeiling = %.4f of the flips, %.2f pairs; want %.4f, %.2f", share, busiest, tt.share, tt.busiest)
			}
		})
	}
}

// TestFreshnessCheckSaysWhenTheGoalIsOutOfReach: the freshness goal's
// measurement names the budget's ceiling, and says when no connector could
// meet the goal; the verdict still reports the measured p50.
func TestFreshnessCheckSaysWhenTheGoalIsOutOfReach(t *testing.T) {
	freshness := func(r *LoadResult) BudgetCheck {
		for _, c := range DefaultBudgetGoals.Check(r) {
			if strings.HasPrefix(c.Name, "freshness p50") {
				return c
			}
		}
		t.Fatal("no freshness goal")
		return BudgetCheck{}
	}
	r := budgetResult()
	r.Fixed.PairFlips = make([]int, 120)
	for i := range r.Fixed.PairFlips {
		r.Fixed.PairFlips[i] = 250
	}
	c := freshness(r)
	for _, want := range []string{"at 400 calls/min no order of calls brings more than 11 % of the phase's flips to Pinterest within 2s",
		"(its busiest 13.3 of 120 list-and-operation pairs, each written every 2s)", "so no connector reaches this p50 for this traffic"} {
		if !strings.Contains(c.Measured, want) {
			t.Errorf("measured %q lacks %q", c.Measured, want)
		}
	}
	r.Fixed.PairFlips = r.Fixed.PairFlips[:18] // 3 audiences
	if c := freshness(r); !strings.Contains(c.Measured, "more than 74 %") || strings.Contains(c.Measured, "no connector") {
		t.Errorf("18 pairs: measured %q, want a ceiling of 74 %% that does not rule the goal out", c.Measured)
	}
}
