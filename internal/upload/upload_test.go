package upload_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/fake"
	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/pinterest"
	"github.com/pinlist/pinlist/internal/pinterestsim"
	"github.com/pinlist/pinlist/internal/upload"
)

func TestHandleSQSCreatesListsWithTheirFirstRecords(t *testing.T) {
	e := newEnv(t, envConfig{})
	a, b := ref("aaaa"), ref("bbbb")
	emails, maids := hashes("a-email", 4), hashes("a-maid", 2)
	bEmails := hashes("b-email", 3)
	ev := event(
		changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, emails...)...),
		changesMsg(t, changes(b, audience.ListEmail, audience.OpAdd, t0, bEmails...)...),
		changesMsg(t, changes(a, audience.ListMAID, audience.OpAdd, t0, maids...)...),
	)

	if failed := e.handle(t.Context(), ev); len(failed) != 0 {
		t.Fatalf("failed messages %v, want none", failed)
	}

	want := map[string][]string{
		"pinlist ups:aaaa EMAIL": sorted(emails),
		"pinlist ups:aaaa MAID":  sorted(maids),
		"pinlist ups:bbbb EMAIL": sorted(bEmails),
	}
	if diff := cmp.Diff(want, e.membership()); diff != "" {
		t.Errorf("membership (-want +got):\n%s", diff)
	}
	acct := e.sim.State().AdAccounts[adAccount]
	for _, l := range acct.CustomerLists {
		wantType := strings.Fields(l.Name)[2]
		if l.ListType != wantType {
			t.Errorf("list %q has type %s, want %s", l.Name, l.ListType, wantType)
		}
	}
	// One CUSTOMER_LIST audience per list, pointing at it, named like it.
	if len(acct.Audiences) != len(acct.CustomerLists) {
		t.Fatalf("%d audiences for %d lists", len(acct.Audiences), len(acct.CustomerLists))
	}
	names := map[string]string{}
	for _, l := range acct.CustomerLists {
		names[l.ID] = l.Name
	}
	for _, au := range acct.Audiences {
		id, _ := au.Rule["customer_list_id"].(string)
		if au.AudienceType != "CUSTOMER_LIST" || names[id] == "" || au.Name != names[id] {
			t.Errorf("audience %+v does not target a pinlist list of its name", au)
		}
	}
	// Each list was created with all its records, in the create call: no
	// create was empty and no update was needed.
	for _, w := range e.reqs.all() {
		if !w.create {
			t.Errorf("an update call (%s %d records): want none, the records go with the create", w.op, len(w.records))
		} else if len(w.records) == 0 {
			t.Errorf("list %q was created empty", w.name)
		}
	}
	if got := e.pendingLists(); len(got) != 0 {
		t.Errorf("lists still pending: %v", got)
	}
	got := e.lastEMF()
	wantEMF := map[string]float64{
		"MessageFailures": 0, "ChangesFlipped": 9, "ChangesNoOp": 0, "ChangesStale": 0,
		"RecordsSent": 9, "ListCalls": 3, "ListsCreated": 3, "ListFailures": 0, "Retries": 0, "RateLimited": 0,
		"APICalls": float64(sumCalls(e.sim.Calls())), "ListsRepaired": 0, "ListsRetired": 0,
	}
	if diff := cmp.Diff(wantEMF, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}

func sumCalls(calls map[string]int) int {
	n := 0
	for _, c := range calls {
		n += c
	}
	return n
}

// updates returns the successful update calls since from, per list ID and op.
func updates(writes []listWrite) map[string]int {
	out := map[string]int{}
	for _, w := range writes {
		if !w.create {
			out[w.listID+" "+w.op]++
		}
	}
	return out
}

func TestCallsAreFilledAcrossBatches(t *testing.T) {
	e := newEnv(t, envConfig{})
	a, b := ref("aaaa"), ref("bbbb")
	members := hashes("member", 6)
	setup := event(
		changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, members...)...),
		changesMsg(t, changes(b, audience.ListEmail, audience.OpAdd, t0, members...)...),
	)
	if failed := e.handle(t.Context(), setup); len(failed) != 0 {
		t.Fatalf("setup failed: %v", failed)
	}
	aID, bID := e.listID("pinlist ups:aaaa EMAIL"), e.listID("pinlist ups:bbbb EMAIL")
	before := len(e.reqs.all())

	// Three batches, recorded but not flushed: each adds two people to both
	// lists and takes one member out of a.
	later := t0.Add(time.Hour)
	for i := range 3 {
		joiners := hashes("joiner"+string(rune('0'+i)), 2)
		ev := event(
			changesMsg(t, slices.Concat(
				changes(a, audience.ListEmail, audience.OpAdd, later, joiners...),
				changes(a, audience.ListEmail, audience.OpRemove, later, members[i]),
			)...),
			changesMsg(t, changes(b, audience.ListEmail, audience.OpAdd, later, joiners...)...),
		)
		if failed := e.apply(t.Context(), ev); len(failed) != 0 {
			t.Fatalf("batch %d failed: %v", i, failed)
		}
	}
	if got := len(e.reqs.all()) - before; got != 0 {
		t.Fatalf("%d Pinterest writes before the flush, want 0 (Apply only records)", got)
	}

	f := e.flushAll(t.Context())

	writes := e.reqs.all()[before:]
	want := map[string]int{aID + " ADD": 1, aID + " REMOVE": 1, bID + " ADD": 1}
	if diff := cmp.Diff(want, updates(writes)); diff != "" {
		t.Errorf("update calls per list and op (-want +got):\n%s", diff)
	}
	if f.RecordsSent != 6+3+6 || f.ListCalls != 3 {
		t.Errorf("flushed %+v, want 15 records in 3 calls", f)
	}
	joined := slices.Concat(hashes("joiner0", 2), hashes("joiner1", 2), hashes("joiner2", 2))
	wantMembers := map[string][]string{
		"pinlist ups:aaaa EMAIL": sorted(slices.Concat(members[3:], joined)),
		"pinlist ups:bbbb EMAIL": sorted(slices.Concat(members, joined)),
	}
	if diff := cmp.Diff(wantMembers, e.membership()); diff != "" {
		t.Errorf("membership (-want +got):\n%s", diff)
	}
}

