package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Ingest is a caller of pinlist's ingest routes.
type Ingest struct {
	base  string // "http://127.0.0.1:8080"
	token string
	hc    *http.Client
}

// NewIngest returns a caller of the ingest routes at base presenting token.
func NewIngest(base, token string) *Ingest {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	tr.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return &Ingest{base: strings.TrimRight(base, "/"), token: token, hc: &http.Client{Transport: tr, Timeout: 2 * time.Minute}}
}

// Accepted is the 202 answer to POST /v1/profiles.
type Accepted struct {
	Profiles          int            `json:"profiles"`
	Activated         int            `json:"identitiesActivated"`
	Excluded          map[string]int `json:"excluded"`
	Failed            map[string]int `json:"failed"`
	Failures          []Failure      `json:"failures"`
	FailuresTruncated bool           `json:"failuresTruncated"`
	ChangesEnqueued   int            `json:"changesEnqueued"`
	Messages          int            `json:"messages"`
}

// Failure is one failed identity or membership of a 202 answer.
type Failure struct {
	Reason string `json:"reason"`
	Path   string `json:"path"`
}

// ErrorDetail is the error of every non-2xx answer:
// {"error":{"code","message","path"}}.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Path    string `json:"path"`
}

// Answer is what the server answered.
type Answer struct {
	Status   int
	Header   http.Header
	Body     []byte
	Accepted *Accepted    // a 202 to POST /v1/profiles
	Error    *ErrorDetail // a non-2xx answer in the documented shape
}

// Request is one request to the ingest server; the zero Header fields mean
// the usual: Content-Type application/json and the ingest token.
type Request struct {
	Method string // default POST
	Path   string // default /v1/profiles
	Body   io.Reader
	// ContentType replaces application/json; NoContentType sends none.
	ContentType   string
	NoContentType bool
	// Authorization replaces "Bearer <token>"; NoAuthorization sends none.
	Authorization   string
	NoAuthorization bool
}

// PostProfiles posts one body to /v1/profiles.
func (c *Ingest) PostProfiles(ctx context.Context, body []byte) (Answer, error) {
	return c.Do(ctx, Request{Body: bytes.NewReader(body)})
}

// Do sends r and reads the whole answer. A 202 to /v1/profiles is decoded
// into Accepted; a non-2xx answer must be the documented error shape, or
// Do returns an error.
func (c *Ingest) Do(ctx context.Context, r Request) (Answer, error) {
	if r.Method == "" {
		r.Method = http.MethodPost
	}
	if r.Path == "" {
		r.Path = "/v1/profiles"
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, c.base+r.Path, r.Body)
	if err != nil {
		return Answer{}, fmt.Errorf("%s %s: %w", r.Method, r.Path, err)
	}
	switch {
	case r.NoContentType:
	case r.ContentType != "":
		req.Header.Set("Content-Type", r.ContentType)
	default:
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case r.NoAuthorization:
	case r.Authorization != "":
		req.Header.Set("Authorization", r.Authorization)
	default:
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return Answer{}, fmt.Errorf("%s %s: %w", r.Method, r.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return Answer{}, fmt.Errorf("%s %s: read the answer: %w", r.Method, r.Path, err)
	}
	a := Answer{Status: resp.StatusCode, Header: resp.Header, Body: body}
	switch {
	case resp.StatusCode == http.StatusAccepted && r.Path == "/v1/profiles":
		a.Accepted = &Accepted{}
		if err := json.Unmarshal(body, a.Accepted); err != nil {
			return a, fmt.Errorf("%s %s: decode the 202 answer: %w", r.Method, r.Path, err)
		}
	case resp.StatusCode/100 != 2:
		var e struct {
			Error *ErrorDetail `json:"error"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil || e.Error == nil || e.Error.Code == "" || e.Error.Message == "" {
			return a, fmt.Errorf("%s %s: HTTP %d answer is not {\"error\":{\"code\",\"message\",\"path\"}}: %.200q", r.Method, r.Path, resp.StatusCode, body)
		}
		a.Error = e.Error
	}
	return a, nil
}

// Healthy checks GET /healthz.
func (c *Ingest) Healthy(ctx context.Context) error {
	a, err := c.Do(ctx, Request{Method: http.MethodGet, Path: "/healthz", NoAuthorization: true, NoContentType: true})
	if err != nil {
		return err
	}
	if a.Status != http.StatusOK {
		return fmt.Errorf("GET /healthz: HTTP %d", a.Status)
	}
	return nil
}

// WaitReady polls GET /healthz until it answers 200 or ctx ends.
func (c *Ingest) WaitReady(ctx context.Context) error { return waitFor(ctx, c.Healthy) }
