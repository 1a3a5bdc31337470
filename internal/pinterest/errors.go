package pinterest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxBodyBytes caps every response body the client reads, success or error.
const maxBodyBytes = 1 << 20

// maxMessageBytes caps the server message kept in an APIError, so a
// misbehaving server cannot make error strings arbitrarily long.
const maxMessageBytes = 512

// ErrReconnectNeeded reports that Pinterest no longer accepts the stored
// grant (an expired or revoked refresh token, a used authorisation code):
// only a new OAuth connect by a person fixes it.
var ErrReconnectNeeded = errors.New("pinterest: reconnect needed: the OAuth grant is no longer valid")

// ErrDeadlineWouldPass reports that the client stopped retrying because the
// next wait (backoff, Retry-After or rate limiter) would end after the
// context deadline. It is joined with the last attempt's error; IsRetryable
// reports true for it, since a later invocation may well succeed.
var ErrDeadlineWouldPass = errors.New("pinterest: next attempt would pass the context deadline")

// errBodyTooLarge reports a response body over maxBodyBytes.
var errBodyTooLarge = fmt.Errorf("pinterest: response body exceeds %d bytes", maxBodyBytes)

// APIError is a non-2xx reply from Pinterest. Code and Message come from
// Pinterest's error body ({"code": ..., "message": ...}) when it has one.
type APIError struct {
	StatusCode int
	Code       int
	Message    string
	// RequestID is Pinterest's x-pinterest-rid header, for support requests.
	RequestID string
	// Method and Path name the call, Path relative to the base URL, without
	// the query.
	Method, Path string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pinterest: %s %s: %d %s", e.Method, e.Path, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Code != 0 {
		fmt.Fprintf(&b, " (code %d)", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " [request id %s]", e.RequestID)
	}
	return b.String()
}

// RateLimitError is a 429 reply. RetryAfter is how long Pinterest asked the
// client to wait (Retry-After, else X-RateLimit-Reset), zero when it did not say.
type RateLimitError struct {
	APIError
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("%s (retry after %s)", e.APIError.Error(), e.RetryAfter)
	}
	return e.APIError.Error()
}

// Unwrap exposes the embedded APIError to errors.As.
func (e *RateLimitError) Unwrap() error { return &e.APIError }

// UnauthorizedError is a 401 reply: the access token is missing, unknown or
// expired. The caller should reload the token (it may have been refreshed by
// someone else) and try once more.
type UnauthorizedError struct {
	APIError
}

// Unwrap exposes the embedded APIError to errors.As.
func (e *UnauthorizedError) Unwrap() error { return &e.APIError }

// InvalidGrantError is an OAuth token endpoint reply that rejects the grant
// itself (invalid_grant): the refresh token or code is expired, revoked or
// unknown. errors.Is(err, ErrReconnectNeeded) reports true for it.
type InvalidGrantError struct {
	APIError
}

func (e *InvalidGrantError) Error() string {
	return e.APIError.Error() + ": reconnect needed"
}

// Is reports that an InvalidGrantError means ErrReconnectNeeded.
func (e *InvalidGrantError) Is(target error) bool { return target == ErrReconnectNeeded }

// Unwrap exposes the embedded APIError to errors.As.
func (e *InvalidGrantError) Unwrap() error { return &e.APIError }

// IsRetryable reports whether err is worth trying again later: rate limits
// (429), server errors (5xx, 408), network errors, timeouts and
// ErrDeadlineWouldPass. Client errors (4xx), unauthorised, invalid grants and
// cancellation are not.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrDeadlineWouldPass) {
		return true
	}
	// Typed API errors decide by status before anything else: an
	// UnauthorizedError must not count as retryable even if it was joined
	// with a network error somewhere.
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.StatusCode == http.StatusTooManyRequests ||
			apiErr.StatusCode == http.StatusRequestTimeout ||
			apiErr.StatusCode >= 500
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// errorBody is Pinterest's Error schema, plus the OAuth error fields that
// token endpoints conventionally use.
type errorBody struct {
	Code             int    `json:"code"`
	Message          string `json:"message"`
	OAuthError       string `json:"error"`
	OAuthDescription string `json:"error_description"`
}

