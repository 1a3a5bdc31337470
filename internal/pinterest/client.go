// Package pinterest is a client for the parts of Pinterest's API v5 that
// pinlist uses: customer lists, customer-list audiences and the OAuth token
// endpoint, with typed errors, an adaptive write pace and retries.
package pinterest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/time/rate"

	"github.com/pinlist/pinlist/internal/retry"
)

// DefaultBaseURL is Pinterest's production API v5 base URL.
const DefaultBaseURL = "https://api.pinterest.com/v5"

// DefaultWritesPerMinute is Pinterest's ads_write budget as far as it is
// known (about 400 calls a minute per user and app; its rate-limit page cuts
// the row off, Amperity and the v3 docs name 400), and DefaultWriteRate the
// same per second: the pace writes start at and never exceed by default.
const (
	DefaultWritesPerMinute = 400
	DefaultWriteRate       = rate.Limit(DefaultWritesPerMinute / 60.0)
)

// Defaults used when the matching Options field is zero.
const (
	defaultMaxAttempts = 5
	defaultBaseDelay   = 200 * time.Millisecond
	defaultMaxDelay    = 20 * time.Second
	defaultUserAgent   = "pinlist (+https://github.com/pinlist/pinlist)"
	maxRedirects       = 10
)

// idPattern is Pinterest's pattern for ad account, customer list and
// audience IDs (^\d+$, at most 18 digits).
var idPattern = regexp.MustCompile(`^[0-9]{1,18}$`)

// RetryPolicy says how often and how patiently a retryable failure (429, 5xx,
// network error) is tried again. Waits grow exponentially from BaseDelay up
// to MaxDelay with full jitter (retry.Policy); a Retry-After from Pinterest
// replaces the computed wait. Zero fields take the defaults (5 attempts,
// 200ms, 20s); negative ones are an error.
type RetryPolicy struct {
	// MaxAttempts counts the first attempt too; 1 disables retries.
	MaxAttempts int
	BaseDelay   time.Duration
	MaxDelay    time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = defaultMaxAttempts
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = defaultBaseDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = defaultMaxDelay
	}
	p.MaxDelay = max(p.MaxDelay, p.BaseDelay)
	return p
}

func (p RetryPolicy) check() error {
	switch {
	case p.MaxAttempts < 0:
		return fmt.Errorf("Retry.MaxAttempts %d: must not be negative", p.MaxAttempts)
	case p.BaseDelay < 0:
		return fmt.Errorf("Retry.BaseDelay %s: must not be negative", p.BaseDelay)
	case p.MaxDelay < 0:
		return fmt.Errorf("Retry.MaxDelay %s: must not be negative", p.MaxDelay)
	}
	return nil
}

// Stats are a client's cumulative counters, for metrics.
type Stats struct {
	// Calls is the number of HTTP requests sent, retries included.
	Calls int64
	// Retries is the number of requests sent again after a retryable failure.
	Retries int64
	// RateLimited is the number of 429 replies received.
	RateLimited int64
	// Errors is the number of API calls that ended in an error after retries.
	Errors int64
}

