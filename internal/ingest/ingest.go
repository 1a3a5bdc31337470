package ingest

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/pinlist/pinlist/internal/wire"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/config"
	"github.com/pinlist/pinlist/internal/queue"
	"github.com/pinlist/pinlist/internal/retry"
)

// Routes.
const (
	PathProfiles  = "/v1/profiles"
	PathAudiences = "/v1/audiences"
	PathHealth    = "/healthz"
)

// Defaults for the optional Options fields. The body limit's default is
// config.DefaultMaxBodyBytes, the message bound's wire.DefaultMaxMessageBytes:
// their one homes.
const (
	DefaultRetryAfter   = 5 * time.Second
	DefaultTokenTTL     = 5 * time.Minute
	DefaultTokenRefresh = 30 * time.Second
)

// DefaultSendRetry is how a failed queue send is offered again: 5 rounds,
// jittered waits of at most 100 ms, 200 ms, 400 ms and 800 ms (capped at 2 s).
var DefaultSendRetry = retry.Policy{Attempts: 5, Base: 100 * time.Millisecond, Max: 2 * time.Second}

const headerRequestID = "X-Request-Id"

// Options configures a Handler. Sender and IngestToken are required; the
// zero value of every other field means its default, and a negative one is
// an error naming the field.
type Options struct {
	// Sender enqueues the messages (SQS in AWS, goqite locally).
	Sender queue.Sender
	// IngestToken yields the ingest bearer token callers must present (not
	// the Pinterest access token, which ingest never sees).
	IngestToken IngestTokenSource
	// Limits bound one request (see audience.Limits). A zero
	// Limits.MaxBodyBytes means config.DefaultMaxBodyBytes (413 above it);
	// other zero fields mean audience's defaults.
	Limits audience.Limits
	// MaxMessageBytes bounds one queue message body.
	MaxMessageBytes int
	// SendRetry shapes how often and how patiently a message is offered to
	// the Sender before the request fails with 503; zero fields take
	// DefaultSendRetry's (a nil Sleep waits for real). Retrying also stops
	// when the request context's deadline is too close for another round.
	SendRetry retry.Policy
	// RetryAfter is the Retry-After sent with a 503.
	RetryAfter time.Duration
	// TokenTTL is how long a fetched ingest token is trusted; TokenRefresh is
	// the shortest time between fetches caused by a token mismatch.
	TokenTTL     time.Duration
	TokenRefresh time.Duration
	// Logger receives one JSON line per request; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock (time.Now when nil): receive times and token expiry.
	Now func() time.Time
	// NewRequestID makes the request ID when the context carries none (a
	// random one when nil).
	NewRequestID func() string
	// Metrics receives one CloudWatch EMF line per POST /v1/profiles
	// request that was mapped (os.Stdout in Lambda); nil writes none (the
	// local runner).
	Metrics io.Writer
	// Connection is the value of the metrics' Connection dimension
	// (PINLIST_CONNECTION_NAME); empty means config.DefaultConnectionName.
	Connection string
}

// Handler is the ingest HTTP handler. It is safe for concurrent use.
type Handler struct {
	sender          queue.Sender
	auth            *authenticator
	limits          audience.Limits
	maxBodyBytes    int64
	maxMessageBytes int
	sendRetry       retry.Policy
	retryAfter      time.Duration
	logger          *slog.Logger
	now             func() time.Time
	newRequestID    func() string
	metrics         io.Writer
	connection      string
	// mappers holds reusable *audience.Mapper: one maps a request body with
	// its buffers kept between requests (a Mapper is not safe for concurrent
	// use, so each request takes its own).
	mappers sync.Pool
}

var _ http.Handler = (*Handler)(nil)

