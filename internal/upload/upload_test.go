package upload_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/fake"
	"github.com/pinlist/pinlist/internal/pinterest"
	"github.com/pinlist/pinlist/internal/pinterestsim"
	"github.com/pinlist/pinlist/internal/upload"
)

func TestAppliesChangesCreatingListsAndAudiences(t *testing.T) {
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
	// Each list was created with its records: no update call was needed.
	if n := e.sim.Calls()[pinterestsim.RouteCustomerListsUpdate]; n != 0 {
		t.Errorf("%d update calls, want 0 (records go with the create)", n)
	}
	got := e.lastEMF()
	wantEMF := map[string]float64{"ChangesApplied": 9, "ListsCreated": 3, "Failures": 0, "Retries": 0,
		"APICalls": float64(sumCalls(e.sim.Calls()))}
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

func TestCoalescesTheGroupsChangesAcrossMessages(t *testing.T) {
	e := newEnv(t, envConfig{})
	a := ref("aaaa")
	h := hashes("p", 6)
	// Start: h0..h3 are members.
	if failed := e.handle(t.Context(), event(changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, h[:4]...)...))); len(failed) != 0 {
		t.Fatalf("setup batch failed: %v", failed)
	}
	later, earlier := t0.Add(time.Hour), t0.Add(-time.Hour)
	ev := event(
		changesMsg(t, slices.Concat(
			changes(a, audience.ListEmail, audience.OpRemove, later, h[0]), // newer than m1's ADD: stays removed
			changes(a, audience.ListEmail, audience.OpAdd, later, h[1]),    // newer than m1's REMOVE: stays
			changes(a, audience.ListEmail, audience.OpAdd, t0, h[2]),       // tie with m1's REMOVE: m1 wins
			changes(a, audience.ListEmail, audience.OpAdd, t0, h[4]),       // new member
		)...),
		changesMsg(t, slices.Concat(
			changes(a, audience.ListEmail, audience.OpAdd, earlier, h[0]),
			changes(a, audience.ListEmail, audience.OpRemove, earlier, h[1]),
			changes(a, audience.ListEmail, audience.OpRemove, t0, h[2]),
			changes(a, audience.ListEmail, audience.OpRemove, t0, h[5]), // never a member
		)...),
	)
	if failed := e.handle(t.Context(), ev); len(failed) != 0 {
		t.Fatalf("failed messages %v, want none", failed)
	}
	want := map[string][]string{"pinlist ups:aaaa EMAIL": sorted([]string{h[1], h[3], h[4]})}
	if diff := cmp.Diff(want, e.membership()); diff != "" {
		t.Errorf("membership (-want +got):\n%s", diff)
	}
}

