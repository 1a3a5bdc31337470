package pinterestsim

import (
	"bytes"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
)

// Options configure a simulator. The zero value serves no ad account and
// accepts no OAuth app.
type Options struct {
	AdAccounts           []string          // ad account IDs that exist (digits)
	Clients              map[string]string // OAuth apps it accepts: client_id → client_secret
	Clock                func() time.Time  // nil → time.Now
	MaxRecordsPerRequest int               // 0 → 10_000; more records in one create/PATCH → 400
	AccessTokenTTL       time.Duration     // 0 → 30 days
	RefreshTokenTTL      time.Duration     // 0 → 60 days
	Logger               *slog.Logger      // nil → discard
	// Seed seeds the random source that fault rates draw from, so a run with
	// faults can be repeated; 0 → a random seed.
	Seed uint64
	// WriteLimit is the ads_write budget: write calls a minute per ad
	// account (customer list and audience creates and updates share it), a
	// token bucket answering 429 code 8 when empty. 0 → no limit;
	// PinterestWriteLimit is Pinterest's. Reads are never limited.
	WriteLimit int
	// WriteBurst is how many write calls the bucket holds: 0 → a tenth of
	// WriteLimit, at least 1.
	WriteBurst int
	// RefuseAudienceRuleChanges makes audiences.update answer 400 to a
	// PATCH that changes an audience's rule (points it at another customer
	// list), as Pinterest might: tests exercise a client's fallback with
	// it. SetRefuseAudienceRuleChanges and POST /_sim/audience_rules change
	// it later.
	RefuseAudienceRuleChanges bool
}

// Defaults for the zero Options fields.
const (
	DefaultMaxRecordsPerRequest = 10_000
	DefaultAccessTokenTTL       = 30 * 24 * time.Hour
	DefaultRefreshTokenTTL      = 60 * 24 * time.Hour
)

// maxBodyBytes caps a request body; 10,000 SHA-256 records are ~650 KB.
const maxBodyBytes = 32 << 20

// Route names, as used by SetFault and Calls.
const (
	RouteCustomerListsCreate = "customer_lists.create"
	RouteCustomerListsList   = "customer_lists.list"
	RouteCustomerListsGet    = "customer_lists.get"
	RouteCustomerListsUpdate = "customer_lists.update"
	RouteAudiencesCreate     = "audiences.create"
	RouteAudiencesList       = "audiences.list"
	RouteAudiencesGet        = "audiences.get"
	RouteOAuthToken          = "oauth.token"
	RouteOAuthAuthorize      = "oauth.authorize"
	// RouteAll in SetFault applies a fault to every route.
	RouteAll = "*"
)

// Server is the simulator. It is an http.Handler serving the API under /v5/,
// the OAuth authorisation page at /oauth/ and the inspection API under /_sim/.
// It is safe for concurrent use.
type Server struct {
	opts      Options
	log       *slog.Logger
	validator *validator
	handlers  map[string]operation // by operationId
	control   *http.ServeMux

	store  *store
	tokens *tokenStore
	faults *faultSet
	budget *writeBudget // nil: no write limit
	// refuseRules: audiences.update refuses rule changes (400).
	refuseRules atomic.Bool

	mu          sync.Mutex
	calls       map[string]int
	rateLimited map[string]int // 429s answered, by route
}

// operation is one served API operation.
type operation struct {
	route  string
	handle func(w http.ResponseWriter, r *http.Request, c *call)
}

// call is what the handlers get beside the request: the path parameters and
// the body (already read and validated).
type call struct {
	params map[string]string
	body   []byte
}

