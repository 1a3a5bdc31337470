package ledger

import (
	"testing"
	"time"

	"github.com/pinlist/pinlist/internal/audience"
)

func TestDecide(t *testing.T) {
	list := List{Audience: audience.Ref{Namespace: "ups", ID: "a"}, Type: audience.ListEmail}
	h := hashOf("x")
	p := func(hour int, op audience.Op) string { return audience.Precedence(at(hour), false, op) }
	none := Row{List: list, Hash: h}
	row := func(want, sent State, prec string) Row {
		return Row{List: list, Hash: h, Want: want, Sent: sent, Precedence: prec}
	}
	tests := []struct {
		name        string
		cur         Row
		c           audience.Change
		want        Outcome
		wantRow     Row
		wantMembers int64
		wantPending bool
	}{
		{"unknown row join", none, change(list, h, audience.OpAdd, 10), Flip,
			row(In, Unknown, p(10, audience.OpAdd)), 1, true},
		{"unknown row exit is sent", none, change(list, h, audience.OpRemove, 10), Flip,
			row(Out, Unknown, p(10, audience.OpRemove)), 0, true},
		{"older join after exit", row(Out, Unknown, p(11, audience.OpRemove)), change(list, h, audience.OpAdd, 10), Stale,
			row(Out, Unknown, p(11, audience.OpRemove)), 0, true},
		{"same precedence is a duplicate", row(In, In, p(10, audience.OpAdd)), change(list, h, audience.OpAdd, 10), Stale,
			row(In, In, p(10, audience.OpAdd)), 0, false},
		{"exit ties above join", row(In, In, p(10, audience.OpAdd)), change(list, h, audience.OpRemove, 10), Flip,
			row(Out, In, p(10, audience.OpRemove)), -1, true},
		{"join ties below exit", row(Out, Out, p(10, audience.OpRemove)), change(list, h, audience.OpAdd, 10), Stale,
			row(Out, Out, p(10, audience.OpRemove)), 0, false},
		{"no-op advances precedence", row(In, In, p(10, audience.OpAdd)), change(list, h, audience.OpAdd, 12), NoOp,
			row(In, In, p(12, audience.OpAdd)), 0, false},
		{"no-op keeps a pending row pending", row(In, Unknown, p(10, audience.OpAdd)), change(list, h, audience.OpAdd, 12), NoOp,
			row(In, Unknown, p(12, audience.OpAdd)), 0, true},
		{"flip back before send", row(Out, In, p(11, audience.OpRemove)), change(list, h, audience.OpAdd, 12), Revert,
			row(In, In, p(12, audience.OpAdd)), 1, false},
		{"receive time never outranks event time", row(In, In, p(10, audience.OpAdd)),
			audience.Change{Audience: list.Audience, List: list.Type, Hash: h, Op: audience.OpRemove, EventTime: at(23), Received: true},
			Stale, row(In, In, p(10, audience.OpAdd)), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.cur, tt.c)
			if d.Outcome != tt.want || d.Row != tt.wantRow || d.Members != tt.wantMembers || d.Row.Pending() != tt.wantPending {
				t.Fatalf("Decide = %v %+v members %+d pending %v, want %v %+v members %+d pending %v",
					d.Outcome, d.Row, d.Members, d.Row.Pending(), tt.want, tt.wantRow, tt.wantMembers, tt.wantPending)
			}
		})
	}
}

func TestPrepareCoalescesAndValidates(t *testing.T) {
	list := List{Audience: audience.Ref{Namespace: "ups", ID: "a"}, Type: audience.ListEmail}
	h1, h2 := hashOf("1"), hashOf("2")
	got, stale, err := prepare([]audience.Change{
		change(list, h1, audience.OpAdd, 10),
		change(list, h2, audience.OpAdd, 10),
		change(list, h1, audience.OpRemove, 11),
		change(list, h1, audience.OpAdd, 9),
		change(list, h1, audience.OpRemove, 11),
	})
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	if stale != 3 || len(got) != 2 || got[0].hash != h1 || got[0].op != audience.OpRemove || got[1].hash != h2 {
		t.Fatalf("prepare = %+v, %d stale; want h1 REMOVE@11, h2 ADD@10 and 3 stale", got, stale)
	}

	bad := []struct {
		name string
		c    audience.Change
	}{
		{"short hash", change(list, "abc", audience.OpAdd, 10)},
		{"upper-case hash", change(list, "A"+h1[1:], audience.OpAdd, 10)},
		{"unknown op", change(list, h1, "DELETE", 10)},
		{"no audience", change(List{Type: audience.ListEmail}, h1, audience.OpAdd, 10)},
		{"no list type", change(List{Audience: list.Audience}, h1, audience.OpAdd, 10)},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := prepare([]audience.Change{change(list, h2, audience.OpAdd, 1), tt.c}); err == nil {
				t.Fatal("prepare: want an error")
			}
		})
	}
}

// at is an hour of a fixed day.
func at(hour int) time.Time { return time.Date(2026, 5, 1, hour, 0, 0, 0, time.UTC) }

// change is an event-timed change at hour.
func change(list List, hash string, op audience.Op, hour int) audience.Change {
	return audience.Change{Audience: list.Audience, List: list.Type, Hash: hash, Op: op, EventTime: at(hour)}
}