// New returns a Handler.
func New(opts Options) (*Handler, error) {
	if err := opts.check(); err != nil {
		return nil, fmt.Errorf("new ingest handler: %w", err)
	}
	h := &Handler{
		sender:          opts.Sender,
		limits:          opts.Limits,
		maxBodyBytes:    orDefault(opts.Limits.MaxBodyBytes, config.DefaultMaxBodyBytes),
		maxMessageBytes: orDefault(opts.MaxMessageBytes, wire.DefaultMaxMessageBytes),
		sendRetry:       opts.SendRetry,
		retryAfter:      orDefault(opts.RetryAfter, DefaultRetryAfter),
		logger:          opts.Logger,
		now:             opts.Now,
		newRequestID:    opts.NewRequestID,
		metrics:         opts.Metrics,
		connection:      cmp.Or(opts.Connection, config.DefaultConnectionName),
	}
	h.sendRetry.Attempts = orDefault(h.sendRetry.Attempts, DefaultSendRetry.Attempts)
	h.sendRetry.Base = orDefault(h.sendRetry.Base, DefaultSendRetry.Base)
	h.sendRetry.Max = orDefault(h.sendRetry.Max, max(DefaultSendRetry.Max, h.sendRetry.Base))
	if h.sendRetry.Sleep == nil {
		h.sendRetry.Sleep = retry.Sleep
	}
	h.limits.MaxBodyBytes = h.maxBodyBytes
	h.mappers.New = func() any { return audience.NewMapper(h.limits) }
	if h.logger == nil {
		h.logger = slog.Default()
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.newRequestID == nil {
		h.newRequestID = randomID
	}
	h.auth = &authenticator{
		source:       opts.IngestToken,
		ttl:          orDefault(opts.TokenTTL, DefaultTokenTTL),
		refreshEvery: orDefault(opts.TokenRefresh, DefaultTokenRefresh),
		now:          h.now,
	}
	return h, nil
}

// check reports the first missing dependency or negative value, naming the
// field.
func (o Options) check() error {
	switch {
	case o.Sender == nil:
		return errors.New("Options.Sender is required")
	case o.IngestToken == nil:
		return errors.New("Options.IngestToken is required")
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"Limits.MaxBodyBytes", o.Limits.MaxBodyBytes},
		{"Limits.MaxProfiles", int64(o.Limits.MaxProfiles)},
		{"Limits.MaxIdentitiesPerNS", int64(o.Limits.MaxIdentitiesPerNS)},
		{"Limits.MaxAudiencesPerProfile", int64(o.Limits.MaxAudiencesPerProfile)},
		{"Limits.MaxFailures", int64(o.Limits.MaxFailures)},
		{"Limits.MaxChanges", int64(o.Limits.MaxChanges)},
		{"MaxMessageBytes", int64(o.MaxMessageBytes)},
		{"SendRetry.Attempts", int64(o.SendRetry.Attempts)},
		{"SendRetry.Base", int64(o.SendRetry.Base)},
		{"SendRetry.Max", int64(o.SendRetry.Max)},
		{"RetryAfter", int64(o.RetryAfter)},
		{"TokenTTL", int64(o.TokenTTL)},
		{"TokenRefresh", int64(o.TokenRefresh)},
	} {
		if f.v < 0 {
			return fmt.Errorf("Options.%s is negative (%d)", f.name, f.v)
		}
	}
	return nil
}

