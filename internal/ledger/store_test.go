package ledger

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/awstest"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

var moto awstest.Lazy

func TestMain(m *testing.M) { os.Exit(awstest.MainLazy(m, &moto)) }

// backend opens an empty store.
type backend struct {
	name string
	open func(t testing.TB) Store
}

// backends are every store; each test of the rules runs against all.
var backends = []backend{
	{"sqlite", func(t testing.TB) Store { return openSQLite(t) }},
	{"dynamodb", func(t testing.TB) Store { return openDynamo(t) }},
}

// openDynamo creates a ledger table of its own on the test binary's
// moto_server and returns a store on it.
func openDynamo(t testing.TB) *Dynamo { return openDynamoWith(t, DynamoOptions{}) }

// openDynamoWith is openDynamo with opts (Client and Table are set here).
func openDynamoWith(t testing.TB, opts DynamoOptions) *Dynamo {
	t.Helper()
	m := moto.Get(t)
	name := m.UniqueName("ledger")
	if err := CreateDynamoTable(t.Context(), m.DynamoDB(), name); err != nil {
		t.Fatalf("create ledger table: %v", err)
	}
	opts.Client, opts.Table = &serialDynamo{api: m.DynamoDB()}, name
	d, err := NewDynamo(opts)
	if err != nil {
		t.Fatalf("new DynamoDB ledger: %v", err)
	}
	return d
}

// openSQLite opens an empty SQLite store in a new file, with the local
// queue's connection settings.
func openSQLite(t testing.TB) *SQLite {
	t.Helper()
	db := openSQLiteDB(t, filepath.Join(t.TempDir(), "ledger.db"))
	s, err := NewSQLite(t.Context(), SQLiteOptions{DB: db})
	if err != nil {
		t.Fatalf("new SQLite ledger: %v", err)
	}
	return s
}

func openSQLiteDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_busy_timeout=10000&_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate")
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

var (
	listA = List{Audience: audience.Ref{Namespace: "ups", ID: "aud-1"}, Type: audience.ListEmail}
	listB = List{Audience: audience.Ref{Namespace: "ups", ID: "aud-2"}, Type: audience.ListMAID}
	h1    = hashOf("one")
	h2    = hashOf("two")
	h3    = hashOf("three")
)

const (
	add = audience.OpAdd
	rem = audience.OpRemove
)

// run is one case's store and what its steps hold between them.
type run struct {
	s    Store
	held []Pending
}

type step struct {
	name string
	do   func(t *testing.T, r *run)
}

// apply applies changes and expects res.
func apply(res Result, changes ...audience.Change) step {
	return step{fmt.Sprintf("apply %d", len(changes)), func(t *testing.T, r *run) {
		got, err := r.s.Apply(t.Context(), changes)
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
		if got != res {
			t.Fatalf("Apply = %+v, want %+v", got, res)
		}
	}}
}

// send reads list's pending rows for op, expects hashes, and marks them sent.
func send(list List, op audience.Op, hashes ...string) step {
	return step{fmt.Sprintf("send %s %s", list.Key(), op), func(t *testing.T, r *run) {
		p := readPending(t, r.s, list, op, hashes)
		if err := r.s.MarkSent(t.Context(), list, op, p); err != nil {
			t.Fatalf("MarkSent: %v", err)
		}
	}}
}

// hold reads list's pending rows for op, expects hashes, and keeps them for
// markHeld (an upload in flight).
func hold(list List, op audience.Op, hashes ...string) step {
	return step{fmt.Sprintf("hold %s %s", list.Key(), op), func(t *testing.T, r *run) {
		r.held = readPending(t, r.s, list, op, hashes)
	}}
}

// sending reads list's pending rows for op, expects hashes, and marks them
// as being sent (Store.Sending); they stay held for markHeld (the call's
// answer is awaited).
func sending(list List, op audience.Op, hashes ...string) step {
	return step{fmt.Sprintf("sending %s %s", list.Key(), op), func(t *testing.T, r *run) {
		r.held = readPending(t, r.s, list, op, hashes)
		sendingHeld(list, op).do(t, r)
	}}
}

// sendingHeld marks what hold read as being sent as op.
func sendingHeld(list List, op audience.Op) step {
	return step{fmt.Sprintf("sending held %s %s", list.Key(), op), func(t *testing.T, r *run) {
		if err := r.s.Sending(t.Context(), list, op, r.held); err != nil {
			t.Fatalf("Sending: %v", err)
		}
	}}
}