func TestSendsAtMostMaxRecordsPerCall(t *testing.T) {
	tests := []struct {
		name                  string
		maxRecords            int
		adds                  int // first batch: creates the list
		moreAdds, removes     int // second batch: removes of the first adds
		wantFirst, wantSecond int // create and update calls
	}{
		{"one call each", 5000, 10, 10, 4, 1, 2},
		{"split", 3, 10, 7, 7, 4, 3 + 3},
		{"exact multiples", 5, 10, 5, 5, 2, 1 + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envConfig{maxRecords: tt.maxRecords, simMax: tt.maxRecords})
			a := ref("aaaa")
			adds, moreAdds := hashes("add", tt.adds), hashes("more", tt.moreAdds)
			if failed := e.handle(t.Context(), event(changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, adds...)...))); len(failed) != 0 {
				t.Fatalf("failed messages %v, want none", failed)
			}
			if got := len(e.reqs.ok()); got != tt.wantFirst {
				t.Errorf("first batch: %d calls, want %d", got, tt.wantFirst)
			}
			before := len(e.reqs.ok())
			ev := event(changesMsg(t, slices.Concat(
				changes(a, audience.ListEmail, audience.OpAdd, t0, moreAdds...),
				changes(a, audience.ListEmail, audience.OpRemove, t0.Add(time.Hour), adds[:tt.removes]...),
			)...))
			if failed := e.handle(t.Context(), ev); len(failed) != 0 {
				t.Fatalf("failed messages %v, want none", failed)
			}
			if got := len(e.reqs.ok()) - before; got != tt.wantSecond {
				t.Errorf("second batch: %d calls, want %d", got, tt.wantSecond)
			}
			for _, w := range e.reqs.ok() {
				if len(w.records) > tt.maxRecords || len(w.records) == 0 {
					t.Errorf("a call with %d records; want 1 to %d", len(w.records), tt.maxRecords)
				}
			}
			want := map[string][]string{"pinlist ups:aaaa EMAIL": sorted(slices.Concat(adds[tt.removes:], moreAdds))}
			if diff := cmp.Diff(want, e.membership()); diff != "" {
				t.Errorf("membership (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResendsThatChangeNothingMakeNoPinterestWrites(t *testing.T) {
	a := ref("aaaa")
	members := hashes("m", 3)
	first := func(t *testing.T) sqsMsg {
		return changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, members...)...)
	}
	tests := []struct {
		name      string
		again     func(t *testing.T) sqsMsg
		wantStale int
		wantNoOp  int
	}{
		{"the same message again", first, 3, 0},
		{"newer joins of members", func(t *testing.T) sqsMsg {
			return changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0.Add(time.Hour), members...)...)
		}, 0, 3},
		{"older exits", func(t *testing.T) sqsMsg {
			return changesMsg(t, changes(a, audience.ListEmail, audience.OpRemove, t0.Add(-time.Hour), members...)...)
		}, 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envConfig{})
			if failed := e.handle(t.Context(), event(first(t))); len(failed) != 0 {
				t.Fatalf("first delivery failed: %v", failed)
			}
			before := len(e.reqs.all())
			if failed := e.handle(t.Context(), event(tt.again(t))); len(failed) != 0 {
				t.Fatalf("second delivery failed: %v", failed)
			}
			if got := e.reqs.all()[before:]; len(got) != 0 {
				t.Errorf("%d Pinterest writes, want none: %+v", len(got), got)
			}
			m := e.lastEMF()
			if m["ChangesStale"] != float64(tt.wantStale) || m["ChangesNoOp"] != float64(tt.wantNoOp) || m["ChangesFlipped"] != 0 {
				t.Errorf("metrics %v: want %d stale, %d no-op, 0 flipped", m, tt.wantStale, tt.wantNoOp)
			}
			if diff := cmp.Diff(map[string][]string{"pinlist ups:aaaa EMAIL": sorted(members)}, e.membership()); diff != "" {
				t.Errorf("membership (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAnOlderJoinAfterANewerExitStaysOut(t *testing.T) {
	a := ref("aaaa")
	h, stay := hashOf("leaver"), hashOf("stayer")
	exit := func(t *testing.T) sqsMsg {
		return changesMsg(t, changes(a, audience.ListEmail, audience.OpRemove, t0.Add(2*time.Hour), h)...)
	}
	join := func(t *testing.T) sqsMsg { // older than the exit, arrives after it
		return changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0.Add(time.Hour), h)...)
	}
	tests := []struct {
		name string
		run  func(t *testing.T, e *env)
	}{
		{"flushed in between", func(t *testing.T, e *env) {
			if failed := e.handle(t.Context(), event(exit(t))); len(failed) != 0 {
				t.Fatalf("exit failed: %v", failed)
			}
			before := len(e.reqs.all())
			if failed := e.handle(t.Context(), event(join(t))); len(failed) != 0 {
				t.Fatalf("join failed: %v", failed)
			}
			if got := e.reqs.all()[before:]; len(got) != 0 {
				t.Errorf("the stale join made %d writes, want none", len(got))
			}
		}},
		{"in separate batches, one flush", func(t *testing.T, e *env) {
			for _, m := range []sqsMsg{exit(t), join(t)} {
				if failed := e.apply(t.Context(), event(m)); len(failed) != 0 {
					t.Fatalf("apply failed: %v", failed)
				}
			}
			e.flushAll(t.Context())
		}},
		{"in one batch", func(t *testing.T, e *env) {
			if failed := e.handle(t.Context(), event(exit(t), join(t))); len(failed) != 0 {
				t.Fatalf("batch failed: %v", failed)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envConfig{})
			setup := changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, h, stay)...)
			if failed := e.handle(t.Context(), event(setup)); len(failed) != 0 {
				t.Fatalf("setup failed: %v", failed)
			}
			tt.run(t, e)
			if diff := cmp.Diff(map[string][]string{"pinlist ups:aaaa EMAIL": {stay}}, e.membership()); diff != "" {
				t.Errorf("membership (-want +got):\n%s", diff)
			}
			if got := e.pendingLists(); len(got) != 0 {
				t.Errorf("lists still pending: %v", got)
			}
		})
	}
}

