package queue

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// localClock is a clock tests move by hand.
type localClock struct {
	mu sync.Mutex
	t  time.Time
}

func newLocalClock() *localClock {
	return &localClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
}

func (c *localClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *localClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// openTestLocal opens a consumer on a new file with a hand-moved clock and
// closes it at the end of the test.
func openTestLocal(t testing.TB, opts LocalOptions) (*Local, *localClock) {
	t.Helper()
	clock := newLocalClock()
	if opts.Path == "" {
		opts.Path = filepath.Join(t.TempDir(), "queue.db")
	}
	if opts.Now == nil {
		opts.Now = clock.Now
	}
	opts.Consumer = true
	l, err := OpenLocal(context.Background(), opts)
	if err != nil {
		t.Fatalf("OpenLocal: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l, clock
}

// msgs builds messages of one group with bodies "<group>/<first+i>".
func msgs(group string, first, n int) []Outgoing {
	out := make([]Outgoing, n)
	for i := range out {
		out[i] = Outgoing{GroupID: group, Body: []byte(fmt.Sprintf("%s/%04d", group, first+i))}
	}
	return out
}

func send(t testing.TB, l *Local, ms ...Outgoing) {
	t.Helper()
	for len(ms) > 0 {
		n := min(MaxBatch, len(ms))
		failed, err := l.SendBatch(context.Background(), ms[:n])
		if err != nil || len(failed) > 0 {
			t.Fatalf("SendBatch: failed %v, err %v", failed, err)
		}
		ms = ms[n:]
	}
}

func receive(t testing.TB, l *Local, max int) Batch {
	t.Helper()
	b, err := l.ReceiveGroupBatch(context.Background(), max)
	if err != nil {
		t.Fatalf("ReceiveGroupBatch: %v", err)
	}
	if len(b.Messages) == 0 && b.GroupID != "" {
		t.Fatalf("empty batch names group %q", b.GroupID)
	}
	for _, m := range b.Messages {
		if m.GroupID != b.GroupID {
			t.Fatalf("batch of group %q holds a message of group %q", b.GroupID, m.GroupID)
		}
	}
	return b
}

func bodies(b Batch) []string {
	var out []string
	for _, m := range b.Messages {
		out = append(out, string(m.Body))
	}
	return out
}

func receipts(ms []Received) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Receipt)
	}
	return out
}

func counts(b Batch) []int {
	var out []int
	for _, m := range b.Messages {
		out = append(out, m.ReceiveCount)
	}
	return out
}

func deleteAll(t testing.TB, l *Local, b Batch) {
	t.Helper()
	if err := l.Delete(context.Background(), receipts(b.Messages)...); err != nil {
		t.Fatalf("Delete: %v", err)
	}
}

// drain receives and deletes until the queue has nothing to deliver and
// returns the bodies per group in delivery order.
func drain(t testing.TB, l *Local, max int) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	for {
		b := receive(t, l, max)
		if len(b.Messages) == 0 {
			return got
		}
		got[b.GroupID] = append(got[b.GroupID], bodies(b)...)
		deleteAll(t, l, b)
	}
}

func stats(t testing.TB, l *Local) LocalStats {
	t.Helper()
	s, err := l.Stats(context.Background())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return s
}

func TestLocalOrderWithinGroup(t *testing.T) {
	l, _ := openTestLocal(t, LocalOptions{})
	// 150 sends over three groups, interleaved, in batches of 1 to 10, all
	// in the same millisecond (the clock does not move), so only the
	// sequence can order them.
	want := map[string][]string{}
	var batch []Outgoing
	for i := range 150 {
		g := []string{"aud-a", "aud-b", "aud-c"}[i*7%3]
		m := Outgoing{GroupID: g, Body: []byte(fmt.Sprintf("%s/%04d", g, i))}
		want[g] = append(want[g], string(m.Body))
		batch = append(batch, m)
		if len(batch) == i%10+1 {
			send(t, l, batch...)
			batch = nil
		}
	}
	send(t, l, batch...)
	for _, max := range []int{1, 3, 10} {
		t.Run(fmt.Sprintf("max %d", max), func(t *testing.T) {
			if max != 1 {
				// Refill for this run.
				for _, g := range []string{"aud-a", "aud-b", "aud-c"} {
					var ms []Outgoing
					for _, b := range want[g] {
						ms = append(ms, Outgoing{GroupID: g, Body: []byte(b)})
					}
					send(t, l, ms...)
				}
			}
			if diff := cmp.Diff(want, drain(t, l, max)); diff != "" {
				t.Errorf("delivery order (-sent +delivered):\n%s", diff)
			}
		})
	}
}