// markHeld marks what hold read as sent.
func markHeld(list List, op audience.Op) step {
	return step{fmt.Sprintf("mark held %s %s", list.Key(), op), func(t *testing.T, r *run) {
		if err := r.s.MarkSent(t.Context(), list, op, r.held); err != nil {
			t.Fatalf("MarkSent: %v", err)
		}
	}}
}

func readPending(t *testing.T, s Store, list List, op audience.Op, hashes []string) []Pending {
	t.Helper()
	p, err := s.Pending(t.Context(), list, op, 100)
	if err != nil {
		t.Fatalf("Pending(%s): %v", op, err)
	}
	var got []string
	for _, x := range p {
		if x.Op != op {
			t.Errorf("pending row %s has op %s, want %s", x.Hash[:8], x.Op, op)
		}
		got = append(got, x.Hash)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(hashes))
	if !slices.Equal(got, want) {
		t.Fatalf("Pending(%s) = %v, want %v", op, short(got), short(want))
	}
	return p
}

func short(hashes []string) []string {
	out := make([]string, len(hashes))
	for i, h := range hashes {
		out[i] = h[:8]
	}
	return out
}

// pending expects list's pending rows per op.
func pending(list List, adds, removes []string) step {
	return step{"pending " + list.Key(), func(t *testing.T, r *run) {
		readPending(t, r.s, list, add, adds)
		readPending(t, r.s, list, rem, removes)
	}}
}

// rowIs expects a row's Want, Sent and Precedence (the change that set it).
func rowIs(list List, hash string, want, sent State, setBy audience.Change) step {
	return step{"row " + hash[:8], func(t *testing.T, r *run) {
		got, ok, err := r.s.Get(t.Context(), list, hash)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		w := Row{List: list, Hash: hash, Want: want, Sent: sent, Precedence: setBy.Precedence()}
		if !ok || got != w {
			t.Fatalf("Get = %+v (found %v), want %+v", got, ok, w)
		}
	}}
}

// members expects the member counts of the lists named.
func members(want map[List]int64) step {
	return step{"members", func(t *testing.T, r *run) {
		got, err := r.s.Members(t.Context())
		if err != nil {
			t.Fatalf("Members: %v", err)
		}
		for l, n := range want {
			if got[l] != n {
				t.Fatalf("Members[%s] = %d, want %d (all: %v)", l.Key(), got[l], n, got)
			}
		}
	}}
}

func pendingLists(want ...List) step {
	return step{"pending lists", func(t *testing.T, r *run) {
		got, err := r.s.PendingLists(t.Context())
		if err != nil {
			t.Fatalf("PendingLists: %v", err)
		}
		key := func(a, b List) int {
			if a.Key() < b.Key() {
				return -1
			}
			if a.Key() > b.Key() {
				return 1
			}
			return 0
		}
		slices.SortFunc(got, key)
		want = slices.Clone(want)
		slices.SortFunc(want, key)
		if !slices.Equal(got, want) {
			t.Fatalf("PendingLists = %v, want %v", got, want)
		}
	}}
}

func received(list List, hash string, op audience.Op, hour int) audience.Change {
	c := change(list, hash, op, hour)
	c.Received = true
	return c
}

func members1(list List, n int64) step { return members(map[List]int64{list: n}) }