// simClient is a second client on the same simulator, standing in for
// another container or a person using Ads Manager.
func (e *env) simClient(t *testing.T) *pinterest.Client {
	t.Helper()
	access, _ := e.sim.IssueToken(clientID, scopes)
	c, err := pinterest.New(pinterest.Options{AdAccountID: adAccount, BaseURL: e.url,
		TokenSource: staticToken(access), Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func staticToken(access string) oauth2.TokenSource {
	return oauth2.StaticTokenSource(&oauth2.Token{AccessToken: access})
}

func TestFindsExistingListsByTheirStableName(t *testing.T) {
	e := newEnv(t, envConfig{})
	other := e.simClient(t)
	a := ref("aaaa")
	old := hashes("old", 2)
	ctx := t.Context()
	// A list made earlier, when the audience had another name, with its audience.
	l, err := other.CreateCustomerList(ctx, pinterest.CustomerListCreate{Name: "pinlist ups:aaaa EMAIL - Old name", ListType: "EMAIL", Records: old})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.CreateAudience(ctx, pinterest.AudienceCreate{Name: "x", CustomerListID: l.ID}); err != nil {
		t.Fatal(err)
	}
	// Lists that must not be taken for it.
	for _, name := range []string{"pinlist ups:aaaab EMAIL", "pinlist ups:aaaa MAID", "ups:aaaa EMAIL"} {
		if _, err := other.CreateCustomerList(ctx, pinterest.CustomerListCreate{Name: name, ListType: "EMAIL", Records: old}); err != nil {
			t.Fatal(err)
		}
	}
	before := e.sim.State().AdAccounts[adAccount]
	added := hashes("new", 3)

	ev := event(changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, added...)...))
	if failed := e.handle(ctx, ev); len(failed) != 0 {
		t.Fatalf("failed messages %v, want none", failed)
	}
	if got := e.sim.Records(adAccount, l.ID); !cmp.Equal(got, sorted(append(slices.Clone(old), added...))) {
		t.Errorf("existing list records = %v, want the old and the new", got)
	}
	after := e.sim.State().AdAccounts[adAccount]
	if len(after.CustomerLists) != len(before.CustomerLists) || len(after.Audiences) != len(before.Audiences) {
		t.Errorf("lists %d→%d, audiences %d→%d: want no new ones",
			len(before.CustomerLists), len(after.CustomerLists), len(before.Audiences), len(after.Audiences))
	}
	if got := e.lastEMF()["ListsCreated"]; got != 0 {
		t.Errorf("ListsCreated = %v, want 0", got)
	}
}

func TestFoundListWithoutAudienceGetsOne(t *testing.T) {
	e := newEnv(t, envConfig{})
	other := e.simClient(t)
	ctx := t.Context()
	l, err := other.CreateCustomerList(ctx, pinterest.CustomerListCreate{Name: "pinlist ups:aaaa EMAIL", ListType: "EMAIL", Records: hashes("x", 1)})
	if err != nil {
		t.Fatal(err)
	}
	// An audience of another list must not count.
	m, err := other.CreateCustomerList(ctx, pinterest.CustomerListCreate{Name: "someone else's", ListType: "EMAIL", Records: hashes("x", 1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.CreateAudience(ctx, pinterest.AudienceCreate{Name: "theirs", CustomerListID: m.ID}); err != nil {
		t.Fatal(err)
	}

	ev := event(changesMsg(t, changes(ref("aaaa"), audience.ListEmail, audience.OpAdd, t0, hashes("y", 2)...)...))
	if failed := e.handle(ctx, ev); len(failed) != 0 {
		t.Fatalf("failed messages %v, want none", failed)
	}
	var targeting []string
	for _, au := range e.sim.State().AdAccounts[adAccount].Audiences {
		if au.Rule["customer_list_id"] == l.ID {
			targeting = append(targeting, au.Name)
		}
	}
	if !cmp.Equal(targeting, []string{"pinlist ups:aaaa EMAIL"}) {
		t.Errorf("audiences targeting the found list: %q, want one named after it", targeting)
	}
}

func TestTwoListsForOneAudienceUseTheOldest(t *testing.T) {
	e := newEnv(t, envConfig{})
	other := e.simClient(t)
	ctx := t.Context()
	var ids []string
	for _, name := range []string{"pinlist ups:aaaa EMAIL", "pinlist ups:aaaa EMAIL - Dup"} {
		l, err := other.CreateCustomerList(ctx, pinterest.CustomerListCreate{Name: name, ListType: "EMAIL", Records: hashes("x", 1)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, l.ID)
	}
	added := hashes("y", 2)
	ev := event(changesMsg(t, changes(ref("aaaa"), audience.ListEmail, audience.OpAdd, t0, added...)...))
	if failed := e.handle(ctx, ev); len(failed) != 0 {
		t.Fatalf("failed messages %v, want none", failed)
	}
	if got := e.sim.Records(adAccount, ids[0]); len(got) != 3 {
		t.Errorf("oldest list has %d records, want 3", len(got))
	}
	if got := e.sim.Records(adAccount, ids[1]); len(got) != 1 {
		t.Errorf("newer duplicate has %d records, want 1 (untouched)", len(got))
	}
}

func TestCachesListsAcrossFlushes(t *testing.T) {
	e := newEnv(t, envConfig{})
	a, b := ref("aaaa"), ref("bbbb")
	first := event(changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, hashes("1", 2)...)...))
	if failed := e.handle(t.Context(), first); len(failed) != 0 {
		t.Fatalf("failed: %v", failed)
	}
	// Another container made b's list: this one finds it by listing once,
	// and that listing also serves a, which it already knows.
	other := e.simClient(t)
	if _, err := other.CreateCustomerList(t.Context(), pinterest.CustomerListCreate{Name: "pinlist ups:bbbb EMAIL", ListType: "EMAIL", Records: hashes("0", 1)}); err != nil {
		t.Fatal(err)
	}
	lists := e.sim.Calls()[pinterestsim.RouteCustomerListsList]
	second := event(
		changesMsg(t, changes(a, audience.ListEmail, audience.OpRemove, t0.Add(time.Hour), hashes("1", 1)...)...),
		changesMsg(t, changes(b, audience.ListEmail, audience.OpAdd, t0, hashes("2", 2)...)...),
	)
	if failed := e.handle(t.Context(), second); len(failed) != 0 {
		t.Fatalf("failed: %v", failed)
	}
	if got := e.sim.Calls()[pinterestsim.RouteCustomerListsList] - lists; got != 1 {
		t.Errorf("%d list calls in the second batch, want 1 (for the list it had not seen)", got)
	}
	lists = e.sim.Calls()[pinterestsim.RouteCustomerListsList]
	third := event(
		changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0.Add(2*time.Hour), hashes("3", 1)...)...),
		changesMsg(t, changes(b, audience.ListEmail, audience.OpAdd, t0.Add(2*time.Hour), hashes("3", 1)...)...),
	)
	if failed := e.handle(t.Context(), third); len(failed) != 0 {
		t.Fatalf("failed: %v", failed)
	}
	if got := e.sim.Calls()[pinterestsim.RouteCustomerListsList] - lists; got != 0 {
		t.Errorf("%d list calls in the third batch, want 0 (all cached)", got)
	}
}

func TestRemovalsFromAMissingListAreMarkedSentWithoutACall(t *testing.T) {
	e := newEnv(t, envConfig{})
	a := ref("aaaa")
	removed, added := hashes("x", 3), hashes("y", 2)
	ev := event(changesMsg(t, changes(a, audience.ListEmail, audience.OpRemove, t0, removed...)...))
	if failed := e.handle(t.Context(), ev); len(failed) != 0 {
		t.Fatalf("failed messages %v, want none", failed)
	}
	if got := e.sim.State().AdAccounts[adAccount].CustomerLists; len(got) != 0 {
		t.Errorf("lists %v, want none", got)
	}
	if got := e.pendingLists(); len(got) != 0 {
		t.Errorf("lists still pending: %v, want the removals marked sent", got)
	}
	// Removals and joins together: the list is created with the joins, and
	// the removals (of people it never held) make no call.
	ev = event(changesMsg(t, slices.Concat(
		changes(ref("bbbb"), audience.ListEmail, audience.OpRemove, t0, removed...),
		changes(ref("bbbb"), audience.ListEmail, audience.OpAdd, t0, added...),
	)...))
	if failed := e.handle(t.Context(), ev); len(failed) != 0 {
		t.Fatalf("failed messages %v, want none", failed)
	}
	for _, w := range e.reqs.all() {
		if !w.create {
			t.Errorf("an update call (%s %d records), want none", w.op, len(w.records))
		}
	}
	if diff := cmp.Diff(map[string][]string{"pinlist ups:bbbb EMAIL": sorted(added)}, e.membership()); diff != "" {
		t.Errorf("membership (-want +got):\n%s", diff)
	}
	if got := e.pendingLists(); len(got) != 0 {
		t.Errorf("lists still pending: %v", got)
	}
}

func TestAudienceMessageNamesTheListsCreatedLater(t *testing.T) {
	e := newEnv(t, envConfig{})
	a := ref("aaaa")
	members := map[audience.ListType][]string{
		audience.ListEmail: hashes("e", 2), audience.ListMAID: hashes("m", 2), audience.ListIDFA: hashes("i", 2),
	}
	// The name alone creates nothing: Pinterest gets no empty list.
	if failed := e.handle(t.Context(), event(audienceMsg(t, a, "VIP buyers", "Bought twice this year"))); len(failed) != 0 {
		t.Fatalf("failed messages %v, want none", failed)
	}
	if got := sumCalls(e.sim.Calls()); got != 0 {
		t.Errorf("%d Pinterest calls for an audience message, want 0", got)
	}
	if n, err := e.names.Name(t.Context(), a); err != nil || n != (ledger.AudienceName{Name: "VIP buyers", Description: "Bought twice this year"}) {
		t.Errorf("name store holds %+v, %v", n, err)
	}
	first := event(changesMsg(t, changes(a, audience.ListMAID, audience.OpAdd, t0, members[audience.ListMAID]...)...))
	if failed := e.handle(t.Context(), first); len(failed) != 0 {
		t.Fatalf("failed messages %v, want none", failed)
	}
	// Members of the other types arrive later, in another process.
	e2 := *e
	h2, err := upload.New(upload.Options{Client: e.client, Ledger: e.ledger, Names: e.names, Metrics: e.metrics,
		Logger: slog.New(slog.NewJSONHandler(e.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e2.h = h2
	later := event(
		changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, members[audience.ListEmail]...)...),
		changesMsg(t, changes(a, audience.ListIDFA, audience.OpAdd, t0, members[audience.ListIDFA]...)...),
	)
	if failed := e2.handle(t.Context(), later); len(failed) != 0 {
		t.Fatalf("failed messages %v, want none", failed)
	}
	acct := e.sim.State().AdAccounts[adAccount]
	got := map[string][]string{}
	for _, l := range acct.CustomerLists {
		got[l.Name] = l.Records
	}
	want := map[string][]string{}
	for lt, hs := range members {
		want["pinlist ups:aaaa "+string(lt)+" - VIP buyers"] = sorted(hs)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lists (-want +got):\n%s", diff)
	}
	if len(acct.Audiences) != 3 {
		t.Fatalf("%d audiences, want 3", len(acct.Audiences))
	}
	for _, au := range acct.Audiences {
		if au.Description != "Bought twice this year" || !strings.HasSuffix(au.Name, " - VIP buyers") {
			t.Errorf("audience %q has description %q, want the audience's name and description", au.Name, au.Description)
		}
	}

	// A new name once the lists exist: nothing is created or renamed.
	if failed := e.handle(t.Context(), event(audienceMsg(t, a, "Very important buyers", ""))); len(failed) != 0 {
		t.Fatalf("failed messages %v, want none", failed)
	}
	after := e.sim.State().AdAccounts[adAccount]
	if len(after.CustomerLists) != 3 || len(after.Audiences) != 3 {
		t.Errorf("%d lists and %d audiences after a rename, want 3 and 3", len(after.CustomerLists), len(after.Audiences))
	}
}

// sentOnce checks that every hash went to Pinterest in exactly one
// successful write.
func sentOnce(t *testing.T, writes []listWrite, hs []string) {
	t.Helper()
	n := map[string]int{}
	for _, w := range writes {
		for _, r := range w.records {
			n[r]++
		}
	}
	for _, h := range hs {
		if n[h] != 1 {
			t.Errorf("hash %.8s… sent %d times, want once", h, n[h])
		}
	}
}

func TestOneListsFailureDoesNotBlockAnother(t *testing.T) {
	for _, tt := range []struct {
		name   string
		status int
		// relists: the recovery flush looks for the list again (a 404
		// drops it from the cache), else it uses the cached ID.
		relists int
	}{
		{"404", http.StatusNotFound, 1},
		{"400", http.StatusBadRequest, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envConfig{})
			a, b, c := ref("aaaa"), ref("bbbb"), ref("cccc")
			setup := event(
				changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, hashes("a0", 1)...)...),
				changesMsg(t, changes(b, audience.ListEmail, audience.OpAdd, t0, hashes("b0", 1)...)...),
				changesMsg(t, changes(c, audience.ListEmail, audience.OpAdd, t0, hashes("c0", 1)...)...),
			)
			if failed := e.handle(t.Context(), setup); len(failed) != 0 {
				t.Fatalf("setup failed: %v", failed)
			}
			// b's list answers every update with the status: b sorts
			// between a and c, so the flush meets it in the middle.
			e.sim.SetFault(pinterestsim.RouteCustomerListsUpdate, pinterestsim.Fault{
				FailNext: 1000, FailStatus: tt.status, Match: pathEndsWith(e.listID("pinlist ups:bbbb EMAIL")),
			})
			before := len(e.reqs.ok())
			aNew, bNew, cNew := hashes("a1", 2), hashes("b1", 2), hashes("c1", 2)
			ev := event(
				changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, aNew...)...),
				changesMsg(t, changes(b, audience.ListEmail, audience.OpAdd, t0, bNew...)...),
				changesMsg(t, changes(c, audience.ListEmail, audience.OpAdd, t0, cNew...)...),
			)
			if failed := e.handle(t.Context(), ev); len(failed) != 0 {
				t.Fatalf("failed messages %v, want none (they are in the ledger)", failed)
			}
			if diff := cmp.Diff([]string{"ups:bbbb/EMAIL"}, e.pendingLists()); diff != "" {
				t.Errorf("pending lists (-want +got):\n%s", diff)
			}
			if m := e.lastEMF(); m["ListFailures"] != 1 || m["MessageFailures"] != 0 || m["RecordsSent"] != 4 {
				t.Errorf("metrics %v: want 1 list failure, no message failure, 4 records sent", m)
			}
			if !strings.Contains(e.logs.String(), `"list":"ups:bbbb/EMAIL"`) {
				t.Errorf("the failure is not logged with its list:\n%s", e.logs.String())
			}

			// The list recovers: the sweep sends b's rows, and nothing else again.
			e.sim.ClearFaults()
			listings := e.sim.Calls()[pinterestsim.RouteCustomerListsList]
			f := e.flushAll(t.Context())
			if f.RecordsSent != 2 || f.ListFailures != 0 {
				t.Errorf("flushed %+v, want b's 2 records", f)
			}
			if got := e.sim.Calls()[pinterestsim.RouteCustomerListsList] - listings; got != tt.relists {
				t.Errorf("%d listings in the recovery flush, want %d", got, tt.relists)
			}
			sentOnce(t, e.reqs.ok()[before:], slices.Concat(aNew, bNew, cNew))
			want := map[string][]string{
				"pinlist ups:aaaa EMAIL": sorted(slices.Concat(hashes("a0", 1), aNew)),
				"pinlist ups:bbbb EMAIL": sorted(slices.Concat(hashes("b0", 1), bNew)),
				"pinlist ups:cccc EMAIL": sorted(slices.Concat(hashes("c0", 1), cNew)),
			}
			if diff := cmp.Diff(want, e.membership()); diff != "" {
				t.Errorf("membership (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAFlushFailureLeavesRowsPendingForALaterFlush(t *testing.T) {
	for _, tt := range []struct {
		name  string
		fault pinterestsim.Fault
	}{
		{"500", pinterestsim.Fault{Rate500: 1}},
		{"503", pinterestsim.Fault{Rate503: 1}},
		{"429", pinterestsim.Fault{Rate429: 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envConfig{})
			a := ref("aaaa")
			if failed := e.handle(t.Context(), event(changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, hashes("a0", 1)...)...))); len(failed) != 0 {
				t.Fatalf("setup failed: %v", failed)
			}
			e.sim.SetFault(pinterestsim.RouteCustomerListsUpdate, tt.fault)
			before := len(e.reqs.ok())
			joined, left := hashes("a1", 3), hashes("a0", 1)
			ev := event(changesMsg(t, slices.Concat(
				changes(a, audience.ListEmail, audience.OpAdd, t0, joined...),
				changes(a, audience.ListEmail, audience.OpRemove, t0.Add(time.Hour), left...),
			)...))
			if failed := e.handle(t.Context(), ev); len(failed) != 0 {
				t.Fatalf("failed messages %v, want none (they are in the ledger)", failed)
			}
			if m := e.lastEMF(); m["Retries"] != 2 || m["ListFailures"] != 1 || m["RecordsSent"] != 0 {
				t.Errorf("metrics %v: want 2 retries (3 attempts), 1 list failure, nothing sent", m)
			}
			if diff := cmp.Diff(map[audience.Op]int{audience.OpAdd: 3, audience.OpRemove: 1}, e.pending(a, audience.ListEmail)); diff != "" {
				t.Errorf("pending rows (-want +got):\n%s", diff)
			}
			// Flushing while the fault lasts sends nothing and loses nothing.
			if _, err := e.h.FlushAll(t.Context()); err == nil {
				t.Error("FlushAll succeeded while every update fails")
			}

			e.sim.ClearFaults()
			f := e.flushAll(t.Context())
			if f.RecordsSent != 4 || f.ListCalls != 2 {
				t.Errorf("flushed %+v, want 4 records in 2 calls", f)
			}
			sentOnce(t, e.reqs.ok()[before:], slices.Concat(joined, left))
			if f := e.flushAll(t.Context()); f.RecordsSent != 0 || f.Lists != 0 {
				t.Errorf("a second sweep flushed %+v, want nothing", f)
			}
			if diff := cmp.Diff(map[string][]string{"pinlist ups:aaaa EMAIL": sorted(joined)}, e.membership()); diff != "" {
				t.Errorf("membership (-want +got):\n%s", diff)
			}
		})
	}
}