// New builds a simulator.
func New(opts Options) (*Server, error) {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.MaxRecordsPerRequest <= 0 {
		opts.MaxRecordsPerRequest = DefaultMaxRecordsPerRequest
	}
	if opts.AccessTokenTTL <= 0 {
		opts.AccessTokenTTL = DefaultAccessTokenTTL
	}
	if opts.RefreshTokenTTL <= 0 {
		opts.RefreshTokenTTL = DefaultRefreshTokenTTL
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.WriteLimit < 0 {
		return nil, fmt.Errorf("WriteLimit %d: must not be negative (0 is no limit)", opts.WriteLimit)
	}
	if opts.WriteBurst < 0 {
		return nil, fmt.Errorf("WriteBurst %d: must not be negative (0 is a tenth of WriteLimit)", opts.WriteBurst)
	}
	for _, id := range opts.AdAccounts {
		if !isDigits(id) {
			return nil, fmt.Errorf("ad account ID %q: must be digits only", id)
		}
	}
	seed := opts.Seed
	if seed == 0 {
		var b [8]byte
		_, _ = crand.Read(b[:]) // never fails (crypto/rand panics instead)
		seed = binary.LittleEndian.Uint64(b[:])
	}
	v, err := newValidator()
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:        opts,
		log:         logger,
		validator:   v,
		store:       newStore(opts.AdAccounts),
		tokens:      newTokenStore(maps.Clone(opts.Clients)),
		faults:      newFaultSet(rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))),
		budget:      newWriteBudget(opts.WriteLimit, opts.WriteBurst),
		calls:       map[string]int{},
		rateLimited: map[string]int{},
	}
	s.refuseRules.Store(opts.RefuseAudienceRuleChanges)
	s.handlers = map[string]operation{
		"customer_lists/create": {RouteCustomerListsCreate, s.createCustomerList},
		"customer_lists/list":   {RouteCustomerListsList, s.listCustomerLists},
		"customer_lists/get":    {RouteCustomerListsGet, s.getCustomerList},
		"customer_lists/update": {RouteCustomerListsUpdate, s.updateCustomerList},
		"audiences/create":      {RouteAudiencesCreate, s.createAudience},
		"audiences/list":        {RouteAudiencesList, s.listAudiences},
		"audiences/get":         {RouteAudiencesGet, s.getAudience},
		"audiences/update":      {RouteAudiencesUpdate, s.updateAudience},
		"oauth/token":           {RouteOAuthToken, s.token},
	}
	s.control = s.controlMux()
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	rid := requestID()
	rw.Header().Set("x-pinterest-rid", rid)
	route := ""
	switch path := r.URL.Path; {
	case strings.HasPrefix(path, "/_sim/"):
		route = "_sim"
		s.control.ServeHTTP(rw, r)
	case path == "/oauth/" || path == "/oauth":
		route = RouteOAuthAuthorize
		s.serveAuthorize(rw, r)
	default:
		route = s.serveAPI(rw, r)
		if route != "" && rw.status == http.StatusTooManyRequests {
			s.countRateLimited(route)
		}
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "pinterestsim request",
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("route", route),
		slog.Int("status", rw.status),
		slog.String("request_id", rid),
		slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
	)
}

// serveAPI answers a /v5 request and returns its route name ("" when none
// matched).
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) string {
	route, params, err := s.validator.router.FindRoute(r)
	if err != nil {
		if errors.Is(err, routers.ErrMethodNotAllowed) {
			writeError(w, http.StatusMethodNotAllowed, 405, "Method not allowed.")
			return ""
		}
		writeError(w, http.StatusNotFound, 404, "Not found.")
		return ""
	}
	op, ok := s.handlers[route.Operation.OperationID]
	if !ok {
		writeError(w, http.StatusNotFound, 404, "Not found.")
		return ""
	}
	s.countCall(op.route)

	if s.injectFault(w, r, op.route) {
		return op.route
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, 413, "Request body too large.")
			return op.route
		}
		writeError(w, http.StatusBadRequest, 1, "Could not read the request body.")
		return op.route
	}

	if op.route == RouteOAuthToken {
		if !s.tokens.checkClient(r) {
			writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "Client authentication failed.")
			return op.route
		}
	} else if status, code, msg := s.checkBearer(r, route.Operation); status != 0 {
		writeError(w, status, code, msg)
		return op.route
	}

	if err := s.validator.validate(r.Context(), r, body, route, params); err != nil {
		if op.route == RouteOAuthToken {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", err.Error())
			return op.route
		}
		writeError(w, http.StatusBadRequest, 1, err.Error())
		return op.route
	}
	// The budget is spent by valid, authenticated writes only, so that a
	// 429 never hides a request the description rejects.
	if s.budget != nil && isWriteRoute(op.route) {
		ans := s.budget.take(params["ad_account_id"], s.opts.Clock())
		s.budget.setHeaders(w.Header(), ans)
		if !ans.ok {
			writeError(w, http.StatusTooManyRequests, rateLimitCode, rateLimitMessage)
			return op.route
		}
	}
	op.handle(w, r, &call{params: params, body: body})
	return op.route
}

