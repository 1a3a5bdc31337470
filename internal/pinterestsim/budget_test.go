package pinterestsim

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const otherAd = "549755885176"

// budgetStep is one request of a write-budget scenario and what it must get.
type budgetStep struct {
	advance       time.Duration // the clock moves this much first
	method, path  string
	body          any
	wantStatus    int
	wantRemaining string // "" → no X-RateLimit headers at all
	wantReset     string
}

func TestWriteBudget(t *testing.T) {
	lists := "/v5/ad_accounts/" + testAd + "/customer_lists"
	create := map[string]string{"name": "l", "records": "a"}
	tests := []struct {
		name  string
		limit int
		burst int
		steps []budgetStep
	}{
		{
			name: "a full bucket, spent, then refilled", limit: 60, burst: 3,
			steps: []budgetStep{
				{method: http.MethodPost, path: lists, body: create, wantStatus: 200, wantRemaining: "2", wantReset: "0"},
				{method: http.MethodPost, path: lists, body: create, wantStatus: 200, wantRemaining: "1", wantReset: "0"},
				{method: http.MethodPost, path: lists, body: create, wantStatus: 200, wantRemaining: "0", wantReset: "1"},
				{method: http.MethodPost, path: lists, body: create, wantStatus: 429, wantRemaining: "0", wantReset: "1"},
				{advance: 500 * time.Millisecond, method: http.MethodPost, path: lists, body: create, wantStatus: 429, wantRemaining: "0", wantReset: "1"},
				{advance: 500 * time.Millisecond, method: http.MethodPost, path: lists, body: create, wantStatus: 200, wantRemaining: "0", wantReset: "1"},
				{advance: time.Hour, method: http.MethodPost, path: lists, body: create, wantStatus: 200, wantRemaining: "2", wantReset: "0"},
			},
		},
		{
			name: "reads are not limited and carry no budget headers", limit: 60, burst: 1,
			steps: []budgetStep{
				{method: http.MethodPost, path: lists, body: create, wantStatus: 200, wantRemaining: "0", wantReset: "1"},
				{method: http.MethodGet, path: lists, wantStatus: 200},
				{method: http.MethodGet, path: "/v5/ad_accounts/" + testAd + "/audiences", wantStatus: 200},
				{method: http.MethodPost, path: lists, body: create, wantStatus: 429, wantRemaining: "0", wantReset: "1"},
			},
		},
		{
			name: "an invalid write gets its 400 even with the bucket empty, and spends nothing", limit: 60, burst: 1,
			steps: []budgetStep{
				{method: http.MethodPost, path: lists, body: map[string]string{"name": "no records"}, wantStatus: 400},
				{method: http.MethodPost, path: lists, body: create, wantStatus: 200, wantRemaining: "0", wantReset: "1"},
				{method: http.MethodPost, path: lists, body: map[string]string{"name": "no records"}, wantStatus: 400},
			},
		},
		{
			name: "each ad account has its own bucket", limit: 60, burst: 1,
			steps: []budgetStep{
				{method: http.MethodPost, path: lists, body: create, wantStatus: 200, wantRemaining: "0", wantReset: "1"},
				{method: http.MethodPost, path: "/v5/ad_accounts/" + otherAd + "/customer_lists", body: create, wantStatus: 200, wantRemaining: "0", wantReset: "1"},
				{method: http.MethodPost, path: lists, body: create, wantStatus: 429, wantRemaining: "0", wantReset: "1"},
			},
		},
		{
			name: "a slow refill rounds the reset up", limit: 1, burst: 0, // burst 0 → max(1, 1/10) = 1
			steps: []budgetStep{
				{method: http.MethodPost, path: lists, body: create, wantStatus: 200, wantRemaining: "0", wantReset: "60"},
				{advance: 59*time.Second + time.Millisecond, method: http.MethodPost, path: lists, body: create, wantStatus: 429, wantRemaining: "0", wantReset: "1"},
			},
		},
		{
			name: "no limit: no 429 and no headers", limit: 0,
			steps: []budgetStep{
				{method: http.MethodPost, path: lists, body: create, wantStatus: 200},
				{method: http.MethodPost, path: lists, body: create, wantStatus: 200},
				{method: http.MethodPost, path: lists, body: create, wantStatus: 200},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(o *Options) {
				o.AdAccounts = append(o.AdAccounts, otherAd)
				o.WriteLimit, o.WriteBurst = tt.limit, tt.burst
			})
			for i, st := range tt.steps {
				f.clock.Advance(st.advance)
				resp := f.api(st.method, st.path, st.body)
				if resp.status != st.wantStatus {
					t.Fatalf("step %d: %s %s: status %d, want %d: %s", i, st.method, st.path, resp.status, st.wantStatus, resp.body)
				}
				got := [3]string{resp.header.Get(HeaderRateLimitLimit), resp.header.Get(HeaderRateLimitRemaining), resp.header.Get(HeaderRateLimitReset)}
				want := [3]string{}
				if st.wantRemaining != "" {
					want = [3]string{itoa(tt.limit), st.wantRemaining, st.wantReset}
				}
				if got != want {
					t.Errorf("step %d: limit, remaining, reset = %q, want %q", i, got, want)
				}
				if st.wantStatus == http.StatusTooManyRequests {
					if e := resp.apiErr(t); e.Code != 8 || !strings.Contains(e.Message, "rate limit") {
						t.Errorf("step %d: 429 body %+v, want code 8 and Pinterest's message", i, e)
					}
					if ra := resp.header.Get("Retry-After"); ra != st.wantReset {
						t.Errorf("step %d: Retry-After %q, want %q", i, ra, st.wantReset)
					}
				} else if ra := resp.header.Get("Retry-After"); ra != "" {
					t.Errorf("step %d: Retry-After %q on a %d", i, ra, resp.status)
				}
			}
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// TestWriteBudgetSharedByWriteRoutes: customer list creates and updates and
// audience creates and updates spend one bucket (Pinterest's ads_write
// category: an audience PATCH is a write like the others), and
// /_sim/calls counts the 429s per route beside the requests.
func TestWriteBudgetSharedByWriteRoutes(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.WriteLimit, o.WriteBurst = 60, 4 })
	l := f.createList("l", "a")
	if resp := f.api(http.MethodPatch, listPath(l.ID), map[string]string{"operation_type": "ADD", "records": "b"}); resp.status != 200 {
		t.Fatalf("update: %d %s", resp.status, resp.body)
	}
	audience := map[string]any{"name": "aud", "audience_type": "CUSTOMER_LIST", "rule": map[string]string{"customer_list_id": l.ID}}
	resp := f.api(http.MethodPost, "/v5/ad_accounts/"+testAd+"/audiences", audience)
	if resp.status != 200 {
		t.Fatalf("create audience: %d %s", resp.status, resp.body)
	}
	var aud struct {
		ID string `json:"id"`
	}
	resp.decode(t, &aud)
	audPath := "/v5/ad_accounts/" + testAd + "/audiences/" + aud.ID
	point := map[string]any{"operation_type": "UPDATE", "rule": map[string]string{"customer_list_id": l.ID}}
	if resp := f.api(http.MethodPatch, audPath, point); resp.status != 200 {
		t.Fatalf("update audience: %d %s", resp.status, resp.body)
	}
	// The bucket of 4 is spent: each write route now gets 429.
	for _, w := range []struct {
		method, path string
		body         any
	}{
		{http.MethodPatch, listPath(l.ID), map[string]string{"operation_type": "ADD", "records": "c"}},
		{http.MethodPatch, listPath(l.ID), map[string]string{"operation_type": "REMOVE", "records": "c"}},
		{http.MethodPost, "/v5/ad_accounts/" + testAd + "/audiences", audience},
		{http.MethodPost, "/v5/ad_accounts/" + testAd + "/customer_lists", map[string]string{"name": "m", "records": "a"}},
		{http.MethodPatch, audPath, point},
	} {
		if resp := f.api(w.method, w.path, w.body); resp.status != http.StatusTooManyRequests {
			t.Errorf("%s %s: %d, want 429", w.method, w.path, resp.status)
		}
	}
	if got := f.sim.Records(testAd, l.ID); !cmp.Equal(got, []string{"a", "b"}) {
		t.Errorf("records %v: a rate-limited update changed the list", got)
	}

	var calls map[string]int
	f.control(http.MethodGet, "/_sim/calls", nil).decode(t, &calls)
	want := map[string]int{
		RouteCustomerListsCreate: 2, RateLimitedKey(RouteCustomerListsCreate): 1,
		RouteCustomerListsUpdate: 3, RateLimitedKey(RouteCustomerListsUpdate): 2,
		RouteAudiencesCreate: 2, RateLimitedKey(RouteAudiencesCreate): 1,
		RouteAudiencesUpdate: 2, RateLimitedKey(RouteAudiencesUpdate): 1,
	}
	if diff := cmp.Diff(want, calls); diff != "" {
		t.Errorf("/_sim/calls (-want +got):\n%s", diff)
	}
	if got := f.sim.Calls()[RateLimitedKey(RouteCustomerListsUpdate)]; got != 0 {
		t.Errorf("Calls() has a 429 key (%d): it counts requests per route only", got)
	}
	wantLimited := map[string]int{RouteCustomerListsCreate: 1, RouteCustomerListsUpdate: 2, RouteAudiencesCreate: 1, RouteAudiencesUpdate: 1}
	if diff := cmp.Diff(wantLimited, f.sim.RateLimited()); diff != "" {
		t.Errorf("RateLimited() (-want +got):\n%s", diff)
	}
}

// TestInjected429sAreCounted: a fault's 429 counts as a 429 of its route.
func TestInjected429sAreCounted(t *testing.T) {
	f := newFixture(t)
	f.sim.SetFault(RouteCustomerListsList, Fault{FailNext: 2, FailStatus: http.StatusTooManyRequests})
	for range 3 {
		f.api(http.MethodGet, "/v5/ad_accounts/"+testAd+"/customer_lists", nil)
	}
	want := map[string]int{RouteCustomerListsList: 2}
	if diff := cmp.Diff(want, f.sim.RateLimited()); diff != "" {
		t.Errorf("RateLimited() (-want +got):\n%s", diff)
	}
}

func TestWriteBudgetOptionsChecked(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts Options
		want string
	}{
		{"negative limit", Options{WriteLimit: -1}, "WriteLimit"},
		{"negative burst", Options{WriteLimit: 10, WriteBurst: -1}, "WriteBurst"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error naming %s", err, tt.want)
			}
		})
	}
}
