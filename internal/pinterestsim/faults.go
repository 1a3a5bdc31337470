package pinterestsim

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Fault is what the simulator does wrong on a route. A request draws once:
// with probability Rate429 it gets 429, then Rate500 → 500, then Rate503 → 503.
type Fault struct {
	Rate429, Rate500, Rate503 float64                  // probability per request, 0..1
	RetryAfter                time.Duration            // sent with 429 as Retry-After (seconds, rounded up)
	Latency                   time.Duration            // added before answering
	FailNext                  int                      // the next N calls fail (with FailStatus, default 500)
	FailStatus                int                      // status for FailNext; 0 → 500
	Match                     func(*http.Request) bool // optional: only requests it matches (e.g. one list)
}

// faultSet holds the faults by route name and the seeded random source.
type faultSet struct {
	mu      sync.Mutex
	rnd     *rand.Rand
	byRoute map[string]*Fault // copies, FailNext counting down
}

func newFaultSet(rnd *rand.Rand) *faultSet {
	return &faultSet{rnd: rnd, byRoute: map[string]*Fault{}}
}

// SetFault sets the fault of a route (see the Route* names), replacing any it
// had. RouteAll, "*", applies to every route without a fault of its own: a
// route's own fault, when its Match accepts the request, replaces the "*"
// one entirely (also once its FailNext is used up).
func (s *Server) SetFault(route string, f Fault) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.byRoute[route] = &f
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	clear(s.faults.byRoute)
}

// outcome is what a fault decided for one request.
type outcome struct {
	latency    time.Duration
	status     int // 0: answer normally
	retryAfter time.Duration
}

// decide picks the fault for a request (the route's own, else "*", each only
// if its Match accepts the request) and draws its outcome.
func (fs *faultSet) decide(r *http.Request, route string) outcome {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var f *Fault
	for _, name := range []string{route, RouteAll} {
		if cand := fs.byRoute[name]; cand != nil && (cand.Match == nil || cand.Match(r)) {
			f = cand
			break
		}
	}
	if f == nil {
		return outcome{}
	}
	out := outcome{latency: f.Latency, retryAfter: f.RetryAfter}
	if f.FailNext > 0 {
		f.FailNext--
		out.status = f.FailStatus
		if out.status == 0 {
			out.status = http.StatusInternalServerError
		}
		return out
	}
	if f.Rate429+f.Rate500+f.Rate503 <= 0 {
		return out
	}
	switch x := fs.rnd.Float64(); {
	case x < f.Rate429:
		out.status = http.StatusTooManyRequests
	case x < f.Rate429+f.Rate500:
		out.status = http.StatusInternalServerError
	case x < f.Rate429+f.Rate500+f.Rate503:
		out.status = http.StatusServiceUnavailable
	}
	return out
}

// injectFault applies the route's fault: waits out the latency (or until the
// client gives up) and answers with the failure status when one was drawn.
// It returns true when the request has been answered.
func (s *Server) injectFault(w http.ResponseWriter, r *http.Request, route string) bool {
	out := s.faults.decide(r, route)
	if out.latency > 0 {
		t := time.NewTimer(out.latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			writeError(w, http.StatusServiceUnavailable, 503, "Request cancelled.")
			return true
		}
	}
	if out.status == 0 {
		return false
	}
	if out.status == http.StatusTooManyRequests && out.retryAfter > 0 {
		secs := (out.retryAfter + time.Second - 1) / time.Second
		w.Header().Set("Retry-After", strconv.FormatInt(int64(secs), 10))
	}
	code, msg := faultBody(out.status)
	if route == RouteOAuthToken {
		writeJSON(w, out.status, oauthError{Code: code, Message: msg, Error: "temporarily_unavailable", ErrorDescription: msg})
		return true
	}
	writeError(w, out.status, code, msg)
	return true
}

// faultBody is the Pinterest error code and message for an injected status.
func faultBody(status int) (int, string) {
	switch status {
	case http.StatusTooManyRequests:
		return rateLimitCode, rateLimitMessage
	case http.StatusInternalServerError:
		return status, "Internal server error."
	case http.StatusServiceUnavailable:
		return status, "Service unavailable."
	default:
		return status, fmt.Sprintf("Injected failure (HTTP %d).", status)
	}
}
