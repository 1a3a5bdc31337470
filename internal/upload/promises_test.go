package upload_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/pinterest"
	"github.com/pinlist/pinlist/internal/upload"
	"github.com/pinlist/pinlist/internal/wire"
)

// keeperStore is a ledger store with the promises.
type keeperStore interface {
	ledger.Store
	ledger.Keeper
}

// promiseBackends are the ledgers the promise tests run against: the
// env's SQLite store, and a DynamoDB table on moto.
var promiseBackends = []struct {
	name string
	open func(t *testing.T) func(ledger.Store) ledger.Store
}{
	{"sqlite", func(*testing.T) func(ledger.Store) ledger.Store { return nil }},
	{"dynamodb", func(t *testing.T) func(ledger.Store) ledger.Store {
		name := moto.UniqueName("ledger")
		if err := ledger.CreateDynamoTable(t.Context(), moto.DynamoDB(), name); err != nil {
			t.Fatalf("create ledger table: %v", err)
		}
		d, err := ledger.NewDynamo(ledger.DynamoOptions{Client: moto.DynamoDB(), Table: name, Concurrency: 1})
		if err != nil {
			t.Fatalf("new DynamoDB ledger: %v", err)
		}
		return func(ledger.Store) ledger.Store { return d }
	}},
}

// promiseEnv is an env on one backend, with its store.
func promiseEnv(t *testing.T, open func(*testing.T) func(ledger.Store) ledger.Store) (*env, keeperStore) {
	t.Helper()
	return promiseEnvWith(t, open, envConfig{})
}

// promiseEnvWith is promiseEnv with cfg (its ledger field is set here).
func promiseEnvWith(t *testing.T, open func(*testing.T) func(ledger.Store) ledger.Store, cfg envConfig) (*env, keeperStore) {
	t.Helper()
	var store keeperStore
	wrap := open(t)
	cfg.ledger = func(s ledger.Store) ledger.Store {
		if wrap != nil {
			s = wrap(s)
		}
		store = s.(keeperStore)
		return s
	}
	return newEnv(t, cfg), store
}

func erasureMsg(tb testing.TB, at time.Time, ids ...audience.Identity) sqsMsg {
	tb.Helper()
	bodies, err := wire.EncodeErasure(ids, at, 0)
	if err != nil || len(bodies) != 1 {
		tb.Fatalf("erasure messages: %d, %v", len(bodies), err)
	}
	return sqsMsg{group: wire.ErasureGroup, body: string(bodies[0])}
}

func retireMsg(tb testing.TB, a audience.Ref) sqsMsg {
	tb.Helper()
	body, err := wire.EncodeRetire(a)
	if err != nil {
		tb.Fatalf("retire message: %v", err)
	}
	return sqsMsg{group: a.Key(), body: string(body)}
}

// listOf returns the simulator's list whose name starts with the stable
// name of (a, lt), and whether there is one.
func (e *env) listOf(a audience.Ref, lt audience.ListType) (id string, records []string, ok bool) {
	for _, l := range e.sim.State().AdAccounts[adAccount].CustomerLists {
		if strings.HasPrefix(l.Name, "pinlist "+a.Key()+" "+string(lt)) {
			return l.ID, l.Records, true
		}
	}
	return "", nil, false
}