// faultyLedger is a ledger whose MarkSent or Apply fails, or whose MarkSent
// quietly does nothing.
type faultyLedger struct {
	ledger.Store
	applyErr, markErr error
	markNothing       bool
}

func (l *faultyLedger) Apply(ctx context.Context, cs []audience.Change) (ledger.Result, error) {
	if l.applyErr != nil {
		return ledger.Result{}, l.applyErr
	}
	return l.Store.Apply(ctx, cs)
}

func (l *faultyLedger) MarkSent(ctx context.Context, list ledger.List, op audience.Op, rows []ledger.Pending) error {
	if l.markErr != nil {
		return l.markErr
	}
	if l.markNothing {
		return nil
	}
	return l.Store.MarkSent(ctx, list, op, rows)
}

func TestMarkSentFailureResendsHarmlessly(t *testing.T) {
	faulty := &faultyLedger{markErr: errors.New("disk I/O error")}
	e := newEnv(t, envConfig{ledger: func(s ledger.Store) ledger.Store { faulty.Store = s; return faulty }})
	a := ref("aaaa")
	hs := hashes("x", 3)
	if failed := e.handle(t.Context(), event(changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, hs...)...))); len(failed) != 0 {
		t.Fatalf("failed messages %v, want none", failed)
	}
	if got := e.pending(a, audience.ListEmail)[audience.OpAdd]; got != 3 {
		t.Errorf("%d rows pending, want 3 (never marked sent)", got)
	}
	faulty.markErr = nil
	e.flushAll(t.Context())
	if got := e.pendingLists(); len(got) != 0 {
		t.Errorf("lists still pending: %v", got)
	}
	if got := len(e.sim.State().AdAccounts[adAccount].CustomerLists); got != 1 {
		t.Errorf("%d lists, want 1 (found again by name, not made twice)", got)
	}
	if diff := cmp.Diff(map[string][]string{"pinlist ups:aaaa EMAIL": sorted(hs)}, e.membership()); diff != "" {
		t.Errorf("membership (-want +got):\n%s", diff)
	}
}

