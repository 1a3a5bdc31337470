package queue

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestLocalBatchWindow: a free group is held until its head message is
// BatchWindow old or a full batch waits; without a window it is served at
// once. Each step advances the clock, optionally sends, then receives.
func TestLocalBatchWindow(t *testing.T) {
	type step struct {
		advance time.Duration
		send    []Outgoing
		want    []string // bodies received (and deleted); nil: nothing
	}
	tests := []struct {
		name   string
		window time.Duration
		size   int
		steps  []step
	}{
		{"no window delivers at once", 0, 5, []step{
			{send: msgs("a", 0, 2), want: []string{"a/0000", "a/0001"}},
			{send: msgs("a", 2, 1), want: []string{"a/0002"}},
		}},
		{"held until the head is a window old", 2 * time.Second, 5, []step{
			{send: msgs("a", 0, 2)},
			{advance: 1999 * time.Millisecond},
			{advance: time.Millisecond, want: []string{"a/0000", "a/0001"}},
		}},
		{"the window counts from the head, not the latest", 2 * time.Second, 5, []step{
			{send: msgs("a", 0, 1)},
			{advance: 1500 * time.Millisecond, send: msgs("a", 1, 2)},
			{advance: 500 * time.Millisecond, want: []string{"a/0000", "a/0001", "a/0002"}},
		}},
		{"a full batch is not held", 2 * time.Second, 5, []step{
			{send: msgs("a", 0, 4)},
			{send: msgs("a", 4, 3), want: []string{"a/0000", "a/0001", "a/0002", "a/0003", "a/0004"}},
			// The rest was sent at the same time as the first: its window
			// has not passed.
			{advance: time.Second},
			{advance: time.Second, want: []string{"a/0005", "a/0006"}},
		}},
		{"a later message starts its own window", time.Second, 5, []step{
			{send: msgs("a", 0, 1)},
			{advance: time.Second, want: []string{"a/0000"}},
			{advance: 100 * time.Millisecond, send: msgs("a", 1, 1)},
			{advance: 999 * time.Millisecond},
			{advance: time.Millisecond, want: []string{"a/0001"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, clock := openTestLocal(t, LocalOptions{BatchWindow: tt.window, BatchSize: tt.size})
			for i, s := range tt.steps {
				clock.Advance(s.advance)
				send(t, l, s.send...)
				b := receive(t, l, tt.size)
				if diff := cmp.Diff(s.want, bodies(b)); diff != "" {
					t.Fatalf("step %d: received (-want +got):\n%s", i, diff)
				}
				deleteAll(t, l, b)
			}
			if s := stats(t, l); s.Queued+s.InFlight != 0 {
				t.Errorf("left in the queue: %+v", s)
			}
		})
	}
}

// TestLocalLargeBatchInOrder: a batch above SQS's 10 comes out whole and in
// send order, and the group stays locked while it is in flight, whatever
// waits behind it and however long; another group is served meanwhile.
func TestLocalLargeBatchInOrder(t *testing.T) {
	const size = 250
	l, clock := openTestLocal(t, LocalOptions{BatchWindow: time.Second, BatchSize: size})
	send(t, l, msgs("a", 0, size+size/2)...)
	first := receive(t, l, size)
	if diff := cmp.Diff(sentBodies(msgs("a", 0, size)), bodies(first)); diff != "" {
		t.Fatalf("first batch (-want +got):\n%s", diff)
	}

	send(t, l, msgs("a", size+size/2, size)...) // a full batch waits behind the one in flight
	send(t, l, msgs("b", 0, 1)...)
	clock.Advance(2 * time.Second)
	other := receive(t, l, size)
	if diff := cmp.Diff([]string{"b/0000"}, bodies(other)); diff != "" {
		t.Fatalf("while a is in flight (-want +got):\n%s", diff)
	}
	deleteAll(t, l, other)
	if b := receive(t, l, size); len(b.Messages) != 0 {
		t.Fatalf("received %d messages of group %s while a's batch is in flight", len(b.Messages), b.GroupID)
	}

	deleteAll(t, l, first)
	got := bodies(first)
	for {
		b := receive(t, l, size)
		if len(b.Messages) == 0 {
			break
		}
		got = append(got, bodies(b)...)
		deleteAll(t, l, b)
	}
	if diff := cmp.Diff(sentBodies(msgs("a", 0, 2*size+size/2)), got); diff != "" {
		t.Errorf("all of a (-want +got):\n%s", diff)
	}
}

// sentBodies are the bodies of ms.
func sentBodies(ms []Outgoing) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Body)
	}
	return out
}