func TestSendsAtMostMaxRecordsPerCall(t *testing.T) {
	tests := []struct {
		name        string
		maxRecords  int
		adds        int
		removes     int
		wantUpdates int // the create carries the first chunk of ADDs
	}{
		{"one call each", 5000, 10, 4, 1},
		{"adds split", 3, 10, 0, 3},
		{"adds and removes split", 3, 7, 7, 2 + 3},
		{"exact multiple", 5, 10, 5, 1 + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envConfig{maxRecords: tt.maxRecords, simMax: tt.maxRecords})
			a := ref("aaaa")
			adds := hashes("add", tt.adds)
			removes := hashes("remove", tt.removes)
			ev := event(changesMsg(t, slices.Concat(
				changes(a, audience.ListEmail, audience.OpAdd, t0, adds...),
				changes(a, audience.ListEmail, audience.OpRemove, t0, removes...),
			)...))
			if failed := e.handle(t.Context(), ev); len(failed) != 0 {
				t.Fatalf("failed messages %v, want none", failed)
			}
			if got := e.sim.Calls()[pinterestsim.RouteCustomerListsUpdate]; got != tt.wantUpdates {
				t.Errorf("%d update calls, want %d", got, tt.wantUpdates)
			}
			want := map[string][]string{"pinlist ups:aaaa EMAIL": sorted(adds)}
			if diff := cmp.Diff(want, e.membership()); diff != "" {
				t.Errorf("membership (-want +got):\n%s", diff)
			}
			if got := e.lastEMF()["ChangesApplied"]; got != float64(tt.adds+tt.removes) {
				t.Errorf("ChangesApplied = %v, want %d", got, tt.adds+tt.removes)
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

func TestCachesListsAcrossBatches(t *testing.T) {
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

func TestRemovalsFromAMissingListCreateNothing(t *testing.T) {
	e := newEnv(t, envConfig{})
	ev := event(changesMsg(t, changes(ref("aaaa"), audience.ListEmail, audience.OpRemove, t0, hashes("x", 3)...)...))
	if failed := e.handle(t.Context(), ev); len(failed) != 0 {
		t.Fatalf("failed messages %v, want none", failed)
	}
	if got := e.sim.State().AdAccounts[adAccount].CustomerLists; len(got) != 0 {
		t.Errorf("lists %v, want none", got)
	}
}

// refusingEmptyLists is Pinterest refusing to create a customer list without
// records (its docs say a list needs at least 100 accounts to match).
type refusingEmptyLists struct{ upload.Client }

func (c refusingEmptyLists) CreateCustomerList(ctx context.Context, in pinterest.CustomerListCreate) (*pinterest.CustomerList, error) {
	if len(in.Records) == 0 {
		return nil, &pinterest.APIError{StatusCode: http.StatusBadRequest, Code: 1, Message: "Records list is empty.", Method: "POST", Path: "/ad_accounts/x/customer_lists"}
	}
	return c.Client.CreateCustomerList(ctx, in)
}

func TestAudienceMessageNamesTheAudiencesLists(t *testing.T) {
	for _, tt := range []struct {
		name string
		wrap func(upload.Client) upload.Client
	}{
		{"as the client creates empty lists", nil},
		{"when Pinterest refuses empty lists", func(c upload.Client) upload.Client { return refusingEmptyLists{c} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envConfig{})
			if tt.wrap != nil {
				h, err := upload.New(tt.wrap(e.client), upload.WithMetricsOutput(e.metrics))
				if err != nil {
					t.Fatal(err)
				}
				e.h = h
			}
			a := ref("aaaa")
			members := map[audience.ListType][]string{
				audience.ListEmail: hashes("e", 2), audience.ListMAID: hashes("m", 2), audience.ListIDFA: hashes("i", 2),
			}
			first := event(
				audienceMsg(t, a, "VIP buyers", "Bought twice this year"),
				changesMsg(t, changes(a, audience.ListMAID, audience.OpAdd, t0, members[audience.ListMAID]...)...),
			)
			if failed := e.handle(t.Context(), first); len(failed) != 0 {
				t.Fatalf("failed messages %v, want none", failed)
			}
			// Members of the other types arrive later.
			later := event(
				changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, members[audience.ListEmail]...)...),
				changesMsg(t, changes(a, audience.ListIDFA, audience.OpAdd, t0, members[audience.ListIDFA]...)...),
			)
			if failed := e.handle(t.Context(), later); len(failed) != 0 {
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
		})
	}
}

func TestUndecodableMessageFailsItsGroupFromItselfOnly(t *testing.T) {
	e := newEnv(t, envConfig{})
	a, b := ref("aaaa"), ref("bbbb")
	aFirst, aLater, bAll := hashes("a1", 2), hashes("a2", 2), hashes("b", 2)
	ev := event(
		changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, aFirst...)...),
		sqsMsg{group: a.Key(), body: `{"v":1,"kind":"changes","audience":{"ns":"ups","id":"aaaa"},"records":[{"l":"EMAIL","o":"ADD","h":"not-a-hash"}]}`},
		changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, aLater...)...),
		changesMsg(t, changes(b, audience.ListEmail, audience.OpAdd, t0, bAll...)...),
		sqsMsg{group: "", body: "{not json"}, // no group: orders nothing but itself
	)
	failed := e.handle(t.Context(), ev)
	if diff := cmp.Diff([]string{"m1", "m2", "m4"}, failed); diff != "" {
		t.Errorf("failed messages (-want +got):\n%s", diff)
	}
	want := map[string][]string{
		"pinlist ups:aaaa EMAIL": sorted(aFirst),
		"pinlist ups:bbbb EMAIL": sorted(bAll),
	}
	if diff := cmp.Diff(want, e.membership()); diff != "" {
		t.Errorf("membership (-want +got):\n%s", diff)
	}
	if got := e.lastEMF()["Failures"]; got != 3 {
		t.Errorf("Failures = %v, want 3", got)
	}
}

