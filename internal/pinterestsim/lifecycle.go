package pinterestsim

import (
	"net/http"
	"slices"
)

// RouteAudiencesUpdate is PATCH .../audiences/{audience_id} (rename, or
// operation_type REMOVE).
const RouteAudiencesUpdate = "audiences.update"

// audienceRemoved is the status the simulator gives an audience removed
// with operation_type REMOVE (it stays listed, so tests can see it).
const audienceRemoved = "REMOVED"

// updateAudience serves audiences/update: a new name or description, and
// operation_type REMOVE, which removes (archives) the audience.
func (s *Server) updateAudience(w http.ResponseWriter, r *http.Request, c *call) {
	var req struct {
		Name          *string `json:"name"`
		Description   *string `json:"description"`
		OperationType string  `json:"operation_type"`
	}
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

// lifecycleControl adds the control route DELETE
// /_sim/ad_accounts/{ad_account_id}/customer_lists/{customer_list_id}
// (DeleteCustomerList; 204, or 404 for a list that does not exist).
func (s *Server) lifecycleControl(mux *http.ServeMux) {
	mux.HandleFunc("DELETE /_sim/ad_accounts/{ad_account_id}/customer_lists/{customer_list_id}", func(w http.ResponseWriter, r *http.Request) {
		if !s.DeleteCustomerList(r.PathValue("ad_account_id"), r.PathValue("customer_list_id")) {
			writeError(w, http.StatusNotFound, 404, "Customer list not found.")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
