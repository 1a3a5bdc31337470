package pinterest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func reply(status int, header http.Header) *http.Response {
	if header == nil {
		header = http.Header{}
	}
	return &http.Response{StatusCode: status, Header: header}
}

func TestCheckResponse(t *testing.T) {
	rid := http.Header{"X-Pinterest-Rid": {"rid-123"}}
	tests := []struct {
		name   string
		status int
		header http.Header
		body   string
		want   error
	}{
		{name: "200 is no error", status: 200, body: `{}`},
		{name: "201 is no error", status: 201},
		{
			name: "400 with Pinterest body", status: 400, header: rid,
			body: `{"code":1,"message":"Invalid parameters."}`,
			want: &APIError{StatusCode: 400, Code: 1, Message: "Invalid parameters.", RequestID: "rid-123", Method: "PATCH", Path: "/p"},
		},
		{
			name: "401 is unauthorized", status: 401,
			body: `{"code":2,"message":"Authentication failed."}`,
			want: &UnauthorizedError{APIError{StatusCode: 401, Code: 2, Message: "Authentication failed.", Method: "PATCH", Path: "/p"}},
		},
		{
			name: "429 with Retry-After seconds", status: 429, header: http.Header{"Retry-After": {"3"}},
			body: `{"code":8,"message":"This request exceeded a rate limit."}`,
			want: &RateLimitError{APIError{StatusCode: 429, Code: 8, Message: "This request exceeded a rate limit.", Method: "PATCH", Path: "/p"}, 3 * time.Second},
		},
		{
			name: "429 with X-RateLimit-Reset seconds", status: 429, header: http.Header{"X-Ratelimit-Reset": {"7"}},
			want: &RateLimitError{APIError{StatusCode: 429, Method: "PATCH", Path: "/p"}, 7 * time.Second},
		},
		{
			name: "429 without a hint", status: 429,
			want: &RateLimitError{APIError{StatusCode: 429, Method: "PATCH", Path: "/p"}, 0},
		},
		{
			name: "400 invalid_grant (RFC 6749 body)", status: 400,
			body: `{"error":"invalid_grant","error_description":"refresh token expired"}`,
			want: &InvalidGrantError{APIError{StatusCode: 400, Message: "invalid_grant refresh token expired", Method: "PATCH", Path: "/p"}},
		},
		{
			name: "400 invalid grant (Pinterest wording)", status: 400,
			body: `{"code":283,"message":"The authorization grant is invalid"}`,
			want: &InvalidGrantError{APIError{StatusCode: 400, Code: 283, Message: "The authorization grant is invalid", Method: "PATCH", Path: "/p"}},
		},
		{
			name: "500 with HTML body", status: 500, body: "<html>oops</html>",
			want: &APIError{StatusCode: 500, Method: "PATCH", Path: "/p"},
		},
		{
			name: "message with control characters is flattened", status: 400,
			body: `{"code":1,"message":"line one\nline\ttwo\u0000"}`,
			want: &APIError{StatusCode: 400, Code: 1, Message: "line one line two", Method: "PATCH", Path: "/p"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkResponse(reply(tt.status, tt.header), []byte(tt.body), "PATCH", "/p", testNow)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("checkResponse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckResponseTypedErrorsReachAPIError(t *testing.T) {
	for _, status := range []int{400, 401, 429, 503} {
		err := fmt.Errorf("wrapped: %w", checkResponse(reply(status, nil), nil, "GET", "/x", testNow))
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.StatusCode != status {
			t.Errorf("status %d: errors.As(*APIError) = %v, %+v", status, errors.As(err, &apiErr), apiErr)
		}
	}
	grant := checkResponse(reply(400, nil), []byte(`{"error":"invalid_grant"}`), "POST", "/oauth/token", testNow)
	if !errors.Is(grant, ErrReconnectNeeded) {
		t.Errorf("invalid grant: errors.Is(ErrReconnectNeeded) = false for %v", grant)
	}
	if other := checkResponse(reply(400, nil), []byte(`{"error":"invalid_client"}`), "POST", "/oauth/token", testNow); errors.Is(other, ErrReconnectNeeded) {
		t.Errorf("invalid client: errors.Is(ErrReconnectNeeded) = true for %v", other)
	}
}

func TestCheckResponseLongMessageIsCut(t *testing.T) {
	long := strings.Repeat("é", 1000)
	err := checkResponse(reply(400, nil), []byte(`{"code":1,"message":"`+long+`"}`), "GET", "/x", testNow)
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("want *APIError, got %T", err)
	}
	if len(apiErr.Message) > maxMessageBytes+len("…") || !utf8.ValidString(apiErr.Message) {
		t.Errorf("message is %d bytes (valid UTF-8: %v), want at most %d", len(apiErr.Message), utf8.ValidString(apiErr.Message), maxMessageBytes)
	}
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		want   time.Duration
	}{
		{"none", http.Header{}, 0},
		{"Retry-After seconds", http.Header{"Retry-After": {"2"}}, 2 * time.Second},
		{"Retry-After fractional", http.Header{"Retry-After": {"0.5"}}, 500 * time.Millisecond},
		{"Retry-After HTTP date", http.Header{"Retry-After": {testNow.Add(90 * time.Second).Format(http.TimeFormat)}}, 90 * time.Second},
		{"Retry-After date in the past", http.Header{"Retry-After": {testNow.Add(-time.Minute).Format(http.TimeFormat)}}, 0},
		{"Retry-After negative", http.Header{"Retry-After": {"-5"}}, 0},
		{"Retry-After NaN", http.Header{"Retry-After": {"NaN"}}, 0},
		{"Retry-After huge is capped", http.Header{"Retry-After": {"99999999"}}, maxRetryAfter},
		{"Retry-After wins over reset", http.Header{"Retry-After": {"1"}, "X-Ratelimit-Reset": {"9"}}, time.Second},
		{"garbage Retry-After falls back to reset", http.Header{"Retry-After": {"soon"}, "X-Ratelimit-Reset": {"4"}}, 4 * time.Second},
		{"reset as seconds", http.Header{"X-Ratelimit-Reset": {"30"}}, 30 * time.Second},
		{"reset as Unix time", http.Header{"X-Ratelimit-Reset": {strconv.FormatInt(testNow.Add(45*time.Second).Unix(), 10)}}, 45 * time.Second},
		{"reset Unix time in the past", http.Header{"X-Ratelimit-Reset": {strconv.FormatInt(testNow.Add(-time.Hour).Unix(), 10)}}, 0},
		{"reset garbage", http.Header{"X-Ratelimit-Reset": {"later"}}, 0},
		{"reset absurd", http.Header{"X-Ratelimit-Reset": {"1e300"}}, maxRetryAfter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retryAfter(tt.header, testNow); got != tt.want {
				t.Errorf("retryAfter(%v) = %s, want %s", tt.header, got, tt.want)
			}
		})
	}
}

func TestIsRetryable(t *testing.T) {
	api := func(status int) error { return checkResponse(reply(status, nil), nil, "GET", "/x", testNow) }
	netErr := &url.Error{Op: "Get", URL: "http://x", Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"429", api(429), true},
		{"500", api(500), true},
		{"503 wrapped", fmt.Errorf("patch customer list 1: %w", api(503)), true},
		{"408", api(408), true},
		{"400", api(400), false},
		{"401", api(401), false},
		{"403", api(403), false},
		{"404", api(404), false},
		{"invalid grant", checkResponse(reply(400, nil), []byte(`{"error":"invalid_grant"}`), "POST", "/oauth/token", testNow), false},
		{"network error", netErr, true},
		{"unexpected EOF", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"deadline would pass", fmt.Errorf("%w: %w", ErrDeadlineWouldPass, api(400)), true},
		{"context deadline exceeded", fmt.Errorf("get: %w", context.DeadlineExceeded), true},
		{"context canceled", fmt.Errorf("get: %w", context.Canceled), false},
		{"plain error", errors.New("bad input"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsRetryable(tt.err); got != tt.want {
				t.Errorf("IsRetryable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// FuzzCheckResponse feeds arbitrary replies (Pinterest's, or anything in
// between) to checkResponse: it must never panic, and its error text must
// stay one bounded line of valid UTF-8.
func FuzzCheckResponse(f *testing.F) {
	f.Add(429, `{"code":8,"message":"rate limited"}`, "2", "", "rid")
	f.Add(400, `{"error":"invalid_grant"}`, "", "", "")
	f.Add(500, "\xff\xfe<html>", "Wed, 21 Oct 2015 07:28:00 GMT", "1700000000", "r\nid")
	f.Add(401, `{"code":"two","message":3}`, "-1", "NaN", "")
	f.Fuzz(func(t *testing.T, status int, body, retry, reset, rid string) {
		if status < 100 || status > 999 {
			return
		}
		h := http.Header{}
		h.Set("Retry-After", retry)
		h.Set("X-RateLimit-Reset", reset)
		h.Set("x-pinterest-rid", rid)
		err := checkResponse(reply(status, h), []byte(body), "GET", "/x", testNow)
		if status >= 200 && status <= 299 {
			if err != nil {
				t.Fatalf("status %d: want nil, got %v", status, err)
			}
			return
		}
		if err == nil {
			t.Fatalf("status %d: want an error", status)
		}
		msg := err.Error()
		if !utf8.ValidString(msg) || strings.ContainsAny(msg, "\n\r") {
			t.Errorf("error text is not one line of UTF-8: %q", msg)
		}
		if len(msg) > 1024 {
			t.Errorf("error text is %d bytes", len(msg))
		}
		var rl *RateLimitError
		if errors.As(err, &rl) && (rl.RetryAfter < 0 || rl.RetryAfter > maxRetryAfter) {
			t.Errorf("RetryAfter %s out of [0, %s]", rl.RetryAfter, maxRetryAfter)
		}
	})
}