func TestMissingGroupAttributeGroupsByAudience(t *testing.T) {
	e := newEnv(t, envConfig{})
	a := ref("aaaa")
	m := changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, hashes("x", 2)...)...)
	m.group = ""
	if failed := e.handle(t.Context(), event(m)); len(failed) != 0 {
		t.Fatalf("failed messages %v, want none", failed)
	}
	if got := e.membership()["pinlist ups:aaaa EMAIL"]; len(got) != 2 {
		t.Errorf("records %v, want 2", got)
	}
}

func TestServerErrorsFailOnlyTheAffectedMessages(t *testing.T) {
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
			a, b := ref("aaaa"), ref("bbbb")
			setup := event(
				changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, hashes("a0", 1)...)...),
				changesMsg(t, changes(a, audience.ListMAID, audience.OpAdd, t0, hashes("a0", 1)...)...),
				changesMsg(t, changes(b, audience.ListEmail, audience.OpAdd, t0, hashes("b0", 1)...)...),
			)
			if failed := e.handle(t.Context(), setup); len(failed) != 0 {
				t.Fatalf("setup failed: %v", failed)
			}
			// a's MAID list fails every call.
			f := tt.fault
			f.Match = pathEndsWith(e.listID("pinlist ups:aaaa MAID"))
			e.sim.SetFault(pinterestsim.RouteCustomerListsUpdate, f)

			aEmail, aMaid, aEmail2, bEmail := hashes("a1", 2), hashes("a2", 2), hashes("a3", 2), hashes("b1", 2)
			m2 := changesMsg(t, changes(a, audience.ListMAID, audience.OpAdd, t0, aMaid...)...)
			m3 := changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, aEmail2...)...)
			ev := event(
				changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, aEmail...)...), // m0: applied
				changesMsg(t, changes(b, audience.ListEmail, audience.OpAdd, t0, bEmail...)...), // m1: other group
				m2, // fails
				m3, // after m2 in its group
			)
			failed := e.handle(t.Context(), ev)
			if diff := cmp.Diff([]string{"m2", "m3"}, failed); diff != "" {
				t.Fatalf("failed messages (-want +got):\n%s", diff)
			}
			if got := e.lastEMF(); got["Retries"] != 2 || got["Failures"] != 2 {
				t.Errorf("metrics %v: want 2 retries (3 attempts) and 2 failures", got)
			}

			// The fault clears; the failed messages come back and converge.
			e.sim.ClearFaults()
			if failed := e.handle(t.Context(), event(m2, m3)); len(failed) != 0 {
				t.Fatalf("redelivery failed: %v", failed)
			}
			want := map[string][]string{
				"pinlist ups:aaaa EMAIL": sorted(slices.Concat(hashes("a0", 1), aEmail, aEmail2)),
				"pinlist ups:aaaa MAID":  sorted(slices.Concat(hashes("a0", 1), aMaid)),
				"pinlist ups:bbbb EMAIL": sorted(slices.Concat(hashes("b0", 1), bEmail)),
			}
			if diff := cmp.Diff(want, e.membership()); diff != "" {
				t.Errorf("membership (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRedeliveryOfAnAppliedBatchChangesNothing(t *testing.T) {
	e := newEnv(t, envConfig{maxRecords: 2})
	a := ref("aaaa")
	ev := event(
		changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, hashes("x", 5)...)...),
		changesMsg(t, changes(a, audience.ListEmail, audience.OpRemove, t0.Add(time.Minute), hashes("x", 2)...)...),
	)
	for i := range 2 {
		if failed := e.handle(t.Context(), ev); len(failed) != 0 {
			t.Fatalf("delivery %d failed: %v", i+1, failed)
		}
	}
	want := map[string][]string{"pinlist ups:aaaa EMAIL": sorted(hashes("x", 5)[2:])}
	if diff := cmp.Diff(want, e.membership()); diff != "" {
		t.Errorf("membership (-want +got):\n%s", diff)
	}
	if got := len(e.sim.State().AdAccounts[adAccount].CustomerLists); got != 1 {
		t.Errorf("%d lists, want 1", got)
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
		t.Fatalf("failed messages %v, want none after reloading the token", failed)
	}
	if got := e.store.loadCount() - loads; got != 1 {
		t.Errorf("token store loaded %d times, want 1", got)
	}
	if got := e.membership()["pinlist ups:aaaa EMAIL"]; len(got) != 3 {
		t.Errorf("records %v, want 3", got)
	}
}

