package upload_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/pinterest"
	"github.com/pinlist/pinlist/internal/upload"
)

// removals returns the records of the successful REMOVE calls logged from
// index from on.
func removals(e *env, from int) []string {
	var out []string
	for _, w := range e.reqs.ok()[from:] {
		if w.op == string(pinterest.OpRemove) {
			out = append(out, w.records...)
		}
	}
	return sortedOf(out...)
}

// TestOwnedListSendsNoExitOfPeopleItNeverHad: in a list pinlist created,
// people who join and leave between two flushes, and people the ledger
// never saw who leave, cost no Pinterest call. In a list found on
// Pinterest (adopted: it may hold people from before pinlist) the same
// exits are sent, and the person from before goes. Both backends.
func TestOwnedListSendsNoExitOfPeopleItNeverHad(t *testing.T) {
	for _, b := range promiseBackends {
		t.Run(b.name, func(t *testing.T) {
			e, store := promiseEnv(t, b.open)
			owning := store.(ledger.Owning)
			ctx := t.Context()
			t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
			lt := audience.ListEmail
			owned, adopted := ref("owned"), ref("adopted")
			members, passing, stranger, before := hashes("m", 3), hashes("p", 4), hashOf("stranger"), hashOf("before")

			// The adopted list exists before pinlist ever writes to it.
			if _, err := e.client.CreateCustomerList(ctx, pinterest.CustomerListCreate{
				Name: upload.ListName(adopted.Key(), lt, ""), ListType: string(lt), Records: []string{before},
			}); err != nil {
				t.Fatalf("create the adopted list: %v", err)
			}
			for _, a := range []audience.Ref{owned, adopted} {
				if failed := e.handle(ctx, event(changesMsg(t, changes(a, lt, audience.OpAdd, t0, members...)...))); len(failed) != 0 {
					t.Fatalf("failed: %v", failed)
				}
			}
			id, _, _ := e.listOf(owned, lt)
			if got, err := owning.Owner(ctx, ledger.List{Audience: owned, Type: lt}); err != nil || got != id {
				t.Fatalf("owner of the list pinlist created = %q, %v; want %s", got, err, id)
			}
			if got, err := owning.Owner(ctx, ledger.List{Audience: adopted, Type: lt}); err != nil || got != "" {
				t.Fatalf("owner of the adopted list = %q, %v; want none", got, err)
			}

			from := len(e.reqs.ok())
			for _, a := range []audience.Ref{owned, adopted} {
				join := changes(a, lt, audience.OpAdd, t0.Add(time.Minute), passing...)
				exit := append(changes(a, lt, audience.OpRemove, t0.Add(2*time.Minute), passing...),
					changes(a, lt, audience.OpRemove, t0.Add(2*time.Minute), stranger, before)...)
				for _, cs := range [][]audience.Change{join, exit} {
					if failed := e.apply(ctx, event(changesMsg(t, cs...))); len(failed) != 0 {
						t.Fatalf("failed: %v", failed)
					}
				}
			}
			if n, err := store.PendingCount(ctx, ledger.List{Audience: owned, Type: lt}); err != nil || n != 0 {
				t.Fatalf("pending in the owned list: %d, %v; want nothing", n, err)
			}
			e.flushAll(ctx)
			adoptedID, _, _ := e.listOf(adopted, lt)
			for _, w := range e.reqs.ok()[from:] {
				if w.listID == id {
					t.Fatalf("a %s call to the owned list for people who joined and left, want none", w.op)
				}
			}
			want := sortedOf(append(slices.Clone(passing), stranger, before)...)
			if got := removals(e, from); !slices.Equal(got, want) {
				t.Fatalf("removals sent = %d records, want the %d exits of the adopted list %s", len(got), len(want), adoptedID)
			}
			for _, a := range []audience.Ref{owned, adopted} {
				checkMembership(t, e, store, a, lt, append(slices.Clone(members), append(passing, stranger, before)...))
			}
		})
	}
}