// TestLocalBatchWindowRetries: released messages keep their send time, so
// once their delay is over they are not held by the window a second time.
func TestLocalBatchWindowRetries(t *testing.T) {
	ctx := context.Background()
	l, clock := openTestLocal(t, LocalOptions{BatchWindow: 5 * time.Second, BatchSize: 10})
	send(t, l, msgs("a", 0, 2)...)
	clock.Advance(5 * time.Second)
	b := receive(t, l, 10)
	if err := l.Release(ctx, time.Second, receipts(b.Messages)...); err != nil {
		t.Fatal(err)
	}
	send(t, l, msgs("a", 2, 1)...)
	if b := receive(t, l, 10); len(b.Messages) != 0 {
		t.Fatalf("received %v during the release delay", bodies(b))
	}
	clock.Advance(time.Second)
	again := receive(t, l, 10)
	if diff := cmp.Diff([]string{"a/0000", "a/0001", "a/0002"}, bodies(again)); diff != "" {
		t.Errorf("after the delay (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{2, 2, 1}, counts(again)); diff != "" {
		t.Errorf("receive counts (-want +got):\n%s", diff)
	}
}

// TestLocalBatchWindowTakeover: a consumer that died with a batch in flight
// leaves it to the next, which delivers it at once (its head is old enough),
// and holds back a group whose window has not passed.
func TestLocalBatchWindowTakeover(t *testing.T) {
	ctx := context.Background()
	clock := newLocalClock()
	opts := LocalOptions{
		Path: filepath.Join(t.TempDir(), "queue.db"), Consumer: true, Now: clock.Now,
		BatchWindow: time.Second, BatchSize: 10,
	}
	a, err := OpenLocal(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	send(t, a, msgs("a", 0, 2)...)
	clock.Advance(time.Second)
	send(t, a, msgs("b", 0, 1)...)
	if b := receive(t, a, 10); b.GroupID != "a" {
		t.Fatalf("received group %q, want a", b.GroupID)
	}
	if err := a.Close(); err != nil { // no delete: as if killed
		t.Fatal(err)
	}

	b, err := OpenLocal(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	next := receive(t, b, 10)
	if diff := cmp.Diff([]string{"a/0000", "a/0001"}, bodies(next)); diff != "" {
		t.Errorf("after takeover (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{2, 2}, counts(next)); diff != "" {
		t.Errorf("receive counts after takeover (-want +got):\n%s", diff)
	}
	if held := receive(t, b, 10); len(held.Messages) != 0 {
		t.Errorf("received %v of group %s before its window passed", bodies(held), held.GroupID)
	}
	clock.Advance(time.Second)
	if diff := cmp.Diff([]string{"b/0000"}, bodies(receive(t, b, 10))); diff != "" {
		t.Errorf("after b's window (-want +got):\n%s", diff)
	}
}

func TestLocalBatchOptionLimits(t *testing.T) {
	tests := []struct {
		name string
		opts LocalOptions
		want string
	}{
		{"negative window", LocalOptions{BatchWindow: -time.Second}, "batch window"},
		{"negative size", LocalOptions{BatchSize: -1}, "batch size"},
		{"size above the local limit", LocalOptions{BatchSize: MaxLocalBatch + 1}, "batch size"},
		{"negative bytes", LocalOptions{BatchBytes: -1}, "batch bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Path = filepath.Join(t.TempDir(), "queue.db")
			l, err := OpenLocal(context.Background(), tt.opts)
			if err == nil {
				l.Close()
				t.Fatal("OpenLocal: no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("OpenLocal: err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

// TestLocalBatchBytes: a receive stops before the bodies exceed BatchBytes,
// but always delivers at least one message.
func TestLocalBatchBytes(t *testing.T) {
	l, _ := openTestLocal(t, LocalOptions{BatchSize: 100, BatchBytes: 20})
	send(t, l, msgs("a", 0, 4)...) // bodies of 6 bytes: three fit
	send(t, l, Outgoing{GroupID: "a", Body: []byte(strings.Repeat("x", 25))})
	send(t, l, msgs("a", 4, 1)...)
	var sizes []int
	for {
		b := receive(t, l, 100)
		if len(b.Messages) == 0 {
			break
		}
		sizes = append(sizes, len(b.Messages))
		deleteAll(t, l, b)
	}
	if diff := cmp.Diff([]int{3, 1, 1, 1}, sizes); diff != "" {
		t.Errorf("batch sizes (-want +got):\n%s", diff)
	}
}
