package local

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestBadInputOverHTTP posts one request of each error class of the ingest
// contract to the running stack: each answers its status with the JSON error
// {"error":{"code","message","path"}}, nothing is enqueued, and the server
// stays healthy.
func TestBadInputOverHTTP(t *testing.T) {
	s := newStack(t, nil)
	good := body(t, profile{ids: []ident{{nsEmail, "someone@example.com"}}, events: []membershipEvent{{audA, "realized", t0}}})
	tests := []struct {
		name        string
		method      string
		path        string
		token       string // "-" for none
		contentType string
		body        []byte
		status      int
		code        string
		errPath     string // "" when the error names no part of the body
	}{
		{name: "no token", path: "/v1/profiles", token: "-", body: good, status: 401, code: "unauthorized"},
		{name: "wrong token", path: "/v1/profiles", token: "not-the-token", body: good, status: 401, code: "unauthorized"},
		{name: "no token for audiences", path: "/v1/audiences", token: "-", body: []byte(`{"id":"x","name":"y"}`), status: 401, code: "unauthorized"},
		{name: "unknown route", path: "/v1/nothing", body: good, status: 404, code: "not_found"},
		{name: "GET profiles", method: http.MethodGet, path: "/v1/profiles", status: 405, code: "method_not_allowed"},
		{name: "not JSON content type", path: "/v1/profiles", contentType: "text/plain", body: good, status: 415, code: "unsupported_media_type"},
		{name: "malformed JSON", path: "/v1/profiles", body: []byte(`{"profiles": [`), status: 400, code: "malformed_json", errPath: "$.profiles"},
		{name: "trailing data", path: "/v1/profiles", body: append(append([]byte{}, good...), " {}"...), status: 400, code: "malformed_json", errPath: "$"},
		{name: "wrong top-level type", path: "/v1/profiles", body: []byte(`"profiles"`), status: 400, code: "wrong_type", errPath: "$"},
		{name: "profiles not an array", path: "/v1/profiles", body: []byte(`{"profiles": {}}`), status: 400, code: "wrong_type", errPath: "$.profiles"},
		{name: "ambiguous body", path: "/v1/profiles", body: []byte(`{"profiles": [], "identityMap": {}}`), status: 400, code: "ambiguous_body", errPath: "$"},
		{name: "body over 5 MiB", path: "/v1/profiles", body: append([]byte(`{"profiles":["`), bytes.Repeat([]byte("x"), 5<<20)...), status: 413, code: "payload_too_large"},
		{name: "audience without id", path: "/v1/audiences", body: []byte(`{"name":"y"}`), status: 400, code: "invalid_request", errPath: "$.id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req, err := http.NewRequest(method, s.IngestURL()+tc.path, bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			switch tc.token {
			case "-":
			case "":
				req.Header.Set("Authorization", "Bearer "+s.IngestToken())
			default:
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			ct := tc.contentType
			if ct == "" {
				ct = "application/json"
			}
			req.Header.Set("Content-Type", ct)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			ans := decodeAnswer(t, resp)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d (%v)", resp.StatusCode, tc.status, ans)
			}
			e, _ := ans["error"].(map[string]any)
			if e == nil {
				t.Fatalf("answer %v has no error object", ans)
			}
			if e["code"] != tc.code {
				t.Errorf("error code %v, want %s", e["code"], tc.code)
			}
			if msg, _ := e["message"].(string); msg == "" {
				t.Errorf("error %v has no message", e)
			}
			if tc.errPath != "" && e["path"] != tc.errPath {
				t.Errorf("error path %v, want %s", e["path"], tc.errPath)
			}
		})
	}

	resp, err := http.Get(s.IngestURL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz after the bad input = %d, want 200", resp.StatusCode)
	}
	p, err := s.Progress(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if p.ReceivedMessages != 0 || p.Queued+p.InFlight != 0 {
		t.Errorf("bad requests enqueued something: %+v", p)
	}
}

// TestBadIdentitiesFailAloneOverHTTP: a request whose profiles carry
// malformed identities and memberships is accepted; the report counts the
// failures by reason and path without quoting them, and every good identity
// and membership of the same request is applied.
func TestBadIdentitiesFailAloneOverHTTP(t *testing.T) {
	s := newStack(t, nil)
	var g gen
	good1 := profile{ids: []ident{g.email(), g.gaid()}, events: []membershipEvent{{audA, "realized", t0}}}
	good2 := profile{ids: []ident{g.idfa()}, events: []membershipEvent{{audB, "realized", t0}}}
	mixed := profile{ids: []ident{g.email()}, events: []membershipEvent{{audA, "realized", t0}}}
	raw := map[string]any{"profiles": []any{
		good1.aepJSON(),
		map[string]any{
			"identityMap": map[string]any{
				"email": []any{map[string]any{"id": "not an email"}, map[string]any{"id": mixed.ids[0].id}},
				"gaid":  []any{map[string]any{"id": "not-a-uuid"}},
				"idfa":  []any{map[string]any{"id": 42}},
			},
			"segmentMembership": map[string]any{"ups": map[string]any{
				audA: map[string]any{"status": "realized", "lastQualificationTime": t0.Format("2006-01-02T15:04:05Z")},
				audC: map[string]any{"status": "maybe", "lastQualificationTime": t0.Format("2006-01-02T15:04:05Z")},
			}},
		},
		good2.aepJSON(),
	}}
	b, err := json.Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	ans := s.mustAccept(t, b)
	failed, _ := ans["failed"].(map[string]any)
	for _, reason := range []string{"invalid_email", "invalid_maid", "invalid_identity", "invalid_status"} {
		if n, _ := failed[reason].(float64); n < 1 {
			t.Errorf("failed[%s] = %v, want at least 1 (answer %v)", reason, failed[reason], ans)
		}
	}
	if enc, _ := json.Marshal(ans); strings.Contains(string(enc), "not an email") || strings.Contains(string(enc), "not-a-uuid") {
		t.Errorf("the answer quotes a bad identifier: %s", enc)
	}

	m := newModel()
	m.add(good1, mixed, good2)
	waitMembership(t, s.SimulatorURL(), s.AdAccountID(), m.membership())
}