func TestALedgerThatNeverClearsRowsDoesNotLoop(t *testing.T) {
	faulty := &faultyLedger{markNothing: true}
	e := newEnv(t, envConfig{ledger: func(s ledger.Store) ledger.Store { faulty.Store = s; return faulty }})
	a := ref("aaaa")
	if failed := e.apply(t.Context(), event(changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, hashes("x", 3)...)...))); len(failed) != 0 {
		t.Fatalf("failed messages %v, want none", failed)
	}
	_, err := e.h.FlushAll(t.Context())
	if err == nil || !strings.Contains(err.Error(), "still holds them pending") {
		t.Fatalf("FlushAll = %v, want the ledger's fault", err)
	}
	// The create sent them; the same rows read back unchanged are not sent
	// again.
	if got := len(e.reqs.all()); got != 1 {
		t.Errorf("%d writes, want 1 (the create)", got)
	}
}

func TestConcurrentBatchesAndSweeps(t *testing.T) {
	e := newEnv(t, envConfig{maxRecords: 3, simMax: 3})
	want := map[string][]string{}
	var wg sync.WaitGroup
	for i := range 4 {
		a := ref("audience-" + strconv.Itoa(i))
		hs := hashes(a.ID, 7)
		want["pinlist "+a.Key()+" EMAIL"] = sorted(hs)
		wg.Go(func() {
			for part := range slices.Chunk(hs, 2) {
				if failed := e.handle(t.Context(), event(changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, part...)...))); len(failed) != 0 {
					t.Errorf("failed: %v", failed)
				}
			}
		})
	}
	wg.Go(func() {
		for range 3 {
			// Another invocation's sweep may meet a list being created:
			// its errors are the lists' own, the rows stay pending.
			_, _ = e.h.FlushAll(t.Context())
		}
	})
	wg.Wait()
	e.flushAll(t.Context())
	got := map[string][]string{}
	for name, records := range e.membership() {
		got[name] = records
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("membership (-want +got):\n%s", diff)
	}
}

