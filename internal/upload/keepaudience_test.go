package upload_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/pinterestsim"
)

// audiencesOf returns the simulator's CUSTOMER_LIST audiences (removed
// ones too) named like the (a, lt) list, as pinlist names them.
func (e *env) audiencesOf(a audience.Ref, lt audience.ListType) []pinterestsim.AudienceState {
	var out []pinterestsim.AudienceState
	for _, x := range e.sim.State().AdAccounts[adAccount].Audiences {
		if x.AudienceType == "CUSTOMER_LIST" && strings.HasPrefix(x.Name, "pinlist "+a.Key()+" "+string(lt)) {
			out = append(out, x)
		}
	}
	return out
}

// targetOf is the customer list an audience targets.
func targetOf(x pinterestsim.AudienceState) string {
	id, _ := x.Rule["customer_list_id"].(string)
	return id
}

// checkMembership checks that the simulator's list of (a, lt) holds
// exactly the people of candidates the ledger wants in, that the ledger
// counts as many and has nothing pending: Pinterest's list is the
// ledger's.
func checkMembership(t *testing.T, e *env, store keeperStore, a audience.Ref, lt audience.ListType, candidates []string) {
	t.Helper()
	ctx := t.Context()
	l := ledger.List{Audience: a, Type: lt}
	var in []string
	for _, h := range candidates {
		row, ok, err := store.Get(ctx, l, h)
		if err != nil {
			t.Fatalf("ledger row: %v", err)
		}
		if ok && row.Want == ledger.In {
			in = append(in, h)
		}
	}
	_, recs, ok := e.listOf(a, lt)
	if !ok || !slices.Equal(recs, sortedOf(in...)) {
		t.Fatalf("list on Pinterest (exists %v) holds %d records, the ledger wants %d in: not the same people", ok, len(recs), len(in))
	}
	members, err := store.Members(ctx)
	if err != nil || members[l] != int64(len(in)) {
		t.Fatalf("ledger Members = %d, %v; want %d", members[l], err, len(in))
	}
	if n, err := store.PendingCount(ctx, l); err != nil || n != 0 {
		t.Fatalf("PendingCount = %d, %v; want 0", n, err)
	}
}

// logLines returns the JSON log lines of buf whose message contains msg.
func logLines(t *testing.T, buf *syncBuffer, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(buf.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if s, _ := m["msg"].(string); strings.Contains(s, msg) {
			out = append(out, m)
		}
	}
	return out
}

// TestRepairKeepsTheAudience: a list deleted on Pinterest's side is
// re-created, and the CUSTOMER_LIST audience that targeted it (the one
// campaigns use) is pointed at the new list rather than replaced: one
// audience, the same ID, no audience created. Found by a 404 on update (a
// warm cache: the vanished list's ID is known) and by its absence from the
// listing (a cold one: the audience is found by its name).
func TestRepairKeepsTheAudience(t *testing.T) {
	for _, b := range promiseBackends {
		t.Run(b.name, func(t *testing.T) {
			e, store := promiseEnv(t, b.open)
			ctx := t.Context()
			t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
			a, lt := ref("keep"), audience.ListEmail
			members, newcomer := hashes("m", 7), hashOf("newcomer")
			everyone := append(slices.Clone(members), newcomer)
			if failed := e.handle(ctx, event(changesMsg(t, changes(a, lt, audience.OpAdd, t0, members...)...))); len(failed) != 0 {
				t.Fatalf("failed: %v", failed)
			}
			id, _, _ := e.listOf(a, lt)
			auds := e.audiencesOf(a, lt)
			if len(auds) != 1 || targetOf(auds[0]) != id {
				t.Fatalf("audiences after the first flush: %+v, want one targeting %s", auds, id)
			}
			audID := auds[0].ID
			kept := func(e *env, listID string) {
				t.Helper()
				all := e.sim.State().AdAccounts[adAccount].Audiences
				if len(all) != 1 || all[0].ID != audID || targetOf(all[0]) != listID || all[0].Status == "REMOVED" {
					t.Fatalf("audiences after the repair: %+v, want only %s, targeting the new list %s", all, audID, listID)
				}
				if n := e.sim.Calls()[pinterestsim.RouteAudiencesCreate]; n != 1 {
					t.Fatalf("%d audience creates, want the first one only", n)
				}
				lines := logLines(t, e.logs, "kept the vanished list's audience")
				if len(lines) != 1 || lines[0]["audience"] != audID || lines[0]["customer_list"] != listID {
					t.Fatalf("log lines about the kept audience: %v", lines)
				}
			}

			// Warm: the next update answers 404.
			if !e.sim.DeleteCustomerList(adAccount, id) {
				t.Fatal("could not delete the list in the simulator")
			}
			if failed := e.handle(ctx, event(changesMsg(t, changes(a, lt, audience.OpAdd, t0.Add(time.Hour), newcomer)...))); len(failed) != 0 {
				t.Fatalf("failed: %v", failed)
			}
			id2, _, _ := e.listOf(a, lt)
			if id2 == "" || id2 == id {
				t.Fatalf("list after the warm repair: %q (was %s)", id2, id)
			}
			kept(e, id2)
			checkMembership(t, e, store, a, lt, everyone)

			// Cold: a new handler on the same ledger finds no list.
			if !e.sim.DeleteCustomerList(adAccount, id2) {
				t.Fatal("could not delete the list in the simulator")
			}
			e2 := newEnvSharing(t, e)
			if failed := e2.handle(ctx, event(changesMsg(t, changes(a, lt, audience.OpRemove, t0.Add(2*time.Hour), newcomer)...))); len(failed) != 0 {
				t.Fatalf("failed: %v", failed)
			}
			if !strings.Contains(e2.logs.String(), `"detected_by":"missing from GET customer_lists"`) {
				t.Fatalf("not repaired as a cold container:\n%s", e2.logs.String())
			}
			id3, _, _ := e.listOf(a, lt)
			if id3 == "" || id3 == id2 {
				t.Fatalf("list after the cold repair: %q (was %s)", id3, id2)
			}
			kept(e2, id3)
			checkMembership(t, e, store, a, lt, everyone)
		})
	}
}