// TestRules runs the ledger's rules against every store.
func TestRules(t *testing.T) {
	var (
		a10, a11, a12 = change(listA, h1, add, 10), change(listA, h1, add, 11), change(listA, h1, add, 12)
		r10, r11      = change(listA, h1, rem, 10), change(listA, h1, rem, 11)
	)
	// leaving: h1 joined and was sent, then left: pending REMOVE, Sent In.
	leaving := func() []step {
		return []step{
			apply(Result{Flipped: 1}, a10),
			send(listA, add, h1),
			apply(Result{Flipped: 1}, r11),
		}
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"exit first then an older join stays out", []step{
			apply(Result{Flipped: 1}, r11),
			apply(Result{Stale: 1}, a10),
			rowIs(listA, h1, Out, Unknown, r11),
			pending(listA, nil, []string{h1}),
			members1(listA, 0),
		}},
		{"join then a newer exit ends out", []step{
			apply(Result{Flipped: 1}, a10),
			apply(Result{Flipped: 1}, r11),
			rowIs(listA, h1, Out, Unknown, r11),
			pending(listA, nil, []string{h1}),
			members1(listA, 0),
		}},
		{"the same change twice is stale and adds nothing pending", []step{
			apply(Result{Flipped: 1}, a10),
			send(listA, add, h1),
			apply(Result{Stale: 1}, a10),
			pending(listA, nil, nil),
			rowIs(listA, h1, In, In, a10),
			members1(listA, 1),
		}},
		{"an unknown row's exit is sent", []step{
			apply(Result{Flipped: 1}, r10),
			pendingLists(listA),
			pending(listA, nil, []string{h1}),
			send(listA, rem, h1),
			rowIs(listA, h1, Out, Out, r10),
			pending(listA, nil, nil),
			pendingLists(),
			members1(listA, 0),
		}},
		{"a no-op advances the precedence", []step{
			apply(Result{Flipped: 1}, a10),
			send(listA, add, h1),
			apply(Result{NoOps: 1}, a12),
			apply(Result{Stale: 1}, r11),
			rowIs(listA, h1, In, In, a12),
			pending(listA, nil, nil),
			members1(listA, 1),
		}},
		{"mark sent records what Pinterest has, whatever came since", []step{
			apply(Result{Flipped: 1}, a10),
			hold(listA, add, h1),
			apply(Result{NoOps: 1}, a11),
			markHeld(listA, add),
			rowIs(listA, h1, In, In, a11),
			pending(listA, nil, nil),
			members1(listA, 1),
		}},
		{"a join sent while the row went out and in again is not sent twice", []step{
			apply(Result{Flipped: 1}, a10),
			hold(listA, add, h1),
			apply(Result{Flipped: 1}, r11),
			apply(Result{Flipped: 1}, a12),
			markHeld(listA, add),
			rowIs(listA, h1, In, In, a12),
			pending(listA, nil, nil),
			members1(listA, 1),
		}},
		{"an exit that came while its join was sent stays pending", []step{
			apply(Result{Flipped: 1}, a10),
			hold(listA, add, h1),
			apply(Result{Flipped: 1}, r11),
			markHeld(listA, add),
			rowIs(listA, h1, Out, In, r11),
			pending(listA, nil, []string{h1}),
			send(listA, rem, h1),
			rowIs(listA, h1, Out, Out, r11),
			pending(listA, nil, nil),
		}},
		{"a join that came back while its exit was sent is sent again", []step{
			apply(Result{Flipped: 1}, a10),
			send(listA, add, h1),
			apply(Result{Flipped: 1}, r11),
			hold(listA, rem, h1),
			apply(Result{Reverted: 1}, a12),
			pending(listA, nil, nil),
			markHeld(listA, rem),
			rowIs(listA, h1, In, Out, a12),
			pending(listA, []string{h1}, nil),
			send(listA, add, h1),
			rowIs(listA, h1, In, In, a12),
			members1(listA, 1),
		}},
		{"a flip back before it is sent is not pending", []step{
			apply(Result{Flipped: 1}, a10),
			send(listA, add, h1),
			apply(Result{Flipped: 1}, r11),
			pending(listA, nil, []string{h1}),
			members1(listA, 0),
			apply(Result{Reverted: 1}, a12),
			pending(listA, nil, nil),
			pendingLists(),
			rowIs(listA, h1, In, In, a12),
			members1(listA, 1),
		}},
		{"marking the same rows sent twice changes nothing", []step{
			apply(Result{Flipped: 1}, a10),
			hold(listA, add, h1),
			markHeld(listA, add),
			markHeld(listA, add),
			rowIs(listA, h1, In, In, a10),
			pending(listA, nil, nil),
			members1(listA, 1),
		}},
		{"members stay exact through joins, exits, stale and repeated batches", []step{
			apply(Result{Flipped: 3}, change(listA, h1, add, 10), change(listA, h2, add, 10), change(listA, h3, add, 10)),
			members1(listA, 3),
			apply(Result{Flipped: 1}, change(listA, h2, rem, 11)),
			members1(listA, 2),
			apply(Result{Stale: 1}, change(listA, h2, add, 10)),
			apply(Result{Stale: 3}, change(listA, h1, add, 10), change(listA, h2, add, 10), change(listA, h3, add, 10)),
			members1(listA, 2),
			apply(Result{Flipped: 2}, change(listA, h1, rem, 12), change(listA, h3, rem, 12)),
			members1(listA, 0),
		}},
		{"a retried apply never double counts", []step{
			apply(Result{Flipped: 3}, change(listA, h1, add, 10), change(listA, h2, add, 10), change(listA, h3, rem, 10)),
			apply(Result{Stale: 3}, change(listA, h1, add, 10), change(listA, h2, add, 10), change(listA, h3, rem, 10)),
			members1(listA, 2),
			pending(listA, []string{h1, h2}, []string{h3}),
		}},
		{"duplicates within one apply coalesce by precedence", []step{
			apply(Result{Flipped: 1, Stale: 3}, a10, r11, change(listA, h1, add, 9), r11),
			rowIs(listA, h1, Out, Unknown, r11),
			members1(listA, 0),
			apply(Result{Flipped: 1, Stale: 1}, change(listA, h2, add, 10), change(listA, h2, rem, 10)),
			rowIs(listA, h2, Out, Unknown, change(listA, h2, rem, 10)),
		}},
		{"an exit at the same time wins across calls", []step{
			apply(Result{Flipped: 1}, a10),
			apply(Result{Flipped: 1}, r10),
			apply(Result{Stale: 1}, a10),
			rowIs(listA, h1, Out, Unknown, r10),
			members1(listA, 0),
		}},
		{"a receive-time exit never outranks an event-time join", []step{
			apply(Result{Flipped: 1}, a10),
			apply(Result{Stale: 1}, received(listA, h1, rem, 23)),
			rowIs(listA, h1, In, Unknown, a10),
			members1(listA, 1),
		}},
		{"an event-time join outranks an earlier-stored receive-time exit", []step{
			apply(Result{Flipped: 1}, received(listA, h1, rem, 23)),
			apply(Result{Flipped: 1}, a10),
			apply(Result{NoOps: 1}, a11),
			rowIs(listA, h1, In, Unknown, a11),
			members1(listA, 1),
		}},
		{"lists are independent", []step{
			apply(Result{Flipped: 3}, a10, change(listB, h1, add, 10), change(listB, h2, add, 10)),
			apply(Result{Flipped: 1}, change(listB, h1, rem, 11)),
			members(map[List]int64{listA: 1, listB: 1}),
			pendingLists(listA, listB),
			pending(listB, []string{h2}, []string{h1}),
			send(listA, add, h1),
			pendingLists(listB),
		}},
		{"an exit after an ADD whose answer was lost is sent", []step{
			apply(Result{Flipped: 1}, a10),
			sending(listA, add, h1),
			rowIs(listA, h1, In, Unknown, a10),
			apply(Result{Flipped: 1}, r11),
			rowIs(listA, h1, Out, Unknown, r11),
			pending(listA, nil, []string{h1}),
		}},
		{"an exit after a lost answer to a re-join is sent, not taken for a revert", []step{
			apply(Result{Flipped: 1}, a10),
			send(listA, add, h1),
			apply(Result{Flipped: 1}, r11),
			send(listA, rem, h1),
			rowIs(listA, h1, Out, Out, r11),
			apply(Result{Flipped: 1}, a12),
			sending(listA, add, h1),
			rowIs(listA, h1, In, Unknown, a12),
			apply(Result{Flipped: 1}, change(listA, h1, rem, 13)),
			rowIs(listA, h1, Out, Unknown, change(listA, h1, rem, 13)),
			pending(listA, nil, []string{h1}),
			pendingLists(listA),
		}},
		{"a revert between reading an ADD and sending it becomes a pending exit", []step{
			apply(Result{Flipped: 1}, a10),
			send(listA, add, h1),
			apply(Result{Flipped: 1}, r11),
			send(listA, rem, h1),
			apply(Result{Flipped: 1}, a12),
			hold(listA, add, h1),
			apply(Result{Reverted: 1}, change(listA, h1, rem, 13)),
			pending(listA, nil, nil),
			sendingHeld(listA, add),
			rowIs(listA, h1, Out, Unknown, change(listA, h1, rem, 13)),
			pending(listA, nil, []string{h1}),
			pendingLists(listA),
		}},
		{"an ADD being sent and then marked sent is in", []step{
			apply(Result{Flipped: 1}, a10),
			sending(listA, add, h1),
			markHeld(listA, add),
			rowIs(listA, h1, In, In, a10),
			pendingLists(),
		}},
		{"a join after a REMOVE whose answer was lost is sent", append(leaving(),
			sending(listA, rem, h1),
			rowIs(listA, h1, Out, Unknown, r11),
			apply(Result{Flipped: 1}, a12),
			rowIs(listA, h1, In, Unknown, a12),
			pending(listA, []string{h1}, nil),
			pendingLists(listA),
		)},
		{"a join back between reading a REMOVE and sending it becomes a pending join", append(leaving(),
			hold(listA, rem, h1),
			apply(Result{Reverted: 1}, a12),
			pending(listA, nil, nil),
			sendingHeld(listA, rem),
			rowIs(listA, h1, In, Unknown, a12),
			pending(listA, []string{h1}, nil),
			pendingLists(listA),
		)},
		{"a REMOVE being sent and then marked sent is out", append(leaving(),
			sending(listA, rem, h1),
			markHeld(listA, rem),
			rowIs(listA, h1, Out, Out, r11),
			pendingLists(),
		)},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					r := &run{s: b.open(t)}
					for i, s := range tt.steps {
						t.Logf("step %d: %s", i, s.name)
						s.do(t, r)
					}
				})
			}
		})
	}
}

