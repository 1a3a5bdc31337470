package pinterestsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// FaultSpec is the JSON body of POST /_sim/faults: a Fault for one route
// ("*" or empty for all), settable by a test that drives a separate
// `pinlist sim` process.
type FaultSpec struct {
	Route             string  `json:"route"`
	Rate429           float64 `json:"rate_429"`
	Rate500           float64 `json:"rate_500"`
	Rate503           float64 `json:"rate_503"`
	RetryAfterSeconds float64 `json:"retry_after_seconds"`
	LatencyMS         int64   `json:"latency_ms"`
	FailNext          int     `json:"fail_next"`
	FailStatus        int     `json:"fail_status"`
	// MatchPath, when set, limits the fault to requests whose URL path
	// contains it (e.g. "/customer_lists/549755813888").
	MatchPath string `json:"match_path"`
}

// routeNames are the names SetFault and POST /_sim/faults know.
var routeNames = []string{
	RouteCustomerListsCreate, RouteCustomerListsList, RouteCustomerListsGet, RouteCustomerListsUpdate,
	RouteAudiencesCreate, RouteAudiencesList, RouteAudiencesGet, RouteOAuthToken, RouteAll,
}

// fault checks the spec and turns it into a route name and Fault.
func (f FaultSpec) fault() (string, Fault, error) {
	route := f.Route
	if route == "" {
		route = RouteAll
	}
	if !slices.Contains(routeNames, route) {
		return "", Fault{}, fmt.Errorf("unknown route %q (known: %s)", route, strings.Join(routeNames, ", "))
	}
	for _, rate := range []float64{f.Rate429, f.Rate500, f.Rate503} {
		if rate < 0 || rate > 1 {
			return "", Fault{}, fmt.Errorf("rates must be between 0 and 1")
		}
	}
	if f.Rate429+f.Rate500+f.Rate503 > 1 {
		return "", Fault{}, fmt.Errorf("rates add up to more than 1")
	}
	if f.FailNext < 0 || f.LatencyMS < 0 || f.RetryAfterSeconds < 0 {
		return "", Fault{}, fmt.Errorf("fail_next, latency_ms and retry_after_seconds must not be negative")
	}
	if f.FailStatus != 0 && (f.FailStatus < 400 || f.FailStatus > 599) {
		return "", Fault{}, fmt.Errorf("fail_status must be a 4xx or 5xx status")
	}
	out := Fault{
		Rate429:    f.Rate429,
		Rate500:    f.Rate500,
		Rate503:    f.Rate503,
		RetryAfter: time.Duration(f.RetryAfterSeconds * float64(time.Second)),
		Latency:    time.Duration(f.LatencyMS) * time.Millisecond,
		FailNext:   f.FailNext,
		FailStatus: f.FailStatus,
	}
	if sub := f.MatchPath; sub != "" {
		out.Match = func(r *http.Request) bool { return strings.Contains(r.URL.Path, sub) }
	}
	return route, out, nil
}

// controlMux serves the inspection and control API under /_sim/.
func (s *Server) controlMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_sim/state", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.State())
	})
	mux.HandleFunc("GET /_sim/ad_accounts/{ad_account_id}/customer_lists/{customer_list_id}/records", func(w http.ResponseWriter, r *http.Request) {
		recs, ok := s.store.records(r.PathValue("ad_account_id"), r.PathValue("customer_list_id"))
		if !ok {
			writeError(w, http.StatusNotFound, 404, "Customer list not found.")
			return
		}
		writeJSON(w, http.StatusOK, struct {
			Records []string `json:"records"`
		}{recs})
	})
	mux.HandleFunc("POST /_sim/ad_accounts", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ID string `json:"id"`
		}
		if !decodeControl(w, r, &req) {
			return
		}
		if err := s.AddAdAccount(req.ID); err != nil {
			writeError(w, http.StatusBadRequest, 1, err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_sim/calls", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.callCounts())
	})
	mux.HandleFunc("POST /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		var spec FaultSpec
		if !decodeControl(w, r, &spec) {
			return
		}
		route, f, err := spec.fault()
		if err != nil {
			writeError(w, http.StatusBadRequest, 1, err.Error())
			return
		}
		s.SetFault(route, f)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_sim/expire_tokens", func(w http.ResponseWriter, r *http.Request) {
		s.ExpireAccessTokens()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_sim/tokens", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ClientID string   `json:"client_id"`
			Scopes   []string `json:"scopes"`
		}
		if !decodeControl(w, r, &req) {
			return
		}
		if req.Scopes == nil {
			req.Scopes = []string{"ads:read", "ads:write"}
		}
		access, refresh := s.IssueToken(req.ClientID, req.Scopes)
		writeJSON(w, http.StatusOK, struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
		}{access, refresh})
	})
	mux.HandleFunc("/_sim/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, 404, "Not found.")
	})
	return mux
}

func decodeControl(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, 1, "Invalid JSON body: "+err.Error())
		return false
	}
	return true
}