func sortedOf(s ...string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestErasureRemovesFromEveryListAndGuardsLateJoins: an email in three
// audiences' EMAIL lists and a GAID in one MAID list are erased; a join
// stamped before the erasure that arrives later adds nobody, also to an
// audience first seen after the erasure.
func TestErasureRemovesFromEveryListAndGuardsLateJoins(t *testing.T) {
	for _, b := range promiseBackends {
		t.Run(b.name, func(t *testing.T) {
			e, store := promiseEnv(t, b.open)
			ctx := t.Context()
			t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
			email, other, gaid := hashOf("erased@example.com"), hashOf("kept@example.com"), hashOf("gaid-erased")
			auds := []audience.Ref{ref("a1"), ref("a2"), ref("a3")}
			var msgs []sqsMsg
			for _, a := range auds {
				msgs = append(msgs, changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, email, other)...))
			}
			msgs = append(msgs, changesMsg(t, changes(ref("m1"), audience.ListMAID, audience.OpAdd, t0, gaid, other)...))
			if failed := e.handle(ctx, event(msgs...)); len(failed) != 0 {
				t.Fatalf("failed messages %v", failed)
			}
			for _, a := range auds {
				if _, recs, _ := e.listOf(a, audience.ListEmail); !slices.Equal(recs, sortedOf(email, other)) {
					t.Fatalf("%s before the erasure: %v", a.Key(), recs)
				}
			}

			erasedAt := t0.Add(time.Hour)
			if failed := e.handle(ctx, event(erasureMsg(t, erasedAt,
				audience.Identity{List: audience.ListEmail, Hash: email},
				audience.Identity{List: audience.ListMAID, Hash: gaid}))); len(failed) != 0 {
				t.Fatalf("erasure failed: %v", failed)
			}
			for _, a := range auds {
				if _, recs, _ := e.listOf(a, audience.ListEmail); !slices.Equal(recs, []string{other}) {
					t.Fatalf("%s after the erasure: %v, want only the other person", a.Key(), recs)
				}
			}
			if _, recs, _ := e.listOf(ref("m1"), audience.ListMAID); !slices.Equal(recs, []string{other}) {
				t.Fatalf("MAID list after the erasure: %v", recs)
			}

			// A join stamped before the erasure arrives late: stale.
			if failed := e.handle(ctx, event(changesMsg(t, changes(auds[0], audience.ListEmail, audience.OpAdd, t0.Add(30*time.Minute), email)...))); len(failed) != 0 {
				t.Fatalf("late join failed: %v", failed)
			}
			if _, recs, _ := e.listOf(auds[0], audience.ListEmail); slices.Contains(recs, email) {
				t.Fatal("a join stamped before the erasure re-added the person")
			}
			row, ok, err := store.Get(ctx, ledger.List{Audience: auds[0], Type: audience.ListEmail}, email)
			if err != nil || !ok || row.Want != ledger.Out || row.Pending() {
				t.Fatalf("guard row = %+v, %v, %v", row, ok, err)
			}

			// The same late join to an audience first seen after the
			// erasure: its list is created for the other person alone (the
			// guard is per identifier, not per list).
			late := ref("a4")
			if failed := e.handle(ctx, event(changesMsg(t, changes(late, audience.ListEmail, audience.OpAdd, t0.Add(30*time.Minute), email, other)...))); len(failed) != 0 {
				t.Fatalf("late join to a new audience failed: %v", failed)
			}
			if _, recs, ok := e.listOf(late, audience.ListEmail); !ok || !slices.Equal(recs, []string{other}) {
				t.Fatalf("new audience's list = %v (created %v), want only the other person", recs, ok)
			}
		})
	}
}

// TestVanishedListIsRepaired: a list deleted on Pinterest's side is
// re-created and refilled from the ledger, once, with an ERROR log line and
// the ListsRepaired metric: found by a 404 on update (a warm cache) and by
// its absence from the listing (a cold one).
func TestVanishedListIsRepaired(t *testing.T) {
	for _, b := range promiseBackends {
		t.Run(b.name, func(t *testing.T) {
			e, _ := promiseEnv(t, b.open)
			ctx := t.Context()
			t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
			a := ref("rep")
			members := hashes("m", 7)
			if failed := e.handle(ctx, event(changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, members...)...))); len(failed) != 0 {
				t.Fatalf("failed: %v", failed)
			}
			id, _, ok := e.listOf(a, audience.ListEmail)
			if !ok || !e.sim.DeleteCustomerList(adAccount, id) {
				t.Fatal("could not delete the list in the simulator")
			}
			// Warm cache: the next update answers 404.
			newcomer := hashOf("newcomer")
			if failed := e.handle(ctx, event(changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0.Add(time.Hour), newcomer)...))); len(failed) != 0 {
				t.Fatalf("failed: %v", failed)
			}
			id2, recs, ok := e.listOf(a, audience.ListEmail)
			if !ok || id2 == id || !slices.Equal(recs, sortedOf(append(members, newcomer)...)) {
				t.Fatalf("after the 404: list %s (was %s) with %d records, want %d", id2, id, len(recs), len(members)+1)
			}
			if !strings.Contains(e.logs.String(), `"level":"ERROR","msg":"customer list vanished on Pinterest`) ||
				!strings.Contains(e.logs.String(), `"detected_by":"404 on update"`) {
				t.Fatalf("no ERROR alert for the repair in the logs:\n%s", e.logs.String())
			}
			if !strings.Contains(e.metrics.String(), `"ListsRepaired":1`) {
				t.Fatalf("no ListsRepaired metric:\n%s", e.metrics.String())
			}

			// Cold: a new handler on the same ledger finds no list.
			if !e.sim.DeleteCustomerList(adAccount, id2) {
				t.Fatal("could not delete the list in the simulator")
			}
			e2 := newEnvSharing(t, e)
			if failed := e2.handle(ctx, event(changesMsg(t, changes(a, audience.ListEmail, audience.OpRemove, t0.Add(2*time.Hour), newcomer)...))); len(failed) != 0 {
				t.Fatalf("failed: %v", failed)
			}
			if _, recs, ok := e.listOf(a, audience.ListEmail); !ok || !slices.Equal(recs, sortedOf(members...)) {
				t.Fatalf("after the cold repair: %v, want the %d members", recs, len(members))
			}
			if !strings.Contains(e2.logs.String(), `"detected_by":"missing from GET customer_lists"`) {
				t.Fatalf("no alert for the cold repair:\n%s", e2.logs.String())
			}
		})
	}
}

