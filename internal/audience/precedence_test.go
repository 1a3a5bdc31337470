package audience

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestPrecedence(t *testing.T) {
	t10 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	t11 := t10.Add(time.Hour)
	early := time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC) // negative Unix nanoseconds
	type ch struct {
		t        time.Time
		received bool
		op       Op
	}
	// Each case: a must outrank b.
	cases := []struct {
		name string
		a, b ch
	}{
		{"later event time wins", ch{t11, false, OpAdd}, ch{t10, false, OpRemove}},
		{"on a tie the exit wins", ch{t10, false, OpRemove}, ch{t10, false, OpAdd}},
		{"an event time outranks a later receive time", ch{t10, false, OpAdd}, ch{t11, true, OpRemove}},
		{"later receive time wins among received", ch{t11, true, OpAdd}, ch{t10, true, OpRemove}},
		{"times before 1970 order below", ch{t10, false, OpAdd}, ch{early, false, OpRemove}},
		{"one nanosecond is enough", ch{t10.Add(1), false, OpAdd}, ch{t10, false, OpRemove}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := Precedence(tc.a.t, tc.a.received, tc.a.op), Precedence(tc.b.t, tc.b.received, tc.b.op)
			if len(a) != PrecedenceLen || len(b) != PrecedenceLen {
				t.Fatalf("lengths %d, %d; want %d", len(a), len(b), PrecedenceLen)
			}
			if !(a > b) {
				t.Errorf("%q does not outrank %q", a, b)
			}
		})
	}
	c := Change{EventTime: t10, Op: OpRemove}
	if c.Precedence() != Precedence(t10, false, OpRemove) {
		t.Error("Change.Precedence differs from Precedence of its parts")
	}
}

// TestComparePrecedence holds the coalescer's comparison to the order of
// the Precedence strings.
func TestComparePrecedence(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	times := []int64{-1 << 62, -1, 0, 1, 1_700_000_000_000_000_000, 1<<63 - 1}
	ops := []Op{OpAdd, OpRemove}
	for range 2000 {
		ta, tb := times[rng.IntN(len(times))], times[rng.IntN(len(times))]
		ra, rb := rng.IntN(2) == 0, rng.IntN(2) == 0
		oa, ob := ops[rng.IntN(2)], ops[rng.IntN(2)]
		want := strings.Compare(Precedence(time.Unix(0, ta), ra, oa), Precedence(time.Unix(0, tb), rb, ob))
		if got := comparePrecedence(ra, ta, oa == OpRemove, rb, tb, ob == OpRemove); got != want {
			t.Fatalf("comparePrecedence(%v %d %s, %v %d %s) = %d, want %d", ra, ta, oa, rb, tb, ob, got, want)
		}
	}
}

func TestParseKeyIsKeysInverse(t *testing.T) {
	for _, r := range []Ref{{"ups", "5b0f8a3e"}, {"ups", "a:b:c"}, {"CustomerAudienceUpload", "x-1"}} {
		got, err := ParseKey(r.Key())
		if err != nil || got != r {
			t.Errorf("ParseKey(%q) = %+v, %v; want %+v", r.Key(), got, err, r)
		}
	}
	for _, bad := range []string{"", "ups", "ups:", ":id", "u ps:id"} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
}