// checkBearer checks the bearer token and its scopes against the operation's
// security requirements. It returns 0 when the request may go on, else the
// HTTP status, Pinterest error code and message to answer with.
func (s *Server) checkBearer(r *http.Request, op *openapi3.Operation) (status, code int, msg string) {
	token, ok := bearerToken(r)
	if !ok {
		return http.StatusUnauthorized, 2, "Authentication failed."
	}
	scopes, ok := s.tokens.accessScopes(token, s.opts.Clock())
	if !ok {
		return http.StatusUnauthorized, 2, "Authentication failed."
	}
	if op.Security == nil || len(*op.Security) == 0 {
		return 0, 0, ""
	}
	for _, req := range *op.Security {
		if satisfies(scopes, req) {
			return 0, 0, ""
		}
	}
	return http.StatusForbidden, 3, "Your token does not have sufficient permissions to perform this operation. Please ensure your token is authorized with the correct set of scopes."
}

// satisfies reports whether a token with scopes meets every scheme of one
// security requirement alternative.
func satisfies(scopes map[string]bool, req openapi3.SecurityRequirement) bool {
	for _, needed := range req {
		for _, scope := range needed {
			if !scopes[scope] {
				return false
			}
		}
	}
	return true
}

func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(h[len(prefix):]), true
}

func (s *Server) countCall(route string) {
	s.mu.Lock()
	s.calls[route]++
	s.mu.Unlock()
}

func (s *Server) countRateLimited(route string) {
	s.mu.Lock()
	s.rateLimited[route]++
	s.mu.Unlock()
}

// Calls returns how many requests each route has received, faulted and
// rejected ones included (for tests that count API calls).
func (s *Server) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

// RateLimited returns how many requests of each route were answered 429,
// by the write budget or an injected fault; Calls counts them too.
func (s *Server) RateLimited() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.rateLimited)
}

// RateLimitedKey is the key of GET /_sim/calls that counts route's 429
// answers ("customer_lists.update.429"), beside the route's own key, which
// counts all its requests.
func RateLimitedKey(route string) string { return route + ".429" }

// callCounts is GET /_sim/calls: requests per route, and 429s per route
// under RateLimitedKey (only routes that answered one).
func (s *Server) callCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := maps.Clone(s.calls)
	for route, n := range s.rateLimited {
		out[RateLimitedKey(route)] = n
	}
	return out
}

// Records returns the current members of a customer list, sorted; nil when
// the ad account or list does not exist.
func (s *Server) Records(adAccountID, customerListID string) []string {
	recs, _ := s.store.records(adAccountID, customerListID)
	return recs
}

// State returns the whole state, the same data as GET /_sim/state.
func (s *Server) State() State { return s.store.state() }

// AddAdAccount makes an ad account exist (no-op if it does already).
func (s *Server) AddAdAccount(id string) error {
	if !isDigits(id) {
		return fmt.Errorf("ad account ID %q: must be digits only", id)
	}
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	s.store.addAccount(id)
	return nil
}

// apiError is Pinterest's error body.
type apiError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, apiError{Code: code, Message: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, `{"code":1,"message":"Internal error."}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// statusWriter records the status code for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func requestID() string {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func isDigits(s string) bool {
	if s == "" || len(s) > 18 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