func TestAListCreatedTwiceAtOnceSettlesOnTheOldest(t *testing.T) {
	// Another container creates the same list just before this one's create
	// reaches Pinterest: this one makes a newer duplicate.
	var raced atomic.Bool
	othersFirst := hashes("other", 2)
	race := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/customer_lists") && raced.CompareAndSwap(false, true) {
				body := `{"name":"pinlist ups:aaaa EMAIL","list_type":"EMAIL","records":"` + strings.Join(othersFirst, ",") + `"}`
				req := httptest.NewRequestWithContext(r.Context(), http.MethodPost, r.URL.String(), strings.NewReader(body))
				req.Header = r.Header.Clone()
				rec := httptest.NewRecorder()
				next.ServeHTTP(rec, req)
				if rec.Code != http.StatusCreated && rec.Code != http.StatusOK {
					t.Errorf("the other container's create: %d %s", rec.Code, rec.Body)
				}
			}
			next.ServeHTTP(w, r)
		})
	}
	e := newEnv(t, envConfig{wrap: race, maxRecords: 2})
	a := ref("aaaa")
	ours := hashes("ours", 5)
	if failed := e.handle(t.Context(), event(changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, ours...)...))); len(failed) != 0 {
		t.Fatalf("failed messages %v, want none", failed)
	}
	lists := e.sim.State().AdAccounts[adAccount].CustomerLists
	if len(lists) != 2 {
		t.Fatalf("%d lists, want the raced pair", len(lists))
	}
	oldest := lists[0].ID // IDs are decimal: the shorter, else the smaller, is older
	if other := lists[1].ID; len(other) < len(oldest) || (len(other) == len(oldest) && other < oldest) {
		oldest = other
	}
	if diff := cmp.Diff(sorted(slices.Concat(othersFirst, ours)), e.sim.Records(adAccount, oldest)); diff != "" {
		t.Errorf("the oldest list's records (-want +got):\n%s", diff)
	}
	if got := e.pendingLists(); len(got) != 0 {
		t.Errorf("lists still pending: %v", got)
	}
	// Later members go to the oldest list as well, from this container
	// (its cache) and from a fresh one (by listing).
	if failed := e.handle(t.Context(), event(changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, hashOf("later"))...))); len(failed) != 0 {
		t.Fatalf("failed messages %v, want none", failed)
	}
	fresh, err := upload.New(upload.Options{Client: e.client, Ledger: e.ledger, Names: e.names, Metrics: e.metrics,
		Logger: slog.New(slog.NewJSONHandler(e.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if failed := fresh.Apply(t.Context(), event(changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, hashOf("fresh"))...)).Records).Failed; len(failed) != 0 {
		t.Fatalf("Apply failed: %v", failed)
	}
	if _, err := fresh.FlushAll(t.Context()); err != nil {
		t.Fatalf("FlushAll: %v", err)
	}
	if got := e.sim.Records(adAccount, oldest); !slices.Contains(got, hashOf("later")) || !slices.Contains(got, hashOf("fresh")) {
		t.Errorf("the oldest list lacks the later members: %d records", len(got))
	}
	if !strings.Contains(e.logs.String(), "using the older one") {
		t.Errorf("the duplicate is not logged:\n%s", e.logs.String())
	}
}

func TestExpiredTokenIsReloadedFromTheStoreOnce(t *testing.T) {
	e := newEnv(t, envConfig{})
	a := ref("aaaa")
	if failed := e.handle(t.Context(), event(changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, hashes("x", 1)...)...))); len(failed) != 0 {
		t.Fatalf("setup failed: %v", failed)
	}
	// The token expires; refresh (elsewhere) has stored a new one.
	e.sim.ExpireAccessTokens()
	fresh, _ := e.sim.IssueToken(clientID, scopes)
	e.store.set(fresh)
	loads := e.store.loadCount()

	ev := event(changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, hashes("y", 2)...)...))
	if failed := e.handle(t.Context(), ev); len(failed) != 0 {
		t.Fatalf("failed messages %v, want none", failed)
	}
	if got := e.store.loadCount() - loads; got != 1 {
		t.Errorf("token store loaded %d times, want 1", got)
	}
	if got := e.membership()["pinlist ups:aaaa EMAIL"]; len(got) != 3 {
		t.Errorf("records %v, want 3", got)
	}
	if got := e.pendingLists(); len(got) != 0 {
		t.Errorf("lists still pending: %v", got)
	}
}

func TestTokenTroubleStopsTheFlush(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(e *env)
		wantCalls int // Pinterest calls
		wantLog   string
	}{
		{
			name:      "pinterest refuses the token even after a reload",
			setup:     func(e *env) { e.sim.ExpireAccessTokens() }, // and nobody stored a new one
			wantCalls: 2,                                           // one call, one retry after the reload
			wantLog:   "refresh or reconnect needed",
		},
		{
			name: "the stored token has expired",
			setup: func(e *env) {
				e.store.mu.Lock()
				defer e.store.mu.Unlock()
				e.store.tok.AccessTokenExpiresAt = time.Now().Add(-time.Minute)
			},
			wantCalls: 0,
			wantLog:   "access token expired",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envConfig{})
			tt.setup(e)
			a, b := ref("aaaa"), ref("bbbb")
			ev := event(
				changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, hashes("x", 1)...)...),
				changesMsg(t, changes(b, audience.ListEmail, audience.OpAdd, t0, hashes("y", 1)...)...),
			)
			if failed := e.handle(t.Context(), ev); len(failed) != 0 {
				t.Errorf("failed messages %v, want none (they are in the ledger)", failed)
			}
			if got := sumCalls(e.sim.Calls()); got != tt.wantCalls {
				t.Errorf("%d Pinterest calls, want %d", got, tt.wantCalls)
			}
			if diff := cmp.Diff([]string{"ups:aaaa/EMAIL", "ups:bbbb/EMAIL"}, e.pendingLists()); diff != "" {
				t.Errorf("pending lists (-want +got):\n%s", diff)
			}
			if m := e.lastEMF(); m["ListFailures"] != 2 {
				t.Errorf("metrics %v: want both lists counted as failed", m)
			}
			if !strings.Contains(e.logs.String(), tt.wantLog) {
				t.Errorf("logs do not say %q:\n%s", tt.wantLog, e.logs.String())
			}
		})
	}
}