func TestLocalOneBatchPerGroupInFlight(t *testing.T) {
	const vt = 30 * time.Second
	tests := []struct {
		name string
		// end finishes the first batch a/0000, a/0001 (receipts r).
		end        func(t *testing.T, l *Local, c *localClock, r []string)
		wantBodies []string
		wantCounts []int
	}{
		{
			name: "deleted",
			end: func(t *testing.T, l *Local, _ *localClock, r []string) {
				if err := l.Delete(context.Background(), r...); err != nil {
					t.Fatal(err)
				}
			},
			wantBodies: []string{"a/0002", "a/0003"}, wantCounts: []int{1, 1},
		},
		{
			name: "released now",
			end: func(t *testing.T, l *Local, _ *localClock, r []string) {
				if err := l.Release(context.Background(), 0, r...); err != nil {
					t.Fatal(err)
				}
			},
			wantBodies: []string{"a/0000", "a/0001"}, wantCounts: []int{2, 2},
		},
		{
			name: "released with a delay",
			end: func(t *testing.T, l *Local, c *localClock, r []string) {
				if err := l.Release(context.Background(), 10*time.Second, r...); err != nil {
					t.Fatal(err)
				}
				c.Advance(10*time.Second - time.Millisecond)
				if b := receive(t, l, 2); len(b.Messages) != 0 {
					t.Fatalf("before the delay: got %v", bodies(b))
				}
				c.Advance(time.Millisecond)
			},
			wantBodies: []string{"a/0000", "a/0001"}, wantCounts: []int{2, 2},
		},
		{
			name: "timed out",
			end: func(t *testing.T, l *Local, c *localClock, _ []string) {
				c.Advance(vt - time.Millisecond)
				if b := receive(t, l, 2); len(b.Messages) != 0 {
					t.Fatalf("before the timeout: got %v", bodies(b))
				}
				c.Advance(time.Millisecond)
			},
			wantBodies: []string{"a/0000", "a/0001"}, wantCounts: []int{2, 2},
		},
		{
			name: "first deleted, second released",
			end: func(t *testing.T, l *Local, _ *localClock, r []string) {
				if err := l.Delete(context.Background(), r[0]); err != nil {
					t.Fatal(err)
				}
				// Still one message in flight: the group stays locked.
				if b := receive(t, l, 2); len(b.Messages) != 0 {
					t.Fatalf("with a/0001 in flight: got %v", bodies(b))
				}
				if err := l.Release(context.Background(), 0, r[1]); err != nil {
					t.Fatal(err)
				}
			},
			wantBodies: []string{"a/0001", "a/0002"}, wantCounts: []int{2, 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, clock := openTestLocal(t, LocalOptions{VisibilityTimeout: vt})
			send(t, l, msgs("a", 0, 5)...)
			first := receive(t, l, 2)
			if diff := cmp.Diff([]string{"a/0000", "a/0001"}, bodies(first)); diff != "" {
				t.Fatalf("first batch (-want +got):\n%s", diff)
			}
			if b := receive(t, l, 2); len(b.Messages) != 0 {
				t.Fatalf("second batch while the first is in flight: got %v", bodies(b))
			}
			tt.end(t, l, clock, receipts(first.Messages))
			next := receive(t, l, 2)
			if diff := cmp.Diff(tt.wantBodies, bodies(next)); diff != "" {
				t.Errorf("next batch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantCounts, counts(next)); diff != "" {
				t.Errorf("receive counts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLocalParallelGroups(t *testing.T) {
	l, clock := openTestLocal(t, LocalOptions{})
	for _, g := range []string{"w", "x", "y", "z"} {
		send(t, l, msgs(g, 0, 2)...)
		clock.Advance(time.Millisecond)
	}
	var groups []string
	for range 4 {
		b := receive(t, l, 10)
		groups = append(groups, b.GroupID)
		if diff := cmp.Diff([]string{b.GroupID + "/0000", b.GroupID + "/0001"}, bodies(b)); diff != "" {
			t.Errorf("group %s batch (-want +got):\n%s", b.GroupID, diff)
		}
	}
	// Round robin from the group that has waited longest.
	if diff := cmp.Diff([]string{"w", "x", "y", "z"}, groups); diff != "" {
		t.Errorf("groups in flight together (-want +got):\n%s", diff)
	}
	if b := receive(t, l, 10); len(b.Messages) != 0 {
		t.Errorf("all groups in flight, got %v", bodies(b))
	}
	s := stats(t, l)
	if want := (LocalStats{InFlight: 8, Groups: 4, OldestAge: 4 * time.Millisecond}); s != want {
		t.Errorf("Stats = %+v, want %+v", s, want)
	}
}

func TestLocalDeadLetterAndRedrive(t *testing.T) {
	const vt = time.Second
	l, clock := openTestLocal(t, LocalOptions{VisibilityTimeout: vt, MaxReceive: 2})
	sentAt := clock.Now()
	send(t, l, msgs("a", 0, 2)...)
	send(t, l, msgs("b", 0, 1)...)
	// a/0000 is delivered twice and never deleted; b/0000 is delivered
	// twice, so b has nothing left after its dead letter.
	for i := 1; i <= 2; i++ {
		ba, bb := receive(t, l, 1), receive(t, l, 1)
		got := append(bodies(ba), bodies(bb)...)
		if diff := cmp.Diff([]string{"a/0000", "b/0000"}, got); diff != "" {
			t.Fatalf("delivery %d (-want +got):\n%s", i, diff)
		}
		if ba.Messages[0].ReceiveCount != i || bb.Messages[0].ReceiveCount != i {
			t.Fatalf("delivery %d: receive counts %d, %d", i, ba.Messages[0].ReceiveCount, bb.Messages[0].ReceiveCount)
		}
		clock.Advance(vt)
	}
	deadAt := clock.Now()
	// The third receive of a moves a/0000 to the dead letters and goes on
	// with a's next message; that of b leaves b empty, so nothing is
	// delivered.
	b := receive(t, l, 10)
	if diff := cmp.Diff([]string{"a/0001"}, bodies(b)); diff != "" {
		t.Fatalf("after max receive (-want +got):\n%s", diff)
	}
	if b := receive(t, l, 10); len(b.Messages) != 0 {
		t.Fatalf("b after max receive: got %v", bodies(b))
	}
	deleteAll(t, l, b)
	dead, err := l.DeadLetters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := range dead {
		dead[i].ID = ""
	}
	want := []DeadLetter{
		{GroupID: "a", Body: []byte("a/0000"), ReceiveCount: 2, SentAt: sentAt, DeadAt: deadAt},
		{GroupID: "b", Body: []byte("b/0000"), ReceiveCount: 2, SentAt: sentAt, DeadAt: deadAt},
	}
	if diff := cmp.Diff(want, dead); diff != "" {
		t.Errorf("DeadLetters (-want +got):\n%s", diff)
	}
	if s := stats(t, l); s != (LocalStats{DeadLetters: 2}) {
		t.Errorf("Stats = %+v, want only 2 dead letters", s)
	}

	// Redrive one, then the rest; each goes to its group's tail with a
	// fresh receive count.
	send(t, l, msgs("a", 2, 1)...)
	for _, max := range []int{1, 0} {
		n, err := l.Redrive(context.Background(), max)
		if err != nil || n != 1 {
			t.Fatalf("Redrive(%d) = %d, %v; want 1", max, n, err)
		}
	}
	got := drain(t, l, 10)
	if diff := cmp.Diff(map[string][]string{"a": {"a/0002", "a/0000"}, "b": {"b/0000"}}, got); diff != "" {
		t.Errorf("after redrive (-want +got):\n%s", diff)
	}
	if s := stats(t, l); s != (LocalStats{}) {
		t.Errorf("Stats after drain = %+v, want zero", s)
	}
}

func TestLocalDedup(t *testing.T) {
	m := func(body, dedup string) Outgoing {
		return Outgoing{GroupID: "a", DedupID: dedup, Body: []byte(body)}
	}
	tests := []struct {
		name  string
		sends [][]Outgoing
		// wait before each send after the first
		wait time.Duration
		want []string
	}{
		{
			name:  "duplicate in one batch",
			sends: [][]Outgoing{{m("one", "d1"), m("two", "d1"), m("three", "d3")}},
			want:  []string{"one", "three"},
		},
		{
			name:  "duplicate in a later batch",
			sends: [][]Outgoing{{m("one", "d1")}, {m("again", "d1"), m("two", "d2")}},
			wait:  localDedupWindow - time.Millisecond,
			want:  []string{"one", "two"},
		},
		{
			name:  "same id after the window",
			sends: [][]Outgoing{{m("one", "d1")}, {m("again", "d1")}},
			wait:  localDedupWindow,
			want:  []string{"one", "again"},
		},
		{
			name:  "no dedup id",
			sends: [][]Outgoing{{m("one", ""), m("one", "")}},
			want:  []string{"one", "one"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, clock := openTestLocal(t, LocalOptions{})
			var got []string
			for i, batch := range tt.sends {
				if i > 0 {
					clock.Advance(tt.wait)
				}
				send(t, l, batch...)
				// Deleting the first copy does not forget its id.
				got = append(got, drain(t, l, 10)["a"]...)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("delivered (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLocalDedupDoesNotExtendWindow(t *testing.T) {
	l, clock := openTestLocal(t, LocalOptions{})
	send(t, l, Outgoing{GroupID: "a", DedupID: "d", Body: []byte("one")})
	clock.Advance(localDedupWindow - time.Second)
	send(t, l, Outgoing{GroupID: "a", DedupID: "d", Body: []byte("dropped")})
	clock.Advance(time.Second)
	send(t, l, Outgoing{GroupID: "a", DedupID: "d", Body: []byte("two")})
	if diff := cmp.Diff([]string{"one", "two"}, drain(t, l, 10)["a"]); diff != "" {
		t.Errorf("delivered (-want +got):\n%s", diff)
	}
}

func TestLocalSendValidation(t *testing.T) {
	ok := Outgoing{GroupID: "a", Body: []byte("{}")}
	tests := []struct {
		name string
		msgs []Outgoing
		want string
	}{
		{"too many", msgs("a", 0, MaxBatch+1), "at most 10"},
		{"empty group", []Outgoing{ok, {Body: []byte("x")}}, "group id is empty"},
		{"space in group", []Outgoing{{GroupID: "a b", Body: []byte("x")}}, "letters, digits and punctuation"},
		{"long group", []Outgoing{{GroupID: strings.Repeat("g", 129), Body: []byte("x")}}, "at most 128"},
		{"long dedup id", []Outgoing{{GroupID: "a", DedupID: strings.Repeat("d", 129), Body: []byte("x")}}, "at most 128"},
		{"empty body", []Outgoing{{GroupID: "a"}}, "body of 0 bytes"},
		{"body too large", []Outgoing{{GroupID: "a", Body: make([]byte, localMaxBody+1)}}, "want 1 to"},
		{"invalid utf-8", []Outgoing{{GroupID: "a", Body: []byte{'{', 0xff, '}'}}}, "body byte 1"},
		{"control character", []Outgoing{{GroupID: "a", Body: []byte("a\x01")}}, "body byte 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, _ := openTestLocal(t, LocalOptions{})
			failed, err := l.SendBatch(context.Background(), tt.msgs)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("SendBatch error = %v, want one containing %q", err, tt.want)
			}
			if failed != nil {
				t.Errorf("failed = %v, want nil with a whole-call error", failed)
			}
			if s := stats(t, l); s != (LocalStats{}) {
				t.Errorf("Stats = %+v: something was enqueued", s)
			}
		})
	}
	t.Run("largest body and all accepted characters", func(t *testing.T) {
		l, _ := openTestLocal(t, LocalOptions{})
		body := []byte(strings.Repeat("\t\n\r ~é\u20ac\U0001F4CC", localMaxBody/16))
		body = append(body, strings.Repeat("x", localMaxBody-len(body))...)
		send(t, l, Outgoing{GroupID: "aud-!#$%&'()*+,-./:;<=>?@[]^_`{|}~", Body: body})
		b := receive(t, l, 1)
		if len(b.Messages) != 1 || string(b.Messages[0].Body) != string(body) {
			t.Errorf("round trip of a %d-byte body failed", len(body))
		}
	})
}

func TestLocalStaleReceipt(t *testing.T) {
	const vt = time.Second
	l, clock := openTestLocal(t, LocalOptions{VisibilityTimeout: vt})
	send(t, l, msgs("a", 0, 2)...)
	first := receive(t, l, 1)
	clock.Advance(vt)
	second := receive(t, l, 1)
	if first.Messages[0].ID != second.Messages[0].ID || first.Messages[0].Receipt == second.Messages[0].Receipt {
		t.Fatalf("redelivery: ids %s, %s receipts %s, %s", first.Messages[0].ID, second.Messages[0].ID,
			first.Messages[0].Receipt, second.Messages[0].Receipt)
	}
	// The first delivery's receipt neither deletes nor releases the second.
	if err := l.Delete(context.Background(), first.Messages[0].Receipt); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(context.Background(), 0, first.Messages[0].Receipt); err != nil {
		t.Fatal(err)
	}
	if s := stats(t, l); s.InFlight != 1 || s.Queued != 1 {
		t.Fatalf("after stale receipts: %+v, want 1 in flight and 1 queued", s)
	}
	deleteAll(t, l, second)
	if diff := cmp.Diff([]string{"a/0001"}, bodies(receive(t, l, 10))); diff != "" {
		t.Errorf("after delete (-want +got):\n%s", diff)
	}
	if err := l.Delete(context.Background(), "not-a-receipt"); err == nil {
		t.Error("Delete of a malformed receipt: no error")
	}
}

func TestLocalConcurrentReceivers(t *testing.T) {
	l, _ := openTestLocal(t, LocalOptions{Now: time.Now})
	const n, groups, workers = 600, 12, 6
	var all []Outgoing
	for i := range n {
		g := fmt.Sprintf("g%02d", i%groups)
		all = append(all, Outgoing{GroupID: g, Body: []byte(fmt.Sprintf("%s/%04d", g, i))})
	}
	var (
		mu       sync.Mutex
		inFlight = map[string]bool{}
		got      = map[string][]string{}
		total    int
		errs     []string
	)
	// Senders and receivers run together; receivers stop once everything
	// was delivered (or the deadline passes and the diff below fails).
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { send(t, l, all...) })
	for w := range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				b, err := l.ReceiveGroupBatch(ctx, 1+w%MaxBatch)
				if err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
				mu.Lock()
				if len(b.Messages) == 0 {
					done := total == n
					mu.Unlock()
					if done {
						return
					}
					time.Sleep(time.Millisecond)
					continue
				}
				if inFlight[b.GroupID] {
					errs = append(errs, "two batches of group "+b.GroupID+" in flight")
				}
				inFlight[b.GroupID] = true
				got[b.GroupID] = append(got[b.GroupID], bodies(b)...)
				total += len(b.Messages)
				mu.Unlock()

				time.Sleep(time.Duration(w%3) * time.Millisecond) // processing: another batch of the group now would be seen
				mu.Lock()
				inFlight[b.GroupID] = false // before Delete commits: the group is still locked until then
				mu.Unlock()
				if err := l.Delete(ctx, receipts(b.Messages)...); err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, e := range errs {
		t.Error(e)
	}
	want := map[string][]string{}
	for _, m := range all {
		want[m.GroupID] = append(want[m.GroupID], string(m.Body))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("each message once, in group order (-want +got):\n%s", diff)
	}
}

func TestLocalStats(t *testing.T) {
	l, clock := openTestLocal(t, LocalOptions{})
	if s := stats(t, l); s != (LocalStats{}) {
		t.Errorf("empty queue: %+v", s)
	}
	send(t, l, msgs("a", 0, 3)...)
	clock.Advance(2 * time.Second)
	send(t, l, msgs("b", 0, 2)...)
	clock.Advance(time.Second)
	receive(t, l, 2) // a/0000, a/0001
	want := LocalStats{Queued: 3, InFlight: 2, Groups: 2, OldestAge: 3 * time.Second}
	if s := stats(t, l); s != want {
		t.Errorf("Stats = %+v, want %+v", s, want)
	}
}

func TestLocalMaintain(t *testing.T) {
	l, clock := openTestLocal(t, LocalOptions{})
	path := l.path
	body := localBenchBody(50_000)
	for i := range 100 {
		send(t, l, Outgoing{GroupID: fmt.Sprint("g", i%4), DedupID: fmt.Sprint("d", i), Body: body})
	}
	drain(t, l, 10)
	clock.Advance(localDedupWindow)
	if err := l.Maintain(context.Background()); err != nil {
		t.Fatalf("Maintain: %v", err)
	}
	var free, dedup int
	if err := l.db.QueryRow(`pragma freelist_count`).Scan(&free); err != nil {
		t.Fatal(err)
	}
	if err := l.db.QueryRow(`select count(*) from pinlist_queue_dedup`).Scan(&dedup); err != nil {
		t.Fatal(err)
	}
	if free != 0 || dedup != 0 {
		t.Errorf("after Maintain: %d free pages, %d dedup ids; want 0, 0", free, dedup)
	}
	for file, limit := range map[string]int64{path: 1 << 20, path + "-wal": 0} {
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > limit {
			t.Errorf("%s is %d bytes after Maintain, want at most %d (5 MB went through it)",
				filepath.Base(file), fi.Size(), limit)
		}
	}
}

func TestLocalFileSettings(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "queue.db")
	for i := range 2 { // a new file, then an existing one
		l, err := OpenLocal(context.Background(), LocalOptions{Path: path, Consumer: true})
		if err != nil {
			t.Fatal(err)
		}
		var autoVacuum int
		var journal string
		if err := l.db.QueryRow(`pragma auto_vacuum`).Scan(&autoVacuum); err != nil {
			t.Fatal(err)
		}
		if err := l.db.QueryRow(`pragma journal_mode`).Scan(&journal); err != nil {
			t.Fatal(err)
		}
		if autoVacuum != 2 || journal != "wal" {
			t.Errorf("open %d: auto_vacuum %d, journal_mode %s; want 2 (incremental), wal", i, autoVacuum, journal)
		}
		send(t, l, msgs("a", i, 1)...)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for file, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, path: 0o600} {
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s mode %v, want %v", file, fi.Mode(), want)
		}
	}
}

func TestLocalRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	l, _ := openTestLocal(t, LocalOptions{Path: path})
	if _, err := l.db.Exec(fmt.Sprintf(`pragma user_version = %d`, localSchemaVersion+1)); err != nil {
		t.Fatal(err)
	}
	_, err := OpenLocal(context.Background(), LocalOptions{Path: path})
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("OpenLocal on a newer schema: err = %v, want a refusal", err)
	}
}

func TestLocalReceiveLimits(t *testing.T) {
	l, _ := openTestLocal(t, LocalOptions{})
	for _, max := range []int{0, MaxLocalBatch + 1} {
		if _, err := l.ReceiveGroupBatch(context.Background(), max); err == nil {
			t.Errorf("ReceiveGroupBatch(%d): no error", max)
		}
	}
	if err := l.Release(context.Background(), -time.Second); err == nil {
		t.Error("Release with a negative delay: no error")
	}
}