// Options configure a Client. AdAccountID and TokenSource are required; every
// other zero field takes its default.
type Options struct {
	// AdAccountID is the ad account the client works on (1 to 18 digits).
	AdAccountID string
	// TokenSource gives the access token; it is asked before every request.
	TokenSource oauth2.TokenSource
	// BaseURL is the API v5 base URL, such as the simulator's
	// "http://127.0.0.1:8081/v5": "" → DefaultBaseURL.
	BaseURL string
	// HTTPClient sets timeouts and transport: nil → http.DefaultClient. It
	// is copied, not modified: the copy gets a redirect policy that drops
	// the Authorization header when a redirect leaves the original host.
	HTTPClient *http.Client
	// WriteRate is the most write calls (POST, PATCH) a second, the pace
	// writes start at: 0 → DefaultWriteRate. The client slows down on 429s
	// and X-RateLimit headers and recovers gradually (see pace.go).
	// rate.Inf turns pacing off (429s are still retried); negative is an
	// error.
	WriteRate rate.Limit
	// Retry is the retry policy; zero fields take their defaults.
	Retry RetryPolicy
	// UserAgent is the User-Agent header: "" → pinlist's.
	UserAgent string
	// Logger receives retries and failures (no tokens, no records are ever
	// logged): nil → slog.Default().
	Logger *slog.Logger
	// Clock is used for deadlines, the write pace and X-RateLimit-Reset
	// timestamps: nil → time.Now. For tests.
	Clock func() time.Time
	// Sleep waits between attempts and for the write pace; it must return
	// early with ctx.Err() when ctx ends: nil → retry.Sleep. For tests, so
	// a Retry-After of seconds costs no wall time.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Client talks to Pinterest's API v5 on behalf of one ad account. It is safe
// for concurrent use.
type Client struct {
	hc          *http.Client
	baseURL     *url.URL
	adAccountID string
	tokens      oauth2.TokenSource
	writes      *pacer // nil: writes are not paced
	retry       RetryPolicy
	userAgent   string
	logger      *slog.Logger
	now         func() time.Time
	sleep       func(context.Context, time.Duration) error
	jitter      func(time.Duration) time.Duration

	calls, retries, rateLimited, errs atomic.Int64
}

// New returns a client for opts.AdAccountID.
func New(opts Options) (*Client, error) {
	if !idPattern.MatchString(opts.AdAccountID) {
		return nil, fmt.Errorf("new pinterest client: AdAccountID %q is not 1 to 18 digits", opts.AdAccountID)
	}
	if opts.TokenSource == nil {
		return nil, errors.New("new pinterest client: no TokenSource")
	}
	if opts.BaseURL == "" {
		opts.BaseURL = DefaultBaseURL
	}
	base, err := parseBaseURL(opts.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("new pinterest client: BaseURL: %w", err)
	}
	switch {
	case opts.WriteRate == 0:
		opts.WriteRate = DefaultWriteRate
	case opts.WriteRate < 0 || math.IsNaN(float64(opts.WriteRate)):
		return nil, fmt.Errorf("new pinterest client: WriteRate %v: want a positive rate, rate.Inf for none, or 0 for the default", opts.WriteRate)
	}
	if err := opts.Retry.check(); err != nil {
		return nil, fmt.Errorf("new pinterest client: %w", err)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = http.DefaultClient
	}
	if opts.UserAgent == "" {
		opts.UserAgent = defaultUserAgent
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Sleep == nil {
		opts.Sleep = retry.Sleep
	}
	c := &Client{
		hc:          guardRedirects(opts.HTTPClient),
		baseURL:     base,
		adAccountID: opts.AdAccountID,
		tokens:      opts.TokenSource,
		retry:       opts.Retry.withDefaults(),
		userAgent:   opts.UserAgent,
		logger:      opts.Logger,
		now:         opts.Clock,
		sleep:       opts.Sleep,
		jitter:      retry.Jitter,
	}
	if opts.WriteRate != rate.Inf {
		c.writes = newPacer(float64(opts.WriteRate), retry.Jitter)
	}
	return c, nil
}

// AdAccountID is the ad account the client works on.
func (c *Client) AdAccountID() string { return c.adAccountID }

// Stats returns the client's cumulative counters.
func (c *Client) Stats() Stats {
	return Stats{
		Calls:       c.calls.Load(),
		Retries:     c.retries.Load(),
		RateLimited: c.rateLimited.Load(),
		Errors:      c.errs.Load(),
	}
}

func parseBaseURL(base string) (*url.URL, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("parse base URL: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("base URL %q: want http(s)://host/path", u.Redacted())
	}
	if u.User != nil {
		return nil, errors.New("base URL must not carry credentials")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

// guardRedirects returns a copy of hc whose redirect policy drops the
// Authorization header whenever a redirect leaves the original scheme and
// host (port included, which net/http itself does not check).
func guardRedirects(hc *http.Client) *http.Client {
	guarded := *hc
	next := hc.CheckRedirect
	guarded.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		first := via[0].URL
		if req.URL.Host != first.Host || req.URL.Scheme != first.Scheme {
			req.Header.Del("Authorization")
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		return nil
	}
	return &guarded
}

// newRequest builds a request for path (relative to the base URL, already
// escaped) with query and, when body is not nil, body as JSON.
func (c *Client) newRequest(ctx context.Context, method, path string, query url.Values, body any) (*http.Request, error) {
	u := *c.baseURL
	u.Path += path
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode %s %s body: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("build %s %s request: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// beforeRetry runs after the wait and before a request is sent again. It
// returns done=true when the call's outcome is settled without sending it
// again (for example, a create that turns out to have succeeded).
type beforeRetry func(ctx context.Context, lastErr error) (done bool, err error)

// do sends req, retrying retryable failures per the retry policy, and
// decodes a 2xx JSON body into out (when out is not nil). Writes wait for
// the write pace before every attempt. No wait ever ends after the
// context deadline: when one would, do returns at once with
// ErrDeadlineWouldPass joined to the last error.
func (c *Client) do(req *http.Request, out any, hook beforeRetry) error {
	err := c.doRetry(req, out, hook)
	if err != nil {
		c.errs.Add(1)
	}
	return err
}

func (c *Client) doRetry(req *http.Request, out any, hook beforeRetry) error {
	ctx := req.Context()
	path := c.relPath(req.URL)
	write := isWrite(req.Method)
	for attempt := 1; ; attempt++ {
		if write {
			if err := c.waitWriteSlot(ctx); err != nil {
				return fmt.Errorf("%s %s: wait for the write pace: %w", req.Method, path, err)
			}
		}
		err := c.send(req, path, out)
		if write && c.writes != nil {
			c.writes.settled()
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || !IsRetryable(err) {
			return err
		}
		if attempt >= c.retry.MaxAttempts {
			return fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		}
		wait := c.waitBefore(attempt, err)
		if c.passesDeadline(ctx, wait) {
			return fmt.Errorf("%w (wait %s, after %d attempts): %w", ErrDeadlineWouldPass, wait, attempt, err)
		}
		c.logRetry(ctx, req.Method, path, attempt, wait, err)
		if serr := c.sleep(ctx, wait); serr != nil {
			return fmt.Errorf("wait to retry: %w (last error: %w)", serr, err)
		}
		if hook != nil {
			done, herr := hook(ctx, err)
			if herr != nil {
				return fmt.Errorf("%w (while recovering from: %w)", herr, err)
			}
			if done {
				return nil
			}
		}
		c.retries.Add(1)
	}
}

// send makes one attempt: a fresh copy of req with the current access token.
func (c *Client) send(req *http.Request, path string, out any) error {
	tok, err := c.tokens.Token()
	if err != nil {
		return fmt.Errorf("%s %s: get access token: %w", req.Method, path, err)
	}
	if tok == nil || tok.AccessToken == "" {
		return fmt.Errorf("%s %s: token source returned no access token", req.Method, path)
	}
	r := req.Clone(req.Context())
	if req.GetBody != nil {
		if r.Body, err = req.GetBody(); err != nil {
			return fmt.Errorf("%s %s: rewind body: %w", req.Method, path, err)
		}
	}
	r.Header.Set("Authorization", "Bearer "+tok.AccessToken)

	c.calls.Add(1)
	resp, err := c.hc.Do(r)
	if err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, path, err)
	}
	defer resp.Body.Close()
	body, readErr := readBody(resp.Body)
	if c.writes != nil && isWrite(req.Method) {
		c.writes.observe(resp.StatusCode, resp.Header, c.now())
	}
	if err := checkResponse(resp, body, req.Method, path, c.now()); err != nil {
		if resp.StatusCode == http.StatusTooManyRequests {
			c.rateLimited.Add(1)
		}
		return scrubSecrets(err, tok.AccessToken)
	}
	if readErr != nil {
		return fmt.Errorf("%s %s: read response: %w", req.Method, path, readErr)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", req.Method, path, err)
	}
	return nil
}

// readBody reads at most maxBodyBytes of body; a longer body is cut there
// and reported with errBodyTooLarge. What is left is drained (up to the cap)
// so the connection can be reused.
func readBody(body io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(body, maxBodyBytes+1))
	if err != nil {
		return b, err
	}
	if len(b) > maxBodyBytes {
		_, _ = io.CopyN(io.Discard, body, maxBodyBytes)
		return b[:maxBodyBytes], errBodyTooLarge
	}
	return b, nil
}

// relPath is u's path relative to the base URL, for errors and logs.
func (c *Client) relPath(u *url.URL) string {
	return strings.TrimPrefix(u.Path, c.baseURL.Path)
}

// waitBefore is how long to wait before attempt n+1 after err: Pinterest's
// Retry-After when it gave one, else full-jitter exponential backoff.
func (c *Client) waitBefore(n int, err error) time.Duration {
	var rl *RateLimitError
	if errors.As(err, &rl) && rl.RetryAfter > 0 {
		return rl.RetryAfter
	}
	return c.jitter(retry.Policy{Base: c.retry.BaseDelay, Max: c.retry.MaxDelay}.Ceiling(n))
}

// passesDeadline reports whether waiting d from now would end after ctx's
// deadline.
func (c *Client) passesDeadline(ctx context.Context, d time.Duration) bool {
	dl, ok := ctx.Deadline()
	return ok && c.now().Add(d).After(dl)
}

// waitWriteSlot waits for the write pace, unless the wait would pass the
// context deadline.
func (c *Client) waitWriteSlot(ctx context.Context) error {
	if c.writes == nil {
		return nil
	}
	for {
		now := c.now()
		d, undo, booked := c.writes.reserve(now)
		if d <= 0 && booked {
			return nil
		}
		if c.passesDeadline(ctx, d) {
			undo()
			return fmt.Errorf("%w (write pace wait %s)", ErrDeadlineWouldPass, d)
		}
		if err := c.sleep(ctx, d); err != nil {
			undo()
			return err
		}
		// A 429 that came in meanwhile holds every write back, also
		// those with a slot booked before it.
		if booked && !c.writes.held(c.now()) {
			return nil
		}
	}
}

func (c *Client) logRetry(ctx context.Context, method, path string, attempt int, wait time.Duration, err error) {
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.String("path", path),
		slog.Int("attempt", attempt),
		slog.Duration("wait", wait),
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		attrs = append(attrs,
			slog.Int("status", apiErr.StatusCode),
			slog.Int("code", apiErr.Code),
			slog.String("request_id", apiErr.RequestID))
	} else {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	c.logger.LogAttrs(ctx, slog.LevelWarn, "pinterest call failed; retrying", attrs...)
}

// isWrite reports whether a request spends Pinterest's write budget.
func isWrite(method string) bool {
	return method != http.MethodGet && method != http.MethodHead
}
