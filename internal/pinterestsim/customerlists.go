package pinterestsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// customerListJSON is Pinterest's CustomerList response object.
type customerListJSON struct {
	ID                     string         `json:"id"`
	AdAccountID            string         `json:"ad_account_id"`
	Name                   string         `json:"name"`
	CreatedTime            int64          `json:"created_time"`
	UpdatedTime            int64          `json:"updated_time"`
	NumBatches             int64          `json:"num_batches"`
	NumUploadedUserRecords int64          `json:"num_uploaded_user_records"`
	NumRemovedUserRecords  int64          `json:"num_removed_user_records"`
	Status                 string         `json:"status"`
	Type                   string         `json:"type"`
	Exceptions             map[string]any `json:"exceptions"`
}

func (l *customerList) json(adAccountID string) customerListJSON {
	return customerListJSON{
		ID:                     formatID(l.id),
		AdAccountID:            adAccountID,
		Name:                   l.name,
		CreatedTime:            l.created.Unix(),
		UpdatedTime:            l.updated.Unix(),
		NumBatches:             l.batches,
		NumUploadedUserRecords: l.uploaded,
		NumRemovedUserRecords:  l.removed,
		Status:                 status(len(l.members)),
		Type:                   "customerlist",
		Exceptions:             map[string]any{},
	}
}

// splitRecords splits Pinterest's comma-separated records string, dropping
// empty entries (such as after a trailing comma) and surrounding spaces.
func splitRecords(records string) []string {
	parts := strings.Split(records, ",")
	out := parts[:0]
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// records splits a request's records, answering 400 and returning false when
// there are more than the simulator accepts in one request.
func (s *Server) records(w http.ResponseWriter, raw string) ([]string, bool) {
	records := splitRecords(raw)
	if len(records) > s.opts.MaxRecordsPerRequest {
		writeError(w, http.StatusBadRequest, 1,
			fmt.Sprintf("Too many records in one request: %d (at most %d).", len(records), s.opts.MaxRecordsPerRequest))
		return nil, false
	}
	return records, true
}

// withAccount runs fn on the ad account named in the path with the store
// locked, or answers 404 when there is no such ad account.
func (s *Server) withAccount(w http.ResponseWriter, c *call, fn func(acct *adAccount)) {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	acct, ok := s.store.accounts[c.params["ad_account_id"]]
	if !ok {
		writeError(w, http.StatusNotFound, 2, "AdAccount not found.")
		return
	}
	fn(acct)
}

// withList runs fn on the customer list named in the path with the store
// locked, or answers 404 when the ad account or list does not exist.
func (s *Server) withList(w http.ResponseWriter, c *call, fn func(l *customerList)) {
	s.withAccount(w, c, func(acct *adAccount) {
		l, ok := acct.listByID[c.params["customer_list_id"]]
		if !ok {
			writeError(w, http.StatusNotFound, 404, "Customer list not found.")
			return
		}
		fn(l)
	})
}

// decodeBody decodes the (validated) JSON body, answering 400 when it cannot.
func decodeBody(w http.ResponseWriter, c *call, v any) bool {
	if err := json.Unmarshal(c.body, v); err != nil {
		writeError(w, http.StatusBadRequest, 1, "Invalid JSON body.")
		return false
	}
	return true
}

func (s *Server) createCustomerList(w http.ResponseWriter, r *http.Request, c *call) {
	var req struct {
		Name     string `json:"name"`
		Records  string `json:"records"`
		ListType string `json:"list_type"`
	}
	if !decodeBody(w, c, &req) {
		return
	}
	if req.ListType == "" {
		req.ListType = "EMAIL"
	}
	records, ok := s.records(w, req.Records)
	if !ok {
		return
	}
	now := s.opts.Clock()
	s.withAccount(w, c, func(acct *adAccount) {
		l := &customerList{
			id:       s.store.newID(),
			name:     req.Name,
			listType: req.ListType,
			members:  make(map[string]struct{}, len(records)),
			created:  now,
			updated:  now,
			batches:  1,
			uploaded: int64(len(records)),
		}
		for _, rec := range records {
			l.members[rec] = struct{}{}
		}
		acct.lists = append(acct.lists, l)
		acct.listByID[formatID(l.id)] = l
		writeJSON(w, http.StatusOK, l.json(c.params["ad_account_id"]))
	})
}

func (s *Server) getCustomerList(w http.ResponseWriter, r *http.Request, c *call) {
	s.withList(w, c, func(l *customerList) {
		writeJSON(w, http.StatusOK, l.json(c.params["ad_account_id"]))
	})
}

func (s *Server) updateCustomerList(w http.ResponseWriter, r *http.Request, c *call) {
	var req struct {
		OperationType string `json:"operation_type"`
		Records       string `json:"records"`
	}
	if !decodeBody(w, c, &req) {
		return
	}
	if req.OperationType != "ADD" && req.OperationType != "REMOVE" { // validation admits only these
		writeError(w, http.StatusBadRequest, 1, "Invalid operation_type.")
		return
	}
	records, ok := s.records(w, req.Records)
	if !ok {
		return
	}
	now := s.opts.Clock()
	s.withList(w, c, func(l *customerList) {
		// Pinterest's counters count records sent, not records changed.
		if req.OperationType == "ADD" {
			for _, rec := range records {
				l.members[rec] = struct{}{}
			}
			l.uploaded += int64(len(records))
		} else {
			for _, rec := range records {
				delete(l.members, rec)
			}
			l.removed += int64(len(records))
		}
		l.batches++
		l.updated = now
		writeJSON(w, http.StatusOK, l.json(c.params["ad_account_id"]))
	})
}

func (s *Server) listCustomerLists(w http.ResponseWriter, r *http.Request, c *call) {
	q, ok := parsePageQuery(w, r)
	if !ok {
		return
	}
	s.withAccount(w, c, func(acct *adAccount) {
		items, bookmark := paginate(acct.lists, func(l *customerList) uint64 { return l.id }, q)
		out := make([]customerListJSON, len(items))
		for i, l := range items {
			out[i] = l.json(c.params["ad_account_id"])
		}
		writeJSON(w, http.StatusOK, page[customerListJSON]{Items: out, Bookmark: bookmark})
	})
}