// TestALostAnswerIsNotTakenForARevert: a call that reached Pinterest but
// whose answer was lost (every attempt answered 502 after the simulator
// applied it, as after a crash between the call and MarkSent) leaves its
// people possibly in Pinterest's new state, so the change that follows is
// sent. After a lost ADD, an exit is sent, also for a person whose removal
// was sent before (the exit would otherwise look like a revert to what was
// last sent). After a lost REMOVE, a person who joins again is added again
// (the join would otherwise look like a revert to the ADD sent before).
// Both backends.
func TestALostAnswerIsNotTakenForARevert(t *testing.T) {
	type step struct {
		op   audience.Op
		hs   []string
		lose bool
	}
	members, newcomer, back, leaver := hashes("m", 2), hashOf("newcomer"), hashOf("back"), hashOf("leaver")
	tests := []struct {
		name  string
		steps []step
		// lost: the lost call's records, pending after it and applied by
		// the simulator (in: whether they are in its list).
		lost []string
		in   bool
	}{
		{"an exit after a lost ADD is sent", []step{
			{audience.OpAdd, append(slices.Clone(members), back), false}, // the list is created
			{audience.OpRemove, []string{back}, false},                   // sent: Pinterest has back out
			{audience.OpAdd, []string{newcomer, back}, true},             // applied; the answer is lost
			{audience.OpRemove, []string{newcomer, back}, false},
		}, []string{newcomer, back}, true},
		{"a join after a lost REMOVE is sent", []step{
			{audience.OpAdd, append(slices.Clone(members), leaver, back), false},
			{audience.OpRemove, []string{leaver, back}, true}, // applied; the answer is lost
			{audience.OpAdd, []string{back}, false},
		}, []string{leaver, back}, false},
	}
	for _, b := range promiseBackends {
		for _, tt := range tests {
			t.Run(b.name+"/"+tt.name, func(t *testing.T) {
				var lose atomic.Bool
				e, store := promiseEnvWith(t, b.open, envConfig{wrap: func(next http.Handler) http.Handler {
					return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						if !lose.Load() || r.Method != http.MethodPatch || !strings.Contains(r.URL.Path, "/customer_lists/") {
							next.ServeHTTP(w, r)
							return
						}
						next.ServeHTTP(httptest.NewRecorder(), r) // applied, answer lost
						http.Error(w, `{"code":1,"message":"bad gateway"}`, http.StatusBadGateway)
					})
				}})
				ctx := t.Context()
				t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
				a, lt := ref("lost"), audience.ListEmail
				for i, s := range tt.steps {
					lose.Store(s.lose)
					failed := e.handle(ctx, event(changesMsg(t, changes(a, lt, s.op, t0.Add(time.Duration(i)*time.Minute), s.hs...)...)))
					if len(failed) != 0 {
						t.Fatalf("step %d: failed messages %v", i, failed)
					}
					if !s.lose {
						continue
					}
					rows, err := store.Pending(ctx, ledger.List{Audience: a, Type: lt}, s.op, 10)
					if err != nil || len(rows) != len(tt.lost) {
						t.Fatalf("pending %ss after the lost answer: %d, %v; want %d", s.op, len(rows), err, len(tt.lost))
					}
					_, recs, _ := e.listOf(a, lt)
					for _, h := range tt.lost {
						if slices.Contains(recs, h) != tt.in {
							t.Fatalf("the lost %s did not reach the simulator: %d records", s.op, len(recs))
						}
					}
				}
				e.flushAll(ctx)
				checkMembership(t, e, store, a, lt, append(slices.Clone(members), newcomer, back, leaver))
			})
		}
	}
}

// TestListFoundIsNotTheOneCreated: when the list found on Pinterest is not
// the one the ledger recorded as created, the ledger forgets the owner and
// sends every member and every known exit again (the list may hold
// anybody), with a WARN. Both backends.
func TestListFoundIsNotTheOneCreated(t *testing.T) {
	for _, b := range promiseBackends {
		t.Run(b.name, func(t *testing.T) {
			e, store := promiseEnv(t, b.open)
			owning := store.(ledger.Owning)
			ctx := t.Context()
			t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
			a, lt := ref("swapped"), audience.ListEmail
			l := ledger.List{Audience: a, Type: lt}
			members, leaver := hashes("m", 3), hashOf("leaver")
			if failed := e.handle(ctx, event(changesMsg(t, changes(a, lt, audience.OpAdd, t0, append(slices.Clone(members), leaver)...)...))); len(failed) != 0 {
				t.Fatalf("failed: %v", failed)
			}
			id, _, _ := e.listOf(a, lt)
			if err := owning.Own(ctx, l, "1"+id); err != nil { // another list, long gone
				t.Fatalf("Own: %v", err)
			}
			from := len(e.reqs.ok())
			if failed := e.handle(ctx, event(changesMsg(t, changes(a, lt, audience.OpRemove, t0.Add(time.Minute), leaver)...))); len(failed) != 0 {
				t.Fatalf("failed: %v", failed)
			}
			lines := logLines(t, e.logs, "not the one pinlist created")
			if len(lines) != 1 || lines[0]["found"] != id || lines[0]["created"] != "1"+id {
				t.Fatalf("warnings about the list found: %v", lines)
			}
			if got, err := owning.Owner(ctx, l); err != nil || got != "" {
				t.Fatalf("owner after the flush = %q, %v; want none", got, err)
			}
			var added []string
			for _, w := range e.reqs.ok()[from:] {
				if w.op == string(pinterest.OpAdd) {
					added = append(added, w.records...)
				}
			}
			if !slices.Equal(sortedOf(added...), sortedOf(members...)) {
				t.Fatalf("members sent again: %d records, want the %d members", len(added), len(members))
			}
			checkMembership(t, e, store, a, lt, append(slices.Clone(members), leaver))
		})
	}
}