// TestRepairWhenPinterestRefusesToRepointTheAudience: when Pinterest
// refuses to change the audience's rule, the re-created list gets a new
// audience (as before), and a WARN names the old audience (IDs only) and
// says campaigns must be re-targeted. Later flushes leave it at that.
func TestRepairWhenPinterestRefusesToRepointTheAudience(t *testing.T) {
	for _, b := range promiseBackends {
		t.Run(b.name, func(t *testing.T) {
			e, store := promiseEnv(t, b.open)
			ctx := t.Context()
			t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
			a, lt := ref("refused"), audience.ListEmail
			members, newcomer, late := hashes("m", 5), hashOf("newcomer"), hashOf("late")
			if failed := e.handle(ctx, event(changesMsg(t, changes(a, lt, audience.OpAdd, t0, members...)...))); len(failed) != 0 {
				t.Fatalf("failed: %v", failed)
			}
			id, _, _ := e.listOf(a, lt)
			oldAud := e.audiencesOf(a, lt)[0].ID
			e.sim.SetRefuseAudienceRuleChanges(true)
			if !e.sim.DeleteCustomerList(adAccount, id) {
				t.Fatal("could not delete the list in the simulator")
			}
			if failed := e.handle(ctx, event(changesMsg(t, changes(a, lt, audience.OpAdd, t0.Add(time.Hour), newcomer)...))); len(failed) != 0 {
				t.Fatalf("failed: %v", failed)
			}
			id2, _, _ := e.listOf(a, lt)
			auds := e.audiencesOf(a, lt)
			var newAud string
			for _, x := range auds {
				switch {
				case x.ID == oldAud && targetOf(x) != id:
					t.Fatalf("the refused PATCH moved the old audience: %+v", x)
				case x.ID != oldAud && targetOf(x) == id2:
					newAud = x.ID
				}
			}
			if len(auds) != 2 || newAud == "" || id2 == id {
				t.Fatalf("audiences after the refused re-point: %+v, want the old one and a new one targeting %s", auds, id2)
			}
			if n := e.sim.Calls()[pinterestsim.RouteAudiencesUpdate]; n != 1 {
				t.Fatalf("%d audience updates, want the one refused", n)
			}
			warns := logLines(t, e.logs, "campaigns that targeted the old audience must be re-targeted")
			if len(warns) != 1 || warns[0]["level"] != "WARN" || warns[0]["old_audience"] != oldAud || warns[0]["new_audience"] != newAud {
				t.Fatalf("WARN lines: %v, want one naming old audience %s and new audience %s", warns, oldAud, newAud)
			}
			line, _ := json.Marshal(warns[0])
			for _, h := range append(slices.Clone(members), newcomer) {
				if strings.Contains(string(line), h) {
					t.Fatalf("the WARN line carries an identifier: %s", line)
				}
			}
			checkMembership(t, e, store, a, lt, append(slices.Clone(members), newcomer))

			// The new audience is the list's now: a later flush, in this
			// container and in a cold one, neither re-points nor creates.
			for _, e := range []*env{e, newEnvSharing(t, e)} {
				if failed := e.handle(ctx, event(changesMsg(t, changes(a, lt, audience.OpAdd, t0.Add(2*time.Hour), late)...))); len(failed) != 0 {
					t.Fatalf("failed: %v", failed)
				}
			}
			if n := len(e.audiencesOf(a, lt)); n != 2 || e.sim.Calls()[pinterestsim.RouteAudiencesUpdate] != 1 {
				t.Fatalf("after later flushes: %d audiences, %d updates; want 2 and 1", n, e.sim.Calls()[pinterestsim.RouteAudiencesUpdate])
			}
			checkMembership(t, e, store, a, lt, append(slices.Clone(members), newcomer, late))
		})
	}
}