func TestTokenTroubleFailsTheWholeBatch(t *testing.T) {
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
			failed := e.handle(t.Context(), ev)
			if diff := cmp.Diff([]string{"m0", "m1"}, failed); diff != "" {
				t.Errorf("failed messages (-want +got):\n%s", diff)
			}
			if got := sumCalls(e.sim.Calls()); got != tt.wantCalls {
				t.Errorf("%d Pinterest calls, want %d", got, tt.wantCalls)
			}
			if !strings.Contains(e.logs.String(), tt.wantLog) {
				t.Errorf("logs do not say %q:\n%s", tt.wantLog, e.logs.String())
			}
		})
	}
}

// fakeClock is a clock the test moves by hand.
type fakeClock = fake.Clock

func TestStopsStartingCallsNearTheDeadline(t *testing.T) {
	clock := fake.NewClock(time.Now())
	// Every Pinterest call takes 3 s on the fake clock.
	slow := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			clock.Advance(3 * time.Second)
			next.ServeHTTP(w, r)
		})
	}
	e := newEnv(t, envConfig{wrap: slow, opts: []upload.Option{upload.WithClock(clock.Now), upload.WithDeadlineMargin(2 * time.Second)}})
	ctx, cancel := context.WithDeadline(t.Context(), clock.Now().Add(10*time.Second))
	defer cancel()
	a, b := ref("aaaa"), ref("bbbb")
	ev := event(
		// a: list the lists, create the list, create its audience: 9 s.
		changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, hashes("a", 1)...)...),
		// b: would start at 9 s, past the 8 s cut-off.
		changesMsg(t, changes(b, audience.ListEmail, audience.OpAdd, t0, hashes("b", 1)...)...),
		changesMsg(t, changes(a, audience.ListMAID, audience.OpAdd, t0, hashes("a", 1)...)...),
	)
	failed := e.handle(ctx, ev)
	if diff := cmp.Diff([]string{"m2", "m1"}, failed); diff != "" {
		t.Errorf("failed messages (-want +got):\n%s", diff)
	}
	if got := sumCalls(e.sim.Calls()); got != 3 {
		t.Errorf("%d Pinterest calls, want 3", got)
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
	e.sim.SetFault(pinterestsim.RouteCustomerListsCreate, pinterestsim.Fault{Rate500: 1})
	ctx := lambdacontext.NewContext(t.Context(), &lambdacontext.LambdaContext{AwsRequestID: "req-123"})
	ev := event(changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, hs...)...))
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
	rec := e.emf()[0]
	if rec["Connection"] != "test-connection" {
		t.Errorf("metrics Connection = %v, want test-connection", rec["Connection"])
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

func TestNewRefusesANilClient(t *testing.T) {
	if _, err := upload.New(nil); err == nil {
		t.Fatal("New(nil) succeeded")
	}
}