// TestResyncRestoresTheLedgersState: a list tampered with on Pinterest's
// side (a member removed, a person who left added back) is restored
// exactly by ResetList(Unknown) and a flush.
func TestResyncRestoresTheLedgersState(t *testing.T) {
	for _, b := range promiseBackends {
		t.Run(b.name, func(t *testing.T) {
			e, store := promiseEnv(t, b.open)
			ctx := t.Context()
			t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
			a := ref("rs")
			in, left := hashes("in", 5), hashes("left", 2)
			msgs := []sqsMsg{
				changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, append(slices.Clone(in), left...)...)...),
			}
			if failed := e.handle(ctx, event(msgs...)); len(failed) != 0 {
				t.Fatalf("failed: %v", failed)
			}
			if failed := e.handle(ctx, event(changesMsg(t, changes(a, audience.ListEmail, audience.OpRemove, t0.Add(time.Hour), left...)...))); len(failed) != 0 {
				t.Fatalf("failed: %v", failed)
			}
			id, _, _ := e.listOf(a, audience.ListEmail)
			if _, err := e.client.UpdateCustomerList(ctx, id, pinterest.OpRemove, in[:2]); err != nil {
				t.Fatal(err)
			}
			if _, err := e.client.UpdateCustomerList(ctx, id, pinterest.OpAdd, left); err != nil {
				t.Fatal(err)
			}
			l := ledger.List{Audience: a, Type: audience.ListEmail}
			n, err := store.ResetList(ctx, l, ledger.Unknown)
			if err != nil || n != int64(len(in)+len(left)) {
				t.Fatalf("ResetList = %d, %v", n, err)
			}
			e.flushAll(ctx)
			if _, recs, _ := e.listOf(a, audience.ListEmail); !slices.Equal(recs, sortedOf(in...)) {
				t.Fatalf("after the resync: %v, want exactly the ledger's members", recs)
			}
			if n, err := store.PendingCount(ctx, l); err != nil || n != 0 {
				t.Fatalf("PendingCount after the resync = %d, %v", n, err)
			}
		})
	}
}