// failingRepair fills a's lt list with members, deletes it in the
// simulator and makes route fail (503s past the client's retries); then
// newcomer's join is applied and the list flushed, which finds the list
// gone and starts its repair. It returns the vanished list's ID, its
// audience's ID and the flush's error.
func failingRepair(t *testing.T, e *env, a audience.Ref, lt audience.ListType, t0 time.Time, members []string, newcomer, route string) (id, audID string, err error) {
	t.Helper()
	ctx := t.Context()
	if failed := e.handle(ctx, event(changesMsg(t, changes(a, lt, audience.OpAdd, t0, members...)...))); len(failed) != 0 {
		t.Fatalf("failed: %v", failed)
	}
	id, _, _ = e.listOf(a, lt)
	audID = e.audiencesOf(a, lt)[0].ID
	if !e.sim.DeleteCustomerList(adAccount, id) {
		t.Fatal("could not delete the list in the simulator")
	}
	e.sim.SetFault(route, pinterestsim.Fault{FailNext: fastRetry.MaxAttempts, FailStatus: 503})
	if failed := e.apply(ctx, event(changesMsg(t, changes(a, lt, audience.OpAdd, t0.Add(time.Hour), newcomer)...))); len(failed) != 0 {
		t.Fatalf("failed: %v", failed)
	}
	_, err = e.h.Flush(ctx, []ledger.List{{Audience: a, Type: lt}})
	return id, audID, err
}

// TestRepointThatFailsForNowIsTriedAgain: a re-point that fails for a
// reason that may pass (503s past the client's retries) fails the flush
// and creates nothing; the next flush of the list points the same
// audience, so no audience is ever made twice.
func TestRepointThatFailsForNowIsTriedAgain(t *testing.T) {
	e, store := promiseEnv(t, promiseBackends[0].open)
	ctx := t.Context()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	a, lt := ref("later"), audience.ListMAID
	members, newcomer, late := hashes("m", 4), hashOf("newcomer"), hashOf("late")
	id, audID, err := failingRepair(t, e, a, lt, t0, members, newcomer, pinterestsim.RouteAudiencesUpdate)
	if err == nil || !strings.Contains(err.Error(), audID) {
		t.Fatalf("Flush = %v, want the failed re-point of audience %s", err, audID)
	}
	id2, _, _ := e.listOf(a, lt)
	auds := e.audiencesOf(a, lt)
	if id2 == "" || len(auds) != 1 || auds[0].ID != audID || targetOf(auds[0]) != id {
		t.Fatalf("after the failed re-point: list %q, audiences %+v; want the old audience alone, untouched", id2, auds)
	}
	checkMembership(t, e, store, a, lt, append(slices.Clone(members), newcomer))

	if failed := e.handle(ctx, event(changesMsg(t, changes(a, lt, audience.OpAdd, t0.Add(2*time.Hour), late)...))); len(failed) != 0 {
		t.Fatalf("failed: %v", failed)
	}
	all := e.sim.State().AdAccounts[adAccount].Audiences
	if len(all) != 1 || all[0].ID != audID || targetOf(all[0]) != id2 || e.sim.Calls()[pinterestsim.RouteAudiencesCreate] != 1 {
		t.Fatalf("after the next flush: %+v (%d creates), want audience %s alone, targeting %s", all, e.sim.Calls()[pinterestsim.RouteAudiencesCreate], audID, id2)
	}
	checkMembership(t, e, store, a, lt, append(slices.Clone(members), newcomer, late))
}

// TestRepairFinishedByAnotherProcessKeepsTheAudience: a repair whose
// re-creation of the list fails (503s past the client's retries) is
// finished by another process (a cold container) that knows nothing of it:
// the list it creates still gets the vanished list's audience, found by
// its name and its missing list, and no audience is created.
func TestRepairFinishedByAnotherProcessKeepsTheAudience(t *testing.T) {
	for _, b := range promiseBackends {
		t.Run(b.name, func(t *testing.T) {
			e, store := promiseEnv(t, b.open)
			ctx := t.Context()
			t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
			a, lt := ref("elsewhere"), audience.ListEmail
			members, newcomer := hashes("m", 5), hashOf("newcomer")
			id, audID, err := failingRepair(t, e, a, lt, t0, members, newcomer, pinterestsim.RouteCustomerListsCreate)
			if err == nil {
				t.Fatal("Flush succeeded; want the failed re-creation of the list")
			}
			if id2, _, ok := e.listOf(a, lt); ok {
				t.Fatalf("list %s exists after its re-creation failed", id2)
			}

			cold := newEnvSharing(t, e)
			if _, err := cold.h.FlushAll(ctx); err != nil {
				t.Fatalf("the cold container's flush: %v", err)
			}
			id2, _, ok := e.listOf(a, lt)
			if !ok || id2 == id {
				t.Fatalf("list %q (ok %v) after the cold flush; want a re-created list, not %s", id2, ok, id)
			}
			all := e.sim.State().AdAccounts[adAccount].Audiences
			if len(all) != 1 || all[0].ID != audID || targetOf(all[0]) != id2 {
				t.Fatalf("audiences %+v; want audience %s alone, targeting %s", all, audID, id2)
			}
			if n := e.sim.Calls()[pinterestsim.RouteAudiencesCreate]; n != 1 {
				t.Fatalf("%d audience creates, want the first one only", n)
			}
			checkMembership(t, cold, store, a, lt, append(slices.Clone(members), newcomer))
		})
	}
}
