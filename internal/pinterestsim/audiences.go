package pinterestsim

import (
	"maps"
	"net/http"
)

// audienceJSON is Pinterest's Audience response object.
type audienceJSON struct {
	ID               string         `json:"id"`
	AdAccountID      string         `json:"ad_account_id"`
	Name             string         `json:"name"`
	AudienceType     string         `json:"audience_type"`
	Description      *string        `json:"description"`
	Rule             map[string]any `json:"rule"`
	Size             int            `json:"size"`
	Status           string         `json:"status"`
	Type             string         `json:"type"`
	CreatedTimestamp int64          `json:"created_timestamp"`
	UpdatedTimestamp int64          `json:"updated_timestamp"`
}

func (a *audience) json(adAccountID string, acct *adAccount) audienceJSON {
	var desc *string
	if a.description != "" {
		d := a.description
		desc = &d
	}
	size := acct.audienceSize(a)
	st := status(size)
	if a.removed {
		st = audienceRemoved
	}
	return audienceJSON{
		ID:               formatID(a.id),
		AdAccountID:      adAccountID,
		Name:             a.name,
		AudienceType:     a.audienceType,
		Description:      desc,
		Rule:             maps.Clone(a.rule),
		Size:             size,
		Status:           st,
		Type:             "audience",
		CreatedTimestamp: a.created.Unix(),
		UpdatedTimestamp: a.updated.Unix(),
	}
}

func (s *Server) createAudience(w http.ResponseWriter, r *http.Request, c *call) {
	var req struct {
		Name         string         `json:"name"`
		AudienceType string         `json:"audience_type"`
		Description  string         `json:"description"`
		Rule         map[string]any `json:"rule"`
	}
	if !decodeBody(w, c, &req) {
		return
	}
	if req.AudienceType != "CUSTOMER_LIST" {
		writeError(w, http.StatusBadRequest, 1, "The simulator supports only CUSTOMER_LIST audiences.")
		return
	}
	listID, _ := req.Rule["customer_list_id"].(string)
	if listID == "" {
		writeError(w, http.StatusBadRequest, 1, "rule.customer_list_id is required for a CUSTOMER_LIST audience.")
		return
	}
	now := s.opts.Clock()
	s.withAccount(w, c, func(acct *adAccount) {
		if _, ok := acct.listByID[listID]; !ok {
			writeError(w, http.StatusBadRequest, 1, "Customer list not found in this ad account.")
			return
		}
		a := &audience{
			id:           s.store.newID(),
			name:         req.Name,
			audienceType: req.AudienceType,
			description:  req.Description,
			rule:         req.Rule,
			listID:       listID,
			created:      now,
			updated:      now,
		}
		acct.audiences = append(acct.audiences, a)
		acct.audByID[formatID(a.id)] = a
		writeJSON(w, http.StatusOK, a.json(c.params["ad_account_id"], acct))
	})
}

func (s *Server) getAudience(w http.ResponseWriter, r *http.Request, c *call) {
	s.withAccount(w, c, func(acct *adAccount) {
		a, ok := acct.audByID[c.params["audience_id"]]
		if !ok {
			writeError(w, http.StatusNotFound, 404, "Audience not found.")
			return
		}
		writeJSON(w, http.StatusOK, a.json(c.params["ad_account_id"], acct))
	})
}

func (s *Server) listAudiences(w http.ResponseWriter, r *http.Request, c *call) {
	q, ok := parsePageQuery(w, r)
	if !ok {
		return
	}
	s.withAccount(w, c, func(acct *adAccount) {
		var all []*audience
		// Audiences shared with this account (RECEIVED) are not simulated.
		if r.URL.Query().Get("ownership_type") != "RECEIVED" {
			all = acct.audiences
		}
		items, bookmark := paginate(all, func(a *audience) uint64 { return a.id }, q)
		out := make([]audienceJSON, len(items))
		for i, a := range items {
			out[i] = a.json(c.params["ad_account_id"], acct)
		}
		writeJSON(w, http.StatusOK, page[audienceJSON]{Items: out, Bookmark: bookmark})
	})
}
