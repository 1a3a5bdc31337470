package audience

import (
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
