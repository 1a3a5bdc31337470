package pinterestsim

import (
	"maps"
	"net/http"
	"reflect"
	"slices"
)

// RouteAudiencesUpdate is PATCH .../audiences/{audience_id} (rename, point
// at another customer list, or operation_type REMOVE).
const RouteAudiencesUpdate = "audiences.update"

// audienceRemoved is the status the simulator gives an audience removed
// with operation_type REMOVE (it stays listed, so tests can see it).
const audienceRemoved = "REMOVED"

// audienceUpdate is the part of AudienceUpdateRequest the simulator acts on.
type audienceUpdate struct {
	Name          *string        `json:"name"`
	Description   *string        `json:"description"`
	OperationType string         `json:"operation_type"`
	Rule          map[string]any `json:"rule"`
}

// updateAudience serves audiences/update: a new name or description, a new
// rule (rule.customer_list_id: the audience then targets that list of the
// ad account), and operation_type REMOVE, which removes (archives) the
// audience. A request is applied whole or not at all.
func (s *Server) updateAudience(w http.ResponseWriter, r *http.Request, c *call) {
	var req audienceUpdate
	if !decodeBody(w, c, &req) {
		return
	}
	now := s.opts.Clock()
	s.withAccount(w, c, func(acct *adAccount) {
		a, ok := acct.audByID[c.params["audience_id"]]
		if !ok || a.removed {
			writeError(w, http.StatusNotFound, 404, "Audience not found.")
			return
		}
		if req.Rule != nil {
			listID, msg := s.checkRule(acct, a, req.Rule)
			if msg != "" {
				writeError(w, http.StatusBadRequest, 1, msg)
				return
			}
			a.rule, a.listID = maps.Clone(req.Rule), listID
		}
		if req.Name != nil {
			a.name = *req.Name
		}
		if req.Description != nil {
			a.description = *req.Description
		}
		if req.OperationType == "REMOVE" {
			a.removed = true
		}
		a.updated = now
		writeJSON(w, http.StatusOK, a.json(c.params["ad_account_id"], acct))
	})
}

// checkRule checks a new rule for the CUSTOMER_LIST audience a: its
// customer_list_id must name a list of acct, and a change is refused while
// the simulator refuses rule changes. It returns the list's ID, or the
// message of the 400 to answer with.
func (s *Server) checkRule(acct *adAccount, a *audience, rule map[string]any) (string, string) {
	listID, _ := rule["customer_list_id"].(string)
	if listID == "" {
		return "", "rule.customer_list_id is required for a CUSTOMER_LIST audience."
	}
	if _, ok := acct.listByID[listID]; !ok {
		return "", "rule.customer_list_id: customer list " + listID + " not found in this ad account."
	}
	if s.refuseRules.Load() && !reflect.DeepEqual(rule, a.rule) {
		return "", "The rule of an existing audience cannot be changed (rule.customer_list_id)."
	}
	return listID, ""
}

// SetRefuseAudienceRuleChanges sets whether audiences.update refuses (400)
// a PATCH that changes an audience's rule (Options.RefuseAudienceRuleChanges).
func (s *Server) SetRefuseAudienceRuleChanges(refuse bool) {
	s.refuseRules.Store(refuse)
}

// DeleteCustomerList deletes a customer list, as an advertiser can in Ads
// Manager (API v5 has no such call): later calls on it answer 404 and
// listings leave it out. It reports whether the list existed.
func (s *Server) DeleteCustomerList(adAccountID, listID string) bool {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	acct, ok := s.store.accounts[adAccountID]
	if !ok {
		return false
	}
	l, ok := acct.listByID[listID]
	if !ok {
		return false
	}
	delete(acct.listByID, listID)
	acct.lists = slices.DeleteFunc(acct.lists, func(x *customerList) bool { return x == l })
	return true
}

// lifecycleControl adds the control routes DELETE
// /_sim/ad_accounts/{ad_account_id}/customer_lists/{customer_list_id}
// (DeleteCustomerList; 204, or 404 for a list that does not exist) and POST
// /_sim/audience_rules ({"refuse": bool}: SetRefuseAudienceRuleChanges; 204).
func (s *Server) lifecycleControl(mux *http.ServeMux) {
	mux.HandleFunc("POST /_sim/audience_rules", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Refuse *bool `json:"refuse"`
		}
		if !decodeControl(w, r, &req) {
			return
		}
		if req.Refuse == nil {
			writeError(w, http.StatusBadRequest, 1, `"refuse" (true or false) is required.`)
			return
		}
		s.SetRefuseAudienceRuleChanges(*req.Refuse)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /_sim/ad_accounts/{ad_account_id}/customer_lists/{customer_list_id}", func(w http.ResponseWriter, r *http.Request) {
		if !s.DeleteCustomerList(r.PathValue("ad_account_id"), r.PathValue("customer_list_id")) {
			writeError(w, http.StatusNotFound, 404, "Customer list not found.")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