func TestApplyRejectsInvalidChangesWholly(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			bad := change(listA, "not-a-hash", add, 10)
			if _, err := s.Apply(t.Context(), []audience.Change{change(listA, h1, add, 10), bad}); err == nil {
				t.Fatal("Apply with an invalid change: want an error")
			}
			if _, ok, err := s.Get(t.Context(), listA, h1); err != nil || ok {
				t.Fatalf("Get after a rejected Apply = found %v, %v; want nothing written", ok, err)
			}
			if _, err := s.Pending(t.Context(), listA, "DELETE", 10); err == nil {
				t.Fatal("Pending with an unknown op: want an error")
			}
			if err := s.MarkSent(t.Context(), listA, "DELETE", []Pending{{Hash: h1}}); err == nil {
				t.Fatal("MarkSent with an unknown op: want an error")
			}
		})
	}
}

// TestConcurrentApply applies overlapping changes from several goroutines in
// different orders; every row must end as its greatest-precedence change
// says and the member count must match the rows.
func TestConcurrentApply(t *testing.T) {
	const (
		workers = 4
		rows    = 40
		perRow  = 6
	)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			rng := rand.New(rand.NewPCG(1, 2))
			var all []audience.Change
			final := make(map[string]audience.Change)
			for i := range rows {
				h := hashOf(fmt.Sprint("row", i))
				for range perRow {
					op := add
					if rng.IntN(2) == 0 {
						op = rem
					}
					c := change(listA, h, op, rng.IntN(24))
					all = append(all, c)
					if f, ok := final[h]; !ok || c.Precedence() > f.Precedence() {
						final[h] = c
					}
				}
			}
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := range workers {
				mine := slices.Clone(all)
				rand.New(rand.NewPCG(uint64(w), 7)).Shuffle(len(mine), func(i, j int) { mine[i], mine[j] = mine[j], mine[i] })
				wg.Go(func() {
					for len(mine) > 0 {
						n := min(len(mine), 25)
						if _, err := s.Apply(context.Background(), mine[:n]); err != nil {
							errs <- err
							return
						}
						mine = mine[n:]
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("Apply: %v", err)
			}
			var in int64
			for h, c := range final {
				got, ok, err := s.Get(t.Context(), listA, h)
				if err != nil || !ok {
					t.Fatalf("Get %s: found %v, %v", h[:8], ok, err)
				}
				if got.Precedence != c.Precedence() || got.Want != stateFor(c.Op) {
					t.Errorf("row %s = %+v, want it set by %s at %s", h[:8], got, c.Op, c.EventTime)
				}
				if got.Want == In {
					in++
				}
			}
			m, err := s.Members(t.Context())
			if err != nil {
				t.Fatalf("Members: %v", err)
			}
			if m[listA] != in {
				t.Fatalf("Members = %d, want %d (the rows in)", m[listA], in)
			}
		})
	}
}
