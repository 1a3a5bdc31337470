package pinterestsim

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestDeleteListAndRemoveAudience: the control route deletes a list (later
// calls on it answer 404, listings leave it out); PATCH on an audience
// renames it and, with operation_type REMOVE, removes it.
func TestDeleteListAndRemoveAudience(t *testing.T) {
	f := newFixture(t)
	l := f.createList("aud-1 EMAIL", "a,b")
	resp := f.api(http.MethodPost, "/v5/ad_accounts/"+testAd+"/audiences", map[string]any{
		"name": "aud-1", "audience_type": "CUSTOMER_LIST", "rule": map[string]string{"customer_list_id": l.ID},
	})
	var aud audienceJSON
	resp.decode(t, &aud)

	audPath := "/v5/ad_accounts/" + testAd + "/audiences/" + aud.ID
	tests := []struct {
		name   string
		method string
		path   string
		body   any
		status int
	}{
		{"rename", http.MethodPatch, audPath, map[string]string{"name": "renamed"}, 200},
		{"remove", http.MethodPatch, audPath, map[string]string{"name": "retired", "operation_type": "REMOVE"}, 200},
		{"remove again", http.MethodPatch, audPath, map[string]string{"operation_type": "REMOVE"}, 404},
		{"bad operation", http.MethodPatch, audPath, map[string]string{"operation_type": "DELETE"}, 400},
	}
	for _, tc := range tests {
		if got := f.api(tc.method, tc.path, tc.body).status; got != tc.status {
			t.Fatalf("%s: status %d, want %d", tc.name, got, tc.status)
		}
	}
	st := f.sim.State().AdAccounts[testAd]
	if len(st.Audiences) != 1 || st.Audiences[0].Name != "retired" || st.Audiences[0].Status != audienceRemoved {
		t.Fatalf("audience after REMOVE: %+v", st.Audiences)
	}

	if got := f.control(http.MethodDelete, "/_sim/ad_accounts/"+testAd+"/customer_lists/"+l.ID, nil).status; got != http.StatusNoContent {
		t.Fatalf("DELETE list: %d", got)
	}
	if got := f.control(http.MethodDelete, "/_sim/ad_accounts/"+testAd+"/customer_lists/"+l.ID, nil).status; got != http.StatusNotFound {
		t.Fatalf("DELETE list again: %d, want 404", got)
	}
	if got := f.api(http.MethodPatch, listPath(l.ID), map[string]string{"operation_type": "ADD", "records": "c"}).status; got != http.StatusNotFound {
		t.Fatalf("update of a deleted list: %d, want 404", got)
	}
	if n := len(f.sim.State().AdAccounts[testAd].CustomerLists); n != 0 {
		t.Fatalf("%d lists listed after the delete", n)
	}
}

// TestPointAudienceAtAnotherList: PATCH with rule.customer_list_id points
// a CUSTOMER_LIST audience at another list of the account (its size
// follows the list); a list that does not exist, or none, is a 400 naming
// rule.customer_list_id and changes nothing.
func TestPointAudienceAtAnotherList(t *testing.T) {
	f := newFixture(t)
	old := f.createList("aud-1 EMAIL", "a,b")
	aud := f.createAudience("aud-1", old.ID)
	repl := f.createList("aud-1 EMAIL again", "a,b,c")
	audPath := "/v5/ad_accounts/" + testAd + "/audiences/" + aud.ID

	tests := []struct {
		name string
		body map[string]any
		msg  string // part of the 400's message; "" for a 200
	}{
		{"unknown list", map[string]any{"operation_type": "UPDATE", "rule": map[string]string{"customer_list_id": "999999"}}, "rule.customer_list_id"},
		{"no list", map[string]any{"operation_type": "UPDATE", "rule": map[string]string{}}, "rule.customer_list_id"},
		{"not digits", map[string]any{"operation_type": "UPDATE", "rule": map[string]string{"customer_list_id": "abc"}}, "customer_list_id"},
		{"another list", map[string]any{"operation_type": "UPDATE", "rule": map[string]string{"customer_list_id": repl.ID}}, ""},
	}
	for _, tc := range tests {
		resp := f.api(http.MethodPatch, audPath, tc.body)
		if tc.msg == "" {
			if resp.status != http.StatusOK {
				t.Fatalf("%s: status %d %s, want 200", tc.name, resp.status, resp.body)
			}
			continue
		}
		if e := resp.apiErr(t); resp.status != http.StatusBadRequest || !strings.Contains(e.Message, tc.msg) {
			t.Fatalf("%s: %d %+v, want a 400 naming %s", tc.name, resp.status, e, tc.msg)
		}
		if got := f.audienceTarget(aud.ID); got != old.ID {
			t.Fatalf("%s: the refused PATCH changed the audience's list to %s", tc.name, got)
		}
	}
	var got audienceJSON
	f.api(http.MethodGet, audPath, nil).decode(t, &got)
	if got.Rule["customer_list_id"] != repl.ID || got.Size != 3 || got.Name != "aud-1" {
		t.Fatalf("audience after the PATCH = %+v, want it targeting %s (3 members) under its name", got, repl.ID)
	}
}

// TestRefuseAudienceRuleChanges: while the simulator refuses rule changes
// (the option, the method or POST /_sim/audience_rules) a PATCH that
// changes the rule is a 400 and changes nothing; one that keeps the rule,
// and one without a rule, still pass.
func TestRefuseAudienceRuleChanges(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.RefuseAudienceRuleChanges = true })
	old := f.createList("aud-1 EMAIL", "a")
	aud := f.createAudience("aud-1", old.ID)
	repl := f.createList("aud-1 EMAIL again", "b")
	audPath := "/v5/ad_accounts/" + testAd + "/audiences/" + aud.ID
	point := func(listID string) response {
		return f.api(http.MethodPatch, audPath, map[string]any{
			"name": "pointed at " + listID, "operation_type": "UPDATE", "rule": map[string]string{"customer_list_id": listID},
		})
	}
	refused := func(when string) {
		t.Helper()
		before := f.sim.State().AdAccounts[testAd].Audiences[0]
		resp := point(repl.ID)
		if e := resp.apiErr(t); resp.status != http.StatusBadRequest || !strings.Contains(e.Message, "rule.customer_list_id") {
			t.Fatalf("%s: %d %+v, want a 400 naming rule.customer_list_id", when, resp.status, e)
		}
		after := f.sim.State().AdAccounts[testAd].Audiences[0]
		if after.Rule["customer_list_id"] != old.ID || after.Name != before.Name {
			t.Fatalf("%s: the refused PATCH changed the audience: %+v", when, after)
		}
	}
	refused("Options.RefuseAudienceRuleChanges")
	if resp := point(old.ID); resp.status != http.StatusOK {
		t.Fatalf("a PATCH keeping the rule: %d %s, want 200", resp.status, resp.body)
	}
	if resp := f.api(http.MethodPatch, audPath, map[string]string{"description": "d"}); resp.status != http.StatusOK {
		t.Fatalf("a PATCH without a rule: %d %s, want 200", resp.status, resp.body)
	}

	f.sim.SetRefuseAudienceRuleChanges(false)
	if resp := point(repl.ID); resp.status != http.StatusOK || f.audienceTarget(aud.ID) != repl.ID {
		t.Fatalf("after SetRefuseAudienceRuleChanges(false): %d %s", resp.status, resp.body)
	}

	for _, tc := range []struct {
		body   string
		status int
	}{
		{`{"refuse": true}`, http.StatusNoContent},
		{`{}`, http.StatusBadRequest},
		{`{"refuse": "yes"}`, http.StatusBadRequest},
		{`{"refuse": true, "other": 1}`, http.StatusBadRequest},
	} {
		if got := f.control(http.MethodPost, "/_sim/audience_rules", json.RawMessage(tc.body)).status; got != tc.status {
			t.Fatalf("POST /_sim/audience_rules %s: %d, want %d", tc.body, got, tc.status)
		}
	}
	old, repl = repl, old // the audience targets repl now
	refused("POST /_sim/audience_rules")
	if got := f.control(http.MethodPost, "/_sim/audience_rules", json.RawMessage(`{"refuse": false}`)).status; got != http.StatusNoContent {
		t.Fatalf("POST /_sim/audience_rules false: %d", got)
	}
	if resp := point(repl.ID); resp.status != http.StatusOK || f.audienceTarget(aud.ID) != repl.ID {
		t.Fatalf("after POST /_sim/audience_rules false: %d %s", resp.status, resp.body)
	}
}

// createAudience creates a CUSTOMER_LIST audience for list listID.
func (f *fixture) createAudience(name, listID string) audienceJSON {
	f.t.Helper()
	resp := f.api(http.MethodPost, "/v5/ad_accounts/"+testAd+"/audiences", map[string]any{
		"name": name, "audience_type": "CUSTOMER_LIST", "rule": map[string]string{"customer_list_id": listID},
	})
	var aud audienceJSON
	if resp.status != http.StatusOK {
		f.t.Fatalf("create audience: %d %s", resp.status, resp.body)
	}
	resp.decode(f.t, &aud)
	return aud
}

// audienceTarget is the customer list the audience id targets, from the
// simulator's state.
func (f *fixture) audienceTarget(id string) string {
	f.t.Helper()
	for _, a := range f.sim.State().AdAccounts[testAd].Audiences {
		if a.ID == id {
			s, _ := a.Rule["customer_list_id"].(string)
			return s
		}
	}
	f.t.Fatalf("no audience %s in the state", id)
	return ""
}
