package pinterestsim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/pinlist/pinlist/internal/fake"
)

const (
	testAd     = "549755885175"
	testClient = "test-app"
	testSecret = "test-app-secret"
)

// fakeClock is a clock the test moves by hand.
type fakeClock = fake.Clock

// fixture is a simulator behind an httptest server, with a read+write token.
type fixture struct {
	t     *testing.T
	sim   *Server
	srv   *httptest.Server
	clock *fakeClock
	token string
}

func newFixture(t *testing.T, mutate ...func(*Options)) *fixture {
	t.Helper()
	clock := fake.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	opts := Options{
		AdAccounts: []string{testAd},
		Clients:    map[string]string{testClient: testSecret},
		Clock:      clock.Now,
		Seed:       1,
	}
	for _, m := range mutate {
		m(&opts)
	}
	sim, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	access, _ := sim.IssueToken(testClient, []string{"ads:read", "ads:write"})
	return &fixture{t: t, sim: sim, srv: srv, clock: clock, token: access}
}

// response is a decoded reply.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// apiErr decodes a Pinterest error body.
func (r response) apiErr(t *testing.T) apiError {
	t.Helper()
	var e apiError
	r.decode(t, &e)
	return e
}

// api sends a JSON request to the API with the fixture's token.
func (f *fixture) api(method, path string, body any) response {
	f.t.Helper()
	return f.apiWith(f.token, method, path, body)
}

// apiWith sends a JSON request with the given bearer token ("" for none),
// and checks the reply against the API description's response schemas.
func (f *fixture) apiWith(token, method, path string, body any) response {
	f.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			f.t.Fatalf("marshal: %v", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		f.t.Fatalf("new request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return f.send(req)
}

// form posts an urlencoded body to the token endpoint with Basic auth.
func (f *fixture) form(clientID, secret, body string) response {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+"/v5/oauth/token", strings.NewReader(body))
	if err != nil {
		f.t.Fatalf("new request: %v", err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if clientID != "" {
		req.SetBasicAuth(clientID, secret)
	}
	return f.send(req)
}

func (f *fixture) send(req *http.Request) response {
	f.t.Helper()
	// Errorf, not Fatalf: send also runs on goroutines of concurrency tests.
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Errorf("%s %s: %v", req.Method, req.URL.Path, err)
		return response{}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Errorf("read body: %v", err)
		return response{}
	}
	out := response{status: resp.StatusCode, header: resp.Header, body: b}
	if strings.HasPrefix(req.URL.Path, "/v5/") {
		f.checkResponse(req, out)
	}
	return out
}

// checkResponse validates a reply against the API description, so the
// simulator's responses stay shaped like Pinterest's.
func (f *fixture) checkResponse(req *http.Request, resp response) {
	f.t.Helper()
	if resp.status == http.StatusNotFound || resp.status == http.StatusMethodNotAllowed {
		if _, _, err := f.sim.validator.router.FindRoute(req); err != nil {
			return // no such operation: nothing to check against
		}
	}
	route, params, err := f.sim.validator.router.FindRoute(req)
	if err != nil {
		f.t.Errorf("find route for %s %s: %v", req.Method, req.URL.Path, err)
		return
	}
	err = openapi3filter.ValidateResponse(req.Context(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 resp.status,
		Header:                 resp.header,
		Body:                   io.NopCloser(bytes.NewReader(resp.body)),
	})
	if err != nil {
		f.t.Errorf("%s %s: reply %d does not match the API description: %v", req.Method, req.URL.Path, resp.status, err)
	}
	if resp.header.Get("x-pinterest-rid") == "" {
		f.t.Errorf("%s %s: no x-pinterest-rid header", req.Method, req.URL.Path)
	}
}

// createList creates a customer list and returns it.
func (f *fixture) createList(name, records string) customerListJSON {
	f.t.Helper()
	resp := f.api(http.MethodPost, "/v5/ad_accounts/"+testAd+"/customer_lists", map[string]string{"name": name, "records": records})
	var l customerListJSON
	if resp.status != http.StatusOK {
		f.t.Errorf("create list: %d %s", resp.status, resp.body)
		return l
	}
	if err := json.Unmarshal(resp.body, &l); err != nil {
		f.t.Errorf("decode list: %v", err)
	}
	return l
}

// listPath is the API path of a customer list.
func listPath(id string) string {
	return "/v5/ad_accounts/" + testAd + "/customer_lists/" + id
}