// orDefault is v, or def when v is zero (New has refused negative values).
func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// ServeHTTP routes the request: GET /healthz without credentials, POST
// /v1/profiles, POST /v1/audiences, POST /v1/erasure and DELETE
// /v1/audiences/{id} with the ingest token.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.now()
	id := h.requestID(r.Context())
	w.Header().Set(headerRequestID, id)
	log := h.logger.With("requestId", id)
	sw := &statusWriter{ResponseWriter: w}
	var attrs []any
	switch r.URL.Path {
	case PathHealth:
		if !allowMethod(sw, r, http.MethodGet, http.MethodHead) {
			break
		}
		writeJSON(sw, http.StatusOK, map[string]string{"status": "ok"})
	case PathProfiles, PathAudiences, PathErasure:
		if !allowMethod(sw, r, http.MethodPost) || !h.authorize(sw, r, log) || !jsonContent(sw, r) {
			break
		}
		body, ok := h.readBody(sw, r)
		if !ok {
			break
		}
		switch r.URL.Path {
		case PathProfiles:
			attrs = h.profiles(sw, r, body, log)
		case PathErasure:
			attrs = h.erasure(sw, r, body, log)
		default:
			attrs = h.audience(sw, r, body, log)
		}
	default:
		if strings.HasPrefix(r.URL.Path, PathAudiences+"/") {
			if allowMethod(sw, r, http.MethodDelete) && h.authorize(sw, r, log) {
				attrs = h.deleteAudience(sw, r, log)
			}
			break
		}
		writeError(sw, http.StatusNotFound, codeNotFound, "no such route", "")
	}
	level := slog.LevelInfo
	switch {
	case sw.status >= 500:
		level = slog.LevelError
	case sw.status >= 400:
		level = slog.LevelWarn
	case r.URL.Path == PathHealth:
		level = slog.LevelDebug // health checks would drown the log
	}
	// The path and method are logged only when they are ones we know: others
	// are outside input and could carry anything.
	route := r.URL.Path
	switch {
	case route == PathHealth, route == PathProfiles, route == PathAudiences, route == PathErasure:
	case strings.HasPrefix(route, PathAudiences+"/"):
		route = routeAudience
	default:
		route = "unknown"
	}
	method := r.Method
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
	default:
		method = "other"
	}
	attrs = append(attrs, "method", method, "route", route, "status", sw.status, "durationMs", h.now().Sub(start).Milliseconds())
	log.Log(r.Context(), level, "request", attrs...)
}

// allowMethod answers 405 with Allow when r's method is not one of methods.
func allowMethod(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeError(w, http.StatusMethodNotAllowed, codeMethodNotAllowed, "method not allowed; use "+strings.Join(methods, " or "), "")
	return false
}

// authorize answers 401 (or 503 when the expected token cannot be fetched)
// unless r carries the ingest token.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, log *slog.Logger) bool {
	res, err := h.auth.check(r.Context(), r.Header.Get("Authorization"))
	switch res {
	case authOK:
		return true
	case authUnavailable:
		log.ErrorContext(r.Context(), "ingest token unavailable", "error", err.Error())
		writeUnavailable(w, h.retryAfter, "the ingest token could not be checked; retry later")
		return false
	case authMissing:
		w.Header().Set("WWW-Authenticate", `Bearer realm="pinlist"`)
		writeError(w, http.StatusUnauthorized, codeUnauthorized, "missing bearer token", "")
		return false
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="pinlist", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, codeUnauthorized, "invalid bearer token", "")
		return false
	}
}

// jsonContent answers 415 unless the body is declared JSON: application/json
// or any application/*+json type, with no charset or UTF-8. A request with no
// Content-Type at all is read as JSON (some senders omit it; the body must
// still parse as JSON).
func jsonContent(w http.ResponseWriter, r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	if strings.TrimSpace(ct) == "" {
		return true
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))) {
		if cs, ok := params["charset"]; !ok || strings.EqualFold(cs, "utf-8") || strings.EqualFold(cs, "utf8") {
			return true
		}
	}
	writeError(w, http.StatusUnsupportedMediaType, codeUnsupportedType, "the body must be JSON (Content-Type: application/json)", "")
	return false
}

// readBody reads the whole body through http.MaxBytesReader: 413 above the
// limit.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.ContentLength > h.maxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("the body is larger than %d bytes", h.maxBodyBytes), "")
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("the body is larger than %d bytes", h.maxBodyBytes), "")
			return nil, false
		}
		writeError(w, http.StatusBadRequest, codeInvalid, "the body could not be read", "")
		return nil, false
	}
	return body, true
}

// statusWriter remembers the status written, for the request log line.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type requestIDKey struct{}

// withRequestID returns ctx carrying id as the request ID (the Lambda request
// ID in HandleAPIGateway).
func withRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

func (h *Handler) requestID(ctx context.Context) string {
	if id, ok := ctx.Value(requestIDKey{}).(string); ok && id != "" {
		return id
	}
	return h.newRequestID()
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