func TestStopsStartingCallsNearTheDeadline(t *testing.T) {
	clock := fake.NewClock(time.Now())
	// Every Pinterest call takes 3 s on the fake clock.
	slow := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			clock.Advance(3 * time.Second)
			next.ServeHTTP(w, r)
		})
	}
	e := newEnv(t, envConfig{wrap: slow, now: clock.Now, margin: 2 * time.Second})
	ctx, cancel := context.WithDeadline(t.Context(), clock.Now().Add(10*time.Second))
	defer cancel()
	a, b := ref("aaaa"), ref("bbbb")
	ev := event(
		// a's EMAIL list first: list the lists, create the list, create its
		// audience: 9 s.
		changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, hashes("a", 1)...)...),
		// The rest would start at 9 s, past the 8 s cut-off.
		changesMsg(t, changes(b, audience.ListEmail, audience.OpAdd, t0, hashes("b", 1)...)...),
		changesMsg(t, changes(a, audience.ListMAID, audience.OpAdd, t0, hashes("a", 1)...)...),
	)
	if failed := e.handle(ctx, ev); len(failed) != 0 {
		t.Errorf("failed messages %v, want none (they are in the ledger)", failed)
	}
	if got := sumCalls(e.sim.Calls()); got != 3 {
		t.Errorf("%d Pinterest calls, want 3", got)
	}
	if diff := cmp.Diff([]string{"ups:aaaa/MAID", "ups:bbbb/EMAIL"}, e.pendingLists()); diff != "" {
		t.Errorf("pending lists (-want +got):\n%s", diff)
	}
	if !strings.Contains(e.logs.String(), "deadline is near") {
		t.Errorf("logs do not say the deadline was near:\n%s", e.logs.String())
	}
}

func TestPassedDeadlineFailsEverythingWithoutCalls(t *testing.T) {
	e := newEnv(t, envConfig{})
	ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	ev := event(
		changesMsg(t, changes(ref("aaaa"), audience.ListEmail, audience.OpAdd, t0, hashes("a", 1)...)...),
		changesMsg(t, changes(ref("bbbb"), audience.ListEmail, audience.OpAdd, t0, hashes("b", 1)...)...),
	)
	// Not even the ledger write can happen: the messages come back.
	if diff := cmp.Diff([]string{"m0", "m1"}, e.handle(ctx, ev)); diff != "" {
		t.Errorf("failed messages (-want +got):\n%s", diff)
	}
	if got := sumCalls(e.sim.Calls()); got != 0 {
		t.Errorf("%d Pinterest calls, want 0", got)
	}
}

func TestLogsAndMetricsCarryNoIdentifiers(t *testing.T) {
	e := newEnv(t, envConfig{})
	a := ref("aaaa")
	hs := hashes("secret-person", 3)
	e.sim.SetFault(pinterestsim.RouteCustomerListsCreate, pinterestsim.Fault{FailNext: 1000, FailStatus: http.StatusBadRequest})
	ctx := lambdacontext.NewContext(t.Context(), &lambdacontext.LambdaContext{AwsRequestID: "req-123"})
	ev := event(
		changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, hs...)...),
		sqsMsg{body: `{"v":1,"kind":"changes","audience":{"ns":"ups","id":"aaaa"},"records":[{"l":"EMAIL","o":"ADD","h":"` + hs[0][:63] + `"}]}`},
	)
	if failed := e.handle(ctx, ev); len(failed) != 1 {
		t.Fatalf("failed messages %v, want 1", failed)
	}
	out := e.logs.String() + e.metrics.String()
	for _, h := range hs {
		if strings.Contains(out, h) || strings.Contains(out, h[:16]) {
			t.Fatalf("an identifier hash appears in the logs or metrics:\n%s", out)
		}
	}
	if !strings.Contains(e.logs.String(), `"request_id":"req-123"`) {
		t.Errorf("logs lack the Lambda request ID:\n%s", e.logs.String())
	}
	if !strings.Contains(e.logs.String(), "list not flushed") {
		t.Errorf("logs lack the list failure:\n%s", e.logs.String())
	}
	if recs := e.emf(); len(recs) != 1 || recs[0]["Connection"] != "test-connection" {
		t.Errorf("metrics %v, want one record with Connection test-connection", recs)
	}
}

func TestEmptyBatch(t *testing.T) {
	e := newEnv(t, envConfig{})
	resp, err := e.h.HandleSQS(t.Context(), events.SQSEvent{})
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("HandleSQS(empty) = %v, %v; want no failures", resp, err)
	}
	if got := e.lastEMF(); got["APICalls"] != 0 {
		t.Errorf("metrics %v, want no API calls", got)
	}
}

func TestNewChecksItsOptions(t *testing.T) {
	e := newEnv(t, envConfig{})
	valid := upload.Options{Client: e.client, Ledger: e.ledger, Names: e.names}
	tests := []struct {
		name    string
		change  func(o *upload.Options)
		wantErr string // "" for success
	}{
		{"all defaults", func(*upload.Options) {}, ""},
		{"no client", func(o *upload.Options) { o.Client = nil }, "Options.Client"},
		{"no ledger", func(o *upload.Options) { o.Ledger = nil }, "Options.Ledger"},
		{"no name store", func(o *upload.Options) { o.Names = nil }, "Options.Names"},
		{"negative max records", func(o *upload.Options) { o.MaxRecordsPerRequest = -1 }, "Options.MaxRecordsPerRequest"},
		{"negative margin", func(o *upload.Options) { o.DeadlineMargin = -time.Second }, "Options.DeadlineMargin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := valid
			tt.change(&o)
			h, err := upload.New(o)
			switch {
			case tt.wantErr == "" && (err != nil || h == nil):
				t.Fatalf("New = %v, %v; want a handler", h, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("New error = %v, want one naming %s", err, tt.wantErr)
			}
		})
	}
}

// arrivingRows is a ledger in which, each time rows of list are marked
// sent, one more row of it is recorded (up to left times): rows that keep
// coming while the list is being flushed.
type arrivingRows struct {
	ledger.Store
	list    ledger.List
	left    atomic.Int32
	arrived atomic.Int32
}

func (a *arrivingRows) MarkSent(ctx context.Context, l ledger.List, op audience.Op, rows []ledger.Pending) error {
	if err := a.Store.MarkSent(ctx, l, op, rows); err != nil || l != a.list || a.left.Add(-1) < 0 {
		return err
	}
	n := a.arrived.Add(1)
	_, err := a.Store.Apply(ctx, changes(l.Audience, l.Type, audience.OpAdd, t0.Add(time.Hour), hashOf("arrived"+strconv.Itoa(int(n)))))
	return err
}

