package pinterestsim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// control sends a request to the /_sim/ API.
func (f *fixture) control(method, path string, body any) response {
	f.t.Helper()
	var buf bytes.Buffer
	if body != nil {
		if err := json.NewEncoder(&buf).Encode(body); err != nil {
			f.t.Fatalf("encode: %v", err)
		}
	}
	req, err := http.NewRequest(method, f.srv.URL+path, &buf)
	if err != nil {
		f.t.Fatalf("new request: %v", err)
	}
	return f.send(req)
}

func TestInspectionRoutes(t *testing.T) {
	f := newFixture(t)
	l := f.createList("aud-1 EMAIL", "c,a,b")
	f.api(http.MethodPatch, listPath(l.ID), map[string]string{"operation_type": "REMOVE", "records": "b,zz"})
	resp := f.api(http.MethodPost, "/v5/ad_accounts/"+testAd+"/audiences", map[string]any{
		"name": "aud-1", "audience_type": "CUSTOMER_LIST", "rule": map[string]string{"customer_list_id": l.ID},
	})
	var aud audienceJSON
	resp.decode(t, &aud)

	// The JSON shape is a contract (ARCHITECTURE.md), so check it as JSON.
	var state map[string]map[string]map[string][]map[string]any
	f.control(http.MethodGet, "/_sim/state", nil).decode(t, &state)
	acct := state["ad_accounts"][testAd]
	if len(acct["customer_lists"]) != 1 || len(acct["audiences"]) != 1 {
		t.Fatalf("state = %v", state)
	}
	list := acct["customer_lists"][0]
	wantList := map[string]any{
		"id": l.ID, "name": "aud-1 EMAIL", "list_type": "EMAIL", "records": []any{"a", "c"},
		"num_batches": 2.0, "num_uploaded_user_records": 3.0, "num_removed_user_records": 2.0,
		"status": "TOO_SMALL", "created_time": float64(f.clock.Now().Unix()), "updated_time": float64(f.clock.Now().Unix()),
	}
	if diff := cmp.Diff(wantList, list); diff != "" {
		t.Errorf("state customer list (-want +got):\n%s", diff)
	}
	a := acct["audiences"][0]
	if a["id"] != aud.ID || a["name"] != "aud-1" || cmp.Diff(map[string]any{"customer_list_id": l.ID}, a["rule"]) != "" {
		t.Errorf("state audience = %v", a)
	}

	var recs struct {
		Records []string `json:"records"`
	}
	f.control(http.MethodGet, "/_sim/ad_accounts/"+testAd+"/customer_lists/"+l.ID+"/records", nil).decode(t, &recs)
	if diff := cmp.Diff([]string{"a", "c"}, recs.Records); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(recs.Records, f.sim.Records(testAd, l.ID)); diff != "" {
		t.Errorf("Records() differs from the route:\n%s", diff)
	}

	notFound := []string{
		"/_sim/ad_accounts/" + testAd + "/customer_lists/99/records",
		"/_sim/ad_accounts/1/customer_lists/" + l.ID + "/records",
		"/_sim/nope",
	}
	for _, path := range notFound {
		if resp := f.control(http.MethodGet, path, nil); resp.status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, resp.status)
		}
	}

	var calls map[string]int
	f.control(http.MethodGet, "/_sim/calls", nil).decode(t, &calls)
	want := map[string]int{RouteCustomerListsCreate: 1, RouteCustomerListsUpdate: 1, RouteAudiencesCreate: 1}
	if diff := cmp.Diff(want, calls); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

func TestEmptyStateHasEmptyArrays(t *testing.T) {
	f := newFixture(t)
	resp := f.control(http.MethodGet, "/_sim/state", nil)
	want := `{"ad_accounts":{"` + testAd + `":{"customer_lists":[],"audiences":[]}}}` + "\n"
	if string(resp.body) != want {
		t.Errorf("state = %s, want %s", resp.body, want)
	}
}

