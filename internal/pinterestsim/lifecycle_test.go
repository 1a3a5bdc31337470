package pinterestsim

import (
	"net/http"
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