// In a FlushRound a list whose rows keep coming while it is flushed sends
// one partial call and leaves the rest to the next round: the lists after
// it get their turn now, not once it runs dry. FlushAll (a sweep, an AWS
// flush) still sends a list until nothing is pending.
func TestFlushRoundGivesEveryListItsTurn(t *testing.T) {
	a, b := ref("aaaa"), ref("bbbb")
	arriving := &arrivingRows{list: ledger.List{Audience: a, Type: audience.ListEmail}}
	e := newEnv(t, envConfig{maxRecords: 5, simMax: 5, ledger: func(s ledger.Store) ledger.Store {
		arriving.Store = s
		return arriving
	}})
	if failed := e.handle(t.Context(), event(
		changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, hashes("first", 2)...)...),
		changesMsg(t, changes(b, audience.ListEmail, audience.OpAdd, t0, hashes("first", 1)...)...),
	)); len(failed) != 0 {
		t.Fatalf("setup failed: %v", failed)
	}
	aID, bID := e.listID("pinlist ups:aaaa EMAIL"), e.listID("pinlist ups:bbbb EMAIL")
	arriving.left.Store(3)
	round := func(name string) []string {
		t.Helper()
		before := len(e.reqs.ok())
		if f, err := e.h.FlushRound(t.Context()); err != nil || f.Deferred != 0 {
			t.Fatalf("%s: %+v, %v", name, f, err)
		}
		var calls []string
		for _, w := range e.reqs.ok()[before:] {
			calls = append(calls, w.listID+":"+strconv.Itoa(len(w.records)))
		}
		return calls
	}
	if failed := e.apply(t.Context(), event(
		changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0.Add(time.Hour), hashes("second", 2)...)...),
		changesMsg(t, changes(b, audience.ListEmail, audience.OpAdd, t0.Add(time.Hour), hashes("second", 1)...)...),
	)); len(failed) != 0 {
		t.Fatalf("apply failed: %v", failed)
	}
	for i, want := range [][]string{
		{aID + ":2", bID + ":1"}, // a's second row arrives while its call is sent: next round
		{aID + ":1"},
		{aID + ":1"},
		{aID + ":1"}, // the last one to arrive
		nil,
	} {
		name := "round " + strconv.Itoa(i+1)
		if diff := cmp.Diff(want, round(name)); diff != "" {
			t.Errorf("%s: calls, list:records (-want +got):\n%s", name, diff)
		}
	}

	// FlushAll drains a list whose rows keep coming until none is pending.
	arriving.left.Store(2)
	if failed := e.apply(t.Context(), event(changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0.Add(time.Hour), hashes("third", 1)...)...))); len(failed) != 0 {
		t.Fatalf("apply failed: %v", failed)
	}
	before := len(e.reqs.ok())
	e.flushAll(t.Context())
	if got := len(e.reqs.ok()) - before; got != 3 {
		t.Errorf("FlushAll made %d calls, want 3 (the row, then each row that arrived meanwhile)", got)
	}
	if p := e.pending(a, audience.ListEmail); p[audience.OpAdd] != 0 {
		t.Errorf("after FlushAll: %d rows of a pending, want none", p[audience.OpAdd])
	}
}

// FlushRound (the local flush loop's round) under a backlog keeps partial
// calls pending until they fill, the backlog ends or they waited five
// minutes, so that under a backlog every call is full; without a backlog
// each pair gets its one call, as full as it is. FlushAll never defers.
func TestFlushRoundDefersPartialCallsUnderABacklog(t *testing.T) {
	var mu sync.Mutex
	now := t0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newEnv(t, envConfig{maxRecords: 5, simMax: 5, now: clock})
	a, b := ref("aaaa"), ref("bbbb")
	if failed := e.handle(t.Context(), event(
		changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, hashes("first", 1)...)...),
		changesMsg(t, changes(b, audience.ListEmail, audience.OpAdd, t0, hashes("first", 1)...)...),
	)); len(failed) != 0 {
		t.Fatalf("setup failed: %v", failed)
	}
	aID, bID := e.listID("pinlist ups:aaaa EMAIL"), e.listID("pinlist ups:bbbb EMAIL")
	record := func(aud audience.Ref, prefix string, n int) {
		t.Helper()
		if failed := e.apply(t.Context(), event(changesMsg(t, changes(aud, audience.ListEmail, audience.OpAdd, t0.Add(time.Hour), hashes(prefix, n)...)...))); len(failed) != 0 {
			t.Fatalf("apply failed: %v", failed)
		}
	}
	// round runs one FlushRound and returns its update calls' sizes per list.
	round := func(name string, wantDeferred int) map[string][]int {
		t.Helper()
		before := len(e.reqs.ok())
		f, err := e.h.FlushRound(t.Context())
		if err != nil || f.Deferred != wantDeferred {
			t.Fatalf("%s: %+v, %v; want %d pairs deferred", name, f, err, wantDeferred)
		}
		out := map[string][]int{}
		for _, w := range e.reqs.ok()[before:] {
			if !w.create {
				out[w.listID] = append(out[w.listID], len(w.records))
			}
		}
		return out
	}
	check := func(name string, want, got map[string][]int) {
		t.Helper()
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: records per call (-want +got):\n%s", name, diff)
		}
	}

	// No backlog before: a's full calls go, then its remainder waits; b
	// gets its one call.
	record(a, "backlog", 12)
	record(b, "few", 3)
	check("round 1", map[string][]int{aID: {5, 5}, bID: {3}}, round("round 1", 1))
	// A backlog (round 1 sent full calls): a's remainder goes out full with
	// what arrived meanwhile; b's two new rows wait.
	record(a, "meanwhile", 3)
	record(b, "more", 2)
	check("round 2", map[string][]int{aID: {5}}, round("round 2", 1))
	// Round 2 still sent a full call: b waits on.
	check("round 3", map[string][]int{}, round("round 3", 1))
	// The backlog is over (round 3 sent nothing full): b goes.
	check("round 4", map[string][]int{bID: {2}}, round("round 4", 0))

	// A backlog that lasts: a partial call waits at most five minutes.
	record(a, "long", 5)
	record(b, "waiting", 1)
	check("round 5", map[string][]int{aID: {5}, bID: {1}}, round("round 5", 0)) // no backlog before it
	record(a, "long2", 5)
	record(b, "waiting2", 1)
	check("round 6", map[string][]int{aID: {5}}, round("round 6", 1))
	mu.Lock()
	now = now.Add(5 * time.Minute)
	mu.Unlock()
	record(a, "long3", 5)
	check("round 7", map[string][]int{aID: {5}, bID: {1}}, round("round 7", 0))

	// FlushAll (a sweep, a flush after a batch) sends everything.
	record(a, "sweep", 7)
	before := len(e.reqs.ok())
	if f := e.flushAll(t.Context()); f.Deferred != 0 {
		t.Errorf("FlushAll deferred %d pairs, want 0", f.Deferred)
	}
	got := map[string][]int{}
	for _, w := range e.reqs.ok()[before:] {
		got[w.listID] = append(got[w.listID], len(w.records))
	}
	check("FlushAll", map[string][]int{aID: {5, 2}}, got)
	want := map[string][]string{
		"pinlist ups:aaaa EMAIL": sorted(slices.Concat(hashes("first", 1), hashes("backlog", 12), hashes("meanwhile", 3),
			hashes("long", 5), hashes("long2", 5), hashes("long3", 5), hashes("sweep", 7))),
		"pinlist ups:bbbb EMAIL": sorted(slices.Concat(hashes("first", 1), hashes("few", 3), hashes("more", 2), hashes("waiting", 1), hashes("waiting2", 1))),
	}
	if diff := cmp.Diff(want, e.membership()); diff != "" {
		t.Errorf("membership (-want +got):\n%s", diff)
	}
}