func TestControlFaultsOverHTTP(t *testing.T) {
	f := newFixture(t)
	l := f.createList("list", "a")

	bad := []struct {
		name string
		spec any
	}{
		{name: "unknown route", spec: FaultSpec{Route: "customer_lists.delete", Rate500: 1}},
		{name: "rate over 1", spec: FaultSpec{Rate500: 1.5}},
		{name: "rates add up over 1", spec: FaultSpec{Rate500: 0.6, Rate503: 0.6}},
		{name: "negative fail_next", spec: FaultSpec{FailNext: -1}},
		{name: "fail_status not an error", spec: FaultSpec{FailNext: 1, FailStatus: 200}},
		{name: "unknown field", spec: map[string]any{"rate_502": 1}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if resp := f.control(http.MethodPost, "/_sim/faults", tt.spec); resp.status != http.StatusBadRequest {
				t.Errorf("status = %d, want 400", resp.status)
			}
		})
	}

	spec := FaultSpec{Route: RouteCustomerListsGet, FailNext: 1, FailStatus: 429, RetryAfterSeconds: 2, MatchPath: "/customer_lists/" + l.ID}
	if resp := f.control(http.MethodPost, "/_sim/faults", spec); resp.status != http.StatusNoContent {
		t.Fatalf("set fault: %d %s", resp.status, resp.body)
	}
	resp := f.api(http.MethodGet, listPath(l.ID), nil)
	if resp.status != http.StatusTooManyRequests || resp.header.Get("Retry-After") != "2" {
		t.Errorf("after POST /_sim/faults: %d Retry-After %q, want 429 and 2", resp.status, resp.header.Get("Retry-After"))
	}
	if resp := f.api(http.MethodGet, listPath(l.ID), nil); resp.status != http.StatusOK {
		t.Errorf("fail_next used up: %d, want 200", resp.status)
	}

	f.control(http.MethodPost, "/_sim/faults", FaultSpec{Rate503: 1})
	if resp := f.api(http.MethodGet, "/v5/ad_accounts/"+testAd+"/customer_lists", nil); resp.status != http.StatusServiceUnavailable {
		t.Errorf("route defaults to *: %d, want 503", resp.status)
	}
	if resp := f.control(http.MethodDelete, "/_sim/faults", nil); resp.status != http.StatusNoContent {
		t.Errorf("DELETE /_sim/faults: %d", resp.status)
	}
	if resp := f.api(http.MethodGet, listPath(l.ID), nil); resp.status != http.StatusOK {
		t.Errorf("after DELETE /_sim/faults: %d, want 200", resp.status)
	}
}

func TestControlTokensAndAccounts(t *testing.T) {
	f := newFixture(t)
	lists := "/v5/ad_accounts/" + testAd + "/customer_lists"

	if resp := f.control(http.MethodPost, "/_sim/expire_tokens", nil); resp.status != http.StatusNoContent {
		t.Fatalf("expire tokens: %d", resp.status)
	}
	if resp := f.api(http.MethodGet, lists, nil); resp.status != http.StatusUnauthorized {
		t.Errorf("after /_sim/expire_tokens: %d, want 401", resp.status)
	}

	var pair struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	f.control(http.MethodPost, "/_sim/tokens", map[string]any{"client_id": testClient}).decode(t, &pair)
	if resp := f.apiWith(pair.AccessToken, http.MethodGet, lists, nil); resp.status != http.StatusOK {
		t.Errorf("token from /_sim/tokens: %d, want 200", resp.status)
	}
	if resp := f.refresh(pair.RefreshToken); resp.status != http.StatusOK {
		t.Errorf("refresh token from /_sim/tokens: %d, want 200", resp.status)
	}

	if resp := f.control(http.MethodPost, "/_sim/ad_accounts", map[string]string{"id": "77"}); resp.status != http.StatusNoContent {
		t.Fatalf("add ad account: %d", resp.status)
	}
	if resp := f.apiWith(pair.AccessToken, http.MethodGet, "/v5/ad_accounts/77/customer_lists", nil); resp.status != http.StatusOK {
		t.Errorf("new ad account: %d, want 200", resp.status)
	}
	if resp := f.control(http.MethodPost, "/_sim/ad_accounts", map[string]string{"id": "x7"}); resp.status != http.StatusBadRequest {
		t.Errorf("bad ad account id: %d, want 400", resp.status)
	}
}