// checkResponse turns a non-2xx reply into a typed error (nil for 2xx).
// body is the reply's body, already read through the size cap; now is the
// clock used to turn X-RateLimit-Reset timestamps into durations.
func checkResponse(resp *http.Response, body []byte, method, path string, now time.Time) error {
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return nil
	}
	e := APIError{
		StatusCode: resp.StatusCode,
		RequestID:  cleanHeader(resp.Header.Get("x-pinterest-rid")),
		Method:     method,
		Path:       path,
	}
	var eb errorBody
	if json.Unmarshal(body, &eb) == nil {
		e.Code = eb.Code
		e.Message = eb.Message
		if e.Message == "" {
			e.Message = strings.TrimSpace(eb.OAuthError + " " + eb.OAuthDescription)
		}
	}
	e.Message = cleanMessage(e.Message)
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return &RateLimitError{APIError: e, RetryAfter: retryAfter(resp.Header, now)}
	case isInvalidGrant(resp.StatusCode, eb):
		return &InvalidGrantError{APIError: e}
	case resp.StatusCode == http.StatusUnauthorized:
		return &UnauthorizedError{APIError: e}
	}
	return &e
}

// isInvalidGrant recognises a token endpoint's rejection of the grant: the
// RFC 6749 error code, or Pinterest's wording for it ("The authorization
// grant is invalid", code 283 in its older API).
func isInvalidGrant(status int, eb errorBody) bool {
	if status != http.StatusBadRequest && status != http.StatusUnauthorized {
		return false
	}
	if eb.OAuthError == "invalid_grant" || eb.Code == 283 {
		return true
	}
	m := strings.ToLower(eb.Message)
	return strings.Contains(m, "invalid_grant") || strings.Contains(m, "grant is invalid")
}

// retryAfter reads how long the server asked the client to wait: Retry-After
// (seconds or an HTTP date), else X-RateLimit-Reset (seconds to wait, or a
// Unix timestamp when it is large enough to be one). Zero when neither says;
// never more than maxRetryAfter.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseFloat(v, 64); err == nil {
			return clampWait(secs)
		}
		if t, err := http.ParseTime(v); err == nil {
			return clampWait(t.Sub(now).Seconds())
		}
	}
	return rateLimitReset(h, now)
}

// rateLimitReset reads X-RateLimit-Reset: seconds to wait, or a Unix
// timestamp when it is large enough to be one. Zero when absent or garbled;
// never more than maxRetryAfter.
func rateLimitReset(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("X-RateLimit-Reset")); v != "" {
		if secs, err := strconv.ParseFloat(v, 64); err == nil {
			// Values from 1e9 on are absolute Unix times (2001 onwards);
			// anything smaller is a number of seconds to wait.
			if secs >= 1e9 {
				secs -= float64(now.UnixNano()) / 1e9
			}
			return clampWait(secs)
		}
	}
	return 0
}

// maxRetryAfter bounds what a server can ask for, so a garbage header cannot
// park the client for ever or overflow a duration.
const maxRetryAfter = time.Hour

// clampWait turns seconds into a duration in [0, maxRetryAfter].
func clampWait(secs float64) time.Duration {
	switch {
	case !(secs > 0): // also true for NaN
		return 0
	case secs >= maxRetryAfter.Seconds():
		return maxRetryAfter
	}
	return time.Duration(secs * float64(time.Second))
}

// scrubSecrets removes secrets the request carried (access token, refresh
// token, code, client secret) from err's server message, in case a server
// echoes one back. Secrets shorter than 4 bytes are left alone: replacing
// them would mangle the message and they are not secrets worth the name.
func scrubSecrets(err error, secrets ...string) error {
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		return err
	}
	for _, s := range secrets {
		if len(s) >= 4 {
			apiErr.Message = strings.ReplaceAll(apiErr.Message, s, "<redacted>")
			apiErr.RequestID = strings.ReplaceAll(apiErr.RequestID, s, "<redacted>")
		}
	}
	return err
}

// cleanMessage keeps a server message printable, on one line and short.
func cleanMessage(s string) string {
	return clean(s, maxMessageBytes, "…")
}

// cleanHeader keeps a header value usable in an error string: printable,
// and no longer than a request ID plausibly is.
func cleanHeader(s string) string {
	return clean(s, 128, "")
}

// clean replaces invalid UTF-8 and control characters with spaces, folds
// runs of white space, and cuts s at a rune boundary within limit bytes,
// appending more when it cut.
func clean(s string, limit int, more string) string {
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + more
}