// TestRetiredAudience: a retire message empties the audience's lists,
// removes their CUSTOMER_LIST audiences (renamed), drops the ledger rows;
// later joins are stale and nothing is ever created for it again.
func TestRetiredAudience(t *testing.T) {
	for _, b := range promiseBackends {
		t.Run(b.name, func(t *testing.T) {
			e, store := promiseEnv(t, b.open)
			ctx := t.Context()
			t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
			a, kept := ref("gone"), ref("kept")
			members := hashes("g", 4)
			if failed := e.handle(ctx, event(
				changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, members...)...),
				changesMsg(t, changes(kept, audience.ListEmail, audience.OpAdd, t0, members...)...),
			)); len(failed) != 0 {
				t.Fatalf("failed: %v", failed)
			}
			id, _, _ := e.listOf(a, audience.ListEmail)
			if failed := e.handle(ctx, event(retireMsg(t, a))); len(failed) != 0 {
				t.Fatalf("retire failed: %v", failed)
			}
			_, recs, ok := e.listOf(a, audience.ListEmail)
			if !ok || len(recs) != 0 {
				t.Fatalf("retired list: %v, %v; want it empty (API v5 cannot delete it)", ok, recs)
			}
			var removed bool
			for _, au := range e.sim.State().AdAccounts[adAccount].Audiences {
				if au.Rule["customer_list_id"] == id {
					removed = au.Status == "REMOVED" && au.Name == "pinlist retired "+a.Key()+" EMAIL"
				}
			}
			if !removed {
				t.Fatalf("the retired list's audience was not renamed and removed: %+v", e.sim.State().AdAccounts[adAccount].Audiences)
			}
			l := ledger.List{Audience: a, Type: audience.ListEmail}
			if _, ok, err := store.Get(ctx, l, members[0]); err != nil || ok {
				t.Fatalf("a retired list's row survived: %v, %v", ok, err)
			}
			if r, err := store.Retiring(ctx); err != nil || len(r) != 0 {
				t.Fatalf("Retiring = %v, %v; want every list finished", r, err)
			}
			// Later joins are stale; no list is written or created.
			before := len(e.reqs.all())
			if failed := e.handle(ctx, event(
				changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0.Add(time.Hour), hashOf("late"))...),
				changesMsg(t, changes(a, audience.ListMAID, audience.OpAdd, t0.Add(time.Hour), hashOf("late-maid"))...),
			)); len(failed) != 0 {
				t.Fatalf("failed: %v", failed)
			}
			e.flushAll(ctx)
			if after := len(e.reqs.all()); after != before {
				t.Fatalf("%d customer list writes after the retirement, want none", after-before)
			}
			if _, _, ok := e.listOf(a, audience.ListMAID); ok {
				t.Fatal("a MAID list was created for a retired audience")
			}
			if _, recs, _ := e.listOf(kept, audience.ListEmail); !slices.Equal(recs, sortedOf(members...)) {
				t.Fatalf("the other audience's list changed: %v", recs)
			}
		})
	}
}

// newEnvSharing is a second handler (a cold container) on e's simulator
// and ledger.
func newEnvSharing(t *testing.T, e *env) *env {
	t.Helper()
	e2 := *e
	e2.logs, e2.metrics = &syncBuffer{}, &syncBuffer{}
	h, err := newHandlerLike(e, e2.logs, e2.metrics)
	if err != nil {
		t.Fatal(err)
	}
	e2.h = h
	return &e2
}

// newHandlerLike makes a handler with e's options and its own log and
// metrics.
func newHandlerLike(e *env, logs, metrics *syncBuffer) (*upload.Handler, error) {
	o := e.opts
	o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	o.Metrics = metrics
	return upload.New(o)
}

// raceStore applies a change just before the first ADD rows of a list are
// marked sent: an exit that arrives while the flush creates the list.
type raceStore struct {
	ledger.Store
	once   sync.Once
	change audience.Change
	t      *testing.T
}

func (s *raceStore) MarkSent(ctx context.Context, l ledger.List, op audience.Op, rows []ledger.Pending) error {
	if op == audience.OpAdd {
		s.once.Do(func() {
			if _, err := s.Store.Apply(ctx, []audience.Change{s.change}); err != nil {
				s.t.Errorf("apply the racing change: %v", err)
			}
		})
	}
	return s.Store.MarkSent(ctx, l, op, rows)
}

// TestRemovalRacingACreateIsSent: a removal recorded while the flush creates
// a list with that person in it is sent in the same flush, not marked sent
// without a call.
func TestRemovalRacingACreateIsSent(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	a := ref("race")
	members := hashes("r", 3)
	e := newEnv(t, envConfig{ledger: func(s ledger.Store) ledger.Store {
		return &raceStore{Store: s, t: t, change: audience.Change{
			Audience: a, List: audience.ListEmail, Op: audience.OpRemove, Hash: members[0], EventTime: t0.Add(time.Hour),
		}}
	}})
	if failed := e.handle(t.Context(), event(changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, members...)...))); len(failed) != 0 {
		t.Fatalf("failed: %v", failed)
	}
	if _, recs, _ := e.listOf(a, audience.ListEmail); !slices.Equal(recs, sortedOf(members[1:]...)) {
		t.Fatalf("list %v, want the removal that raced the create applied", recs)
	}
}
