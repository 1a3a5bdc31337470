package ingest

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/config"
	"github.com/pinlist/pinlist/internal/queue"
	"github.com/pinlist/pinlist/internal/wire"
)

// mixedBody has two profiles with good, excluded and malformed identities and
// memberships. Its plain identifiers must never leave the handler.
const mixedBody = `[
 {"identityMap": {
    "email": [{"id": "Jane.Doe@Example.com"}, {"id": "not-an-email"}],
    "external_id": [{"id": "123456"}],
    "gaid": [{"id": "00000000-0000-0000-0000-000000000000"}]},
  "segmentMembership": {"ups": {
    "aud-1": {"status": "realized", "lastQualificationTime": "2026-11-01T10:00:00Z"},
    "aud-2": {"status": "exited", "lastQualificationTime": "2026-11-01T10:00:00Z"}}}},
 {"identityMap": {"idfa": [{"id": "6d92078a-8246-4ba4-ae5b-76104861e7dc"}]},
  "segmentMembership": {"ups": {
    "aud-1": {"status": "bogus"},
    "aud-2": {"status": "realized", "lastQualificationTime": "2026-11-02T10:00:00Z"}}}}
]`

// plainIdentifiers are the identifiers of mixedBody as sent.
var plainIdentifiers = []string{"Jane.Doe@Example.com", "jane.doe@example.com", "not-an-email", "123456", "6d92078a-8246-4ba4-ae5b-76104861e7dc", "6D92078A-8246-4BA4-AE5B-76104861E7DC"}

const goodProfile = `{"identityMap": {"email": [{"id": "a@example.com"}]},
 "segmentMembership": {"ups": {"aud-1": {"status": "realized", "lastQualificationTime": "2026-11-01T10:00:00Z"}}}}`

func TestServeHTTPErrors(t *testing.T) {
	auth := "Bearer " + testToken
	tests := []struct {
		name      string
		method    string
		path      string
		header    map[string]string
		body      string
		mod       func(*Options)
		tokenErr  error
		status    int
		code      string
		errPath   string
		wantAllow string
		wantAuthn bool
	}{
		{name: "unknown route", method: "GET", path: "/nope", status: 404, code: codeNotFound},
		{name: "unknown v1 route", method: "POST", path: "/v1/other", header: authJSON(), status: 404, code: codeNotFound},
		{name: "trailing slash", method: "POST", path: "/v1/profiles/", header: authJSON(), status: 404, code: codeNotFound},
		{name: "GET profiles", method: "GET", path: PathProfiles, header: authJSON(), status: 405, code: codeMethodNotAllowed, wantAllow: "POST"},
		{name: "PUT audiences", method: "PUT", path: PathAudiences, header: authJSON(), status: 405, code: codeMethodNotAllowed, wantAllow: "POST"},
		{name: "POST healthz", method: "POST", path: PathHealth, status: 405, code: codeMethodNotAllowed, wantAllow: "GET, HEAD"},
		{name: "no authorization", method: "POST", path: PathProfiles, header: map[string]string{"Content-Type": "application/json"}, body: goodProfile, status: 401, code: codeUnauthorized, wantAuthn: true},
		{name: "wrong token", method: "POST", path: PathProfiles, header: map[string]string{"Authorization": "Bearer nope", "Content-Type": "application/json"}, body: goodProfile, status: 401, code: codeUnauthorized, wantAuthn: true},
		{name: "token prefix only", method: "POST", path: PathProfiles, header: map[string]string{"Authorization": "Bearer " + testToken[:5], "Content-Type": "application/json"}, body: goodProfile, status: 401, code: codeUnauthorized, wantAuthn: true},
		{name: "token with suffix", method: "POST", path: PathProfiles, header: map[string]string{"Authorization": auth + "x", "Content-Type": "application/json"}, body: goodProfile, status: 401, code: codeUnauthorized, wantAuthn: true},
		{name: "basic scheme", method: "POST", path: PathProfiles, header: map[string]string{"Authorization": "Basic " + testToken, "Content-Type": "application/json"}, body: goodProfile, status: 401, code: codeUnauthorized, wantAuthn: true},
		{name: "empty bearer", method: "POST", path: PathAudiences, header: map[string]string{"Authorization": "Bearer ", "Content-Type": "application/json"}, body: `{}`, status: 401, code: codeUnauthorized, wantAuthn: true},
		{name: "token unavailable", method: "POST", path: PathProfiles, header: authJSON(), body: goodProfile, tokenErr: errBoom, status: 503, code: codeUnavailable},
		{name: "text/plain", method: "POST", path: PathProfiles, header: map[string]string{"Authorization": auth, "Content-Type": "text/plain"}, body: goodProfile, status: 415, code: codeUnsupportedType},
		{name: "form", method: "POST", path: PathAudiences, header: map[string]string{"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}, body: "id=1", status: 415, code: codeUnsupportedType},
		{name: "json latin1", method: "POST", path: PathProfiles, header: map[string]string{"Authorization": auth, "Content-Type": "application/json; charset=iso-8859-1"}, body: goodProfile, status: 415, code: codeUnsupportedType},
		{name: "unparsable content type", method: "POST", path: PathProfiles, header: map[string]string{"Authorization": auth, "Content-Type": "application/json; ="}, body: goodProfile, status: 415, code: codeUnsupportedType},
		{name: "body over the limit", method: "POST", path: PathProfiles, header: authJSON(), body: "[" + strings.Repeat(goodProfile+",", 20) + goodProfile + "]", mod: func(o *Options) { o.Limits.MaxBodyBytes = 1000 }, status: 413, code: codeTooLarge},
		{name: "audience body over the limit", method: "POST", path: PathAudiences, header: authJSON(), body: `{"id":"a","name":"` + strings.Repeat("n", 2000) + `"}`, mod: func(o *Options) { o.Limits.MaxBodyBytes = 1000 }, status: 413, code: codeTooLarge},
		{name: "empty body", method: "POST", path: PathProfiles, header: authJSON(), status: 400, code: audience.ErrMalformedJSON, errPath: "$"},
		{name: "not JSON", method: "POST", path: PathProfiles, header: authJSON(), body: "hello", status: 400, code: audience.ErrMalformedJSON, errPath: "$"},
		{name: "truncated JSON", method: "POST", path: PathProfiles, header: authJSON(), body: `[{"identityMap":`, status: 400, code: audience.ErrMalformedJSON},
		{name: "identity namespace not an array", method: "POST", path: PathProfiles, header: authJSON(), body: `{"identityMap":{"email":"a@example.com"}}`, status: 400, code: audience.ErrWrongType, errPath: "$.identityMap.email"},
		{name: "profile not an object", method: "POST", path: PathProfiles, header: authJSON(), body: `[1]`, status: 400, code: audience.ErrWrongType, errPath: "$[0]"},
		{name: "too many profiles", method: "POST", path: PathProfiles, header: authJSON(), body: "[" + goodProfile + "," + goodProfile + "]", mod: func(o *Options) { o.Limits.MaxProfiles = 1 }, status: 400, code: audience.ErrTooManyProfiles},
		{name: "audience id missing", method: "POST", path: PathAudiences, header: authJSON(), body: `{"name":"Shoppers"}`, status: 400, code: codeInvalid, errPath: "$.id"},
		{name: "audience id empty", method: "POST", path: PathAudiences, header: authJSON(), body: `{"id":"","name":"Shoppers"}`, status: 400, code: codeInvalid, errPath: "$.id"},
		{name: "audience id not a string", method: "POST", path: PathAudiences, header: authJSON(), body: `{"id":42,"name":"Shoppers"}`, status: 400, code: audience.ErrWrongType, errPath: "$.id"},
		{name: "audience id with a space", method: "POST", path: PathAudiences, header: authJSON(), body: `{"id":"a b","name":"Shoppers"}`, status: 400, code: codeInvalid, errPath: "$.id"},
		{name: "audience id too long", method: "POST", path: PathAudiences, header: authJSON(), body: `{"id":"` + strings.Repeat("a", 125) + `","name":"Shoppers"}`, status: 400, code: codeInvalid, errPath: "$.id"},
		{name: "audience namespace with a colon", method: "POST", path: PathAudiences, header: authJSON(), body: `{"id":"a","namespace":"x:y","name":"Shoppers"}`, status: 400, code: codeInvalid, errPath: "$.namespace"},
		{name: "audience name missing", method: "POST", path: PathAudiences, header: authJSON(), body: `{"id":"a"}`, status: 400, code: codeInvalid, errPath: "$.name"},
		{name: "audience name blank", method: "POST", path: PathAudiences, header: authJSON(), body: `{"id":"a","name":"  "}`, status: 400, code: codeInvalid, errPath: "$.name"},
		{name: "audience name not a string", method: "POST", path: PathAudiences, header: authJSON(), body: `{"id":"a","name":["x"]}`, status: 400, code: audience.ErrWrongType, errPath: "$.name"},
		{name: "audience name too long", method: "POST", path: PathAudiences, header: authJSON(), body: `{"id":"a","name":"` + strings.Repeat("é", 256) + `"}`, status: 400, code: codeInvalid, errPath: "$.name"},
		{name: "audience name with a control character", method: "POST", path: PathAudiences, header: authJSON(), body: `{"id":"a","name":"x\u0007"}`, status: 400, code: codeInvalid, errPath: "$.name"},
		{name: "audience description too long", method: "POST", path: PathAudiences, header: authJSON(), body: `{"id":"a","name":"n","description":"` + strings.Repeat("d", 1025) + `"}`, status: 400, code: codeInvalid, errPath: "$.description"},
		{name: "audience body an array", method: "POST", path: PathAudiences, header: authJSON(), body: `[]`, status: 400, code: audience.ErrWrongType, errPath: "$"},
		{name: "audience body not JSON", method: "POST", path: PathAudiences, header: authJSON(), body: `{"id":`, status: 400, code: audience.ErrMalformedJSON, errPath: "$"},
		{name: "audience trailing data", method: "POST", path: PathAudiences, header: authJSON(), body: `{"id":"a","name":"n"} {}`, status: 400, code: audience.ErrMalformedJSON, errPath: "$"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hs := newHarness(t, tc.mod)
			if tc.tokenErr != nil {
				hs.tokens.set("", tc.tokenErr)
			}
			rec := hs.do(t, tc.method, tc.path, tc.header, tc.body)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			e := decodeErrorBody(t, rec.Body.Bytes())
			if e.Code != tc.code {
				t.Errorf("code %q, want %q (message %q)", e.Code, tc.code, e.Message)
			}
			if tc.errPath != "" && e.Path != tc.errPath {
				t.Errorf("path %q, want %q (message %q)", e.Path, tc.errPath, e.Message)
			}
			if got := rec.Header().Get("Allow"); got != tc.wantAllow {
				t.Errorf("Allow %q, want %q", got, tc.wantAllow)
			}
			if got := rec.Header().Get("WWW-Authenticate"); tc.wantAuthn != strings.HasPrefix(got, "Bearer") {
				t.Errorf("WWW-Authenticate %q, want a Bearer challenge: %v", got, tc.wantAuthn)
			}
			if tc.status == 503 && rec.Header().Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			if rec.Header().Get(headerRequestID) == "" {
				t.Error("no X-Request-Id")
			}
			if n := len(hs.sender.enqueued()); n != 0 {
				t.Errorf("%d messages enqueued for a failed request", n)
			}
			if strings.Contains(hs.logs.String(), testToken) || strings.Contains(rec.Body.String(), testToken) {
				t.Error("the ingest token reached a log line or the response")
			}
		})
	}
}

func TestServeHTTPAccepts(t *testing.T) {
	tests := []struct {
		name   string
		method string
		path   string
		header map[string]string
		body   string
		status int
	}{
		{name: "healthz", method: "GET", path: PathHealth, status: 200},
		{name: "healthz HEAD", method: "HEAD", path: PathHealth, status: 200},
		{name: "healthz with a wrong token", method: "GET", path: PathHealth, header: map[string]string{"Authorization": "Bearer nope"}, status: 200},
		{name: "json", method: "POST", path: PathProfiles, header: authJSON(), body: goodProfile, status: 202},
		{name: "json utf-8", method: "POST", path: PathProfiles, header: map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "application/json; charset=UTF-8"}, body: goodProfile, status: 202},
		{name: "json suffix type", method: "POST", path: PathProfiles, header: map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "application/vnd.adobe.xed+json"}, body: goodProfile, status: 202},
		{name: "no content type", method: "POST", path: PathProfiles, header: map[string]string{"Authorization": "Bearer " + testToken}, body: goodProfile, status: 202},
		{name: "lowercase bearer", method: "POST", path: PathProfiles, header: map[string]string{"authorization": "bearer " + testToken, "content-type": "application/json"}, body: goodProfile, status: 202},
		{name: "profiles wrapper", method: "POST", path: PathProfiles, header: authJSON(), body: `{"profiles":[` + goodProfile + `]}`, status: 202},
		{name: "nothing to map", method: "POST", path: PathProfiles, header: authJSON(), body: `[]`, status: 202},
		{name: "audience", method: "POST", path: PathAudiences, header: authJSON(), body: `{"id":"aud-1","name":"Shoppers"}`, status: 202},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hs := newHarness(t, nil)
			rec := hs.do(t, tc.method, tc.path, tc.header, tc.body)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if tc.method != "HEAD" && !json.Valid(rec.Body.Bytes()) {
				t.Errorf("body %q is not JSON", rec.Body)
			}
		})
	}
}

func TestProfilesReport(t *testing.T) {
	hs := newHarness(t, nil)
	rec := hs.post(t, PathProfiles, mixedBody)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status %d, body %s", rec.Code, rec.Body)
	}
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"profiles":            2.0,
		"identitiesActivated": 2.0,
		"changesEnqueued":     3.0,
		"messages":            2.0,
		"excluded":            map[string]any{audience.ExcludedUnsupportedNamespace: 1.0, audience.ExcludedOptedOut: 1.0},
		"failed":              map[string]any{audience.FailInvalidEmail: 1.0, audience.FailInvalidStatus: 1.0},
		"failures": []any{
			map[string]any{"reason": audience.FailInvalidEmail, "path": "$[0].identityMap.email[1].id"},
			map[string]any{"reason": audience.FailInvalidStatus, "path": "$[1].segmentMembership.ups.aud-1.status"},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("202 body (-want +got):\n%s", diff)
	}

	msgs := decodeMessages(t, hs.sender.enqueued())
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want 2", len(msgs))
	}
	emailHash := sha256Hex([]byte("jane.doe@example.com"))
	idfaHash := sha256Hex([]byte("6D92078A-8246-4BA4-AE5B-76104861E7DC"))
	t1 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC).UnixNano()
	t2 := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC).UnixNano()
	wantRecords := map[string][]wire.Record{
		"ups:aud-1": {{List: audience.ListEmail, Op: audience.OpAdd, Hash: emailHash, Time: t1}},
		"ups:aud-2": {{List: audience.ListEmail, Op: audience.OpRemove, Hash: emailHash, Time: t1}, {List: audience.ListIDFA, Op: audience.OpAdd, Hash: idfaHash, Time: t2}},
	}
	gotRecords := map[string][]wire.Record{}
	for _, m := range msgs {
		if m.Kind != wire.KindChanges {
			t.Errorf("kind %q, want changes", m.Kind)
		}
		gotRecords[m.Audience.Key()] = append(gotRecords[m.Audience.Key()], m.Records...)
	}
	sortRecords := cmp.Transformer("sort", func(in []wire.Record) []wire.Record {
		out := slices.Clone(in)
		slices.SortFunc(out, func(a, b wire.Record) int { return strings.Compare(string(a.List)+a.Hash, string(b.List)+b.Hash) })
		return out
	})
	if diff := cmp.Diff(wantRecords, gotRecords, sortRecords); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

func TestAudienceEnqueued(t *testing.T) {
	tests := []struct {
		name string
		body string
		want wire.Message
		key  string
	}{
		{
			name: "default namespace",
			body: `{"id":"36a51c13-9dd6-4d2c-8aa3-07d785ea5075","name":" Shoppers ","description":"Bought twice"}`,
			want: wire.Message{Version: wire.Version, Kind: wire.KindAudience, Audience: audience.Ref{Namespace: "ups", ID: "36a51c13-9dd6-4d2c-8aa3-07d785ea5075"}, Name: "Shoppers", Description: "Bought twice"},
			key:  "ups:36a51c13-9dd6-4d2c-8aa3-07d785ea5075",
		},
		{
			name: "own namespace, null description, extra fields",
			body: `{"id":"seg-9","name":"Lapsed","description":null,"namespace":"CustomerAudienceUpload","alias":"x"}`,
			want: wire.Message{Version: wire.Version, Kind: wire.KindAudience, Audience: audience.Ref{Namespace: "CustomerAudienceUpload", ID: "seg-9"}, Name: "Lapsed"},
			key:  "CustomerAudienceUpload:seg-9",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hs := newHarness(t, nil)
			rec := hs.post(t, PathAudiences, tc.body)
			if rec.Code != http.StatusAccepted {
				t.Fatalf("status %d, body %s", rec.Code, rec.Body)
			}
			var resp map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(map[string]string{"externalAudienceId": tc.key}, resp); diff != "" {
				t.Errorf("202 body (-want +got):\n%s", diff)
			}
			msgs := decodeMessages(t, hs.sender.enqueued())
			if len(msgs) != 1 {
				t.Fatalf("%d messages, want 1", len(msgs))
			}
			if diff := cmp.Diff(tc.want, msgs[0]); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSendRetries(t *testing.T) {
	// manyAudiences makes one message per audience.
	manyAudiences := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"identityMap":{"email":[{"id":"a@example.com"}]},"segmentMembership":{"ups":{`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`"aud-` + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `":{"status":"realized"}`)
		}
		b.WriteString(`}}}`)
		return b.String()
	}
	tests := []struct {
		name       string
		audiences  int
		attempts   int
		fail       func(call int, msgs []queue.Outgoing) ([]int, error)
		status     int
		wantCalls  int
		wantSizes  []int
		wantSleeps int
	}{
		{name: "batches of ten", audiences: 25, status: 202, wantCalls: 3, wantSizes: []int{10, 10, 5}},
		{
			name: "partial failure retried", audiences: 12, status: 202, wantCalls: 3, wantSizes: []int{10, 2, 3}, wantSleeps: 1,
			fail: func(call int, _ []queue.Outgoing) ([]int, error) {
				switch call {
				case 1:
					return []int{0, 9, 9}, nil // a repeated index counts once
				case 2:
					return []int{1}, nil
				}
				return nil, nil
			},
		},
		{
			name: "whole call fails once", audiences: 3, status: 202, wantCalls: 2, wantSizes: []int{3, 3}, wantSleeps: 1,
			fail: func(call int, _ []queue.Outgoing) ([]int, error) {
				if call == 1 {
					return nil, errBoom
				}
				return nil, nil
			},
		},
		{
			name: "index out of range fails the batch", audiences: 2, status: 202, wantCalls: 2, wantSizes: []int{2, 2}, wantSleeps: 1,
			fail: func(call int, _ []queue.Outgoing) ([]int, error) {
				if call == 1 {
					return []int{7}, nil
				}
				return nil, nil
			},
		},
		{
			name: "keeps failing", audiences: 2, attempts: 4, status: 503, wantCalls: 4, wantSizes: []int{2, 1, 1, 1}, wantSleeps: 3,
			fail: func(call int, msgs []queue.Outgoing) ([]int, error) {
				return []int{len(msgs) - 1}, nil
			},
		},
		{
			name: "sender down", audiences: 1, attempts: 3, status: 503, wantCalls: 3, wantSizes: []int{1, 1, 1}, wantSleeps: 2,
			fail: func(int, []queue.Outgoing) ([]int, error) { return nil, errBoom },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hs := newHarness(t, func(o *Options) { o.SendRetry.Attempts = tc.attempts })
			hs.sender.fail = tc.fail
			rec := hs.post(t, PathProfiles, manyAudiences(tc.audiences))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			if diff := cmp.Diff(tc.wantSizes, hs.sender.sizes); diff != "" {
				t.Errorf("batch sizes (-want +got):\n%s", diff)
			}
			if hs.sender.calls != tc.wantCalls {
				t.Errorf("%d SendBatch calls, want %d", hs.sender.calls, tc.wantCalls)
			}
			if len(hs.sleeps) != tc.wantSleeps {
				t.Errorf("%d backoff waits, want %d", len(hs.sleeps), tc.wantSleeps)
			}
			for i, d := range hs.sleeps {
				if ceiling := DefaultSendRetry.Ceiling(i + 1); d < 0 || d > ceiling {
					t.Errorf("wait %d is %v, outside [0, %v]", i, d, ceiling)
				}
			}
			sent := hs.sender.enqueued()
			if tc.status == 202 {
				msgs := decodeMessages(t, sent)
				seen := map[string]bool{}
				for _, m := range msgs {
					if seen[m.Audience.Key()] {
						t.Errorf("audience %s enqueued twice", m.Audience.Key())
					}
					seen[m.Audience.Key()] = true
				}
				if len(seen) != tc.audiences {
					t.Errorf("%d audiences enqueued, want %d", len(seen), tc.audiences)
				}
				return
			}
			if got := rec.Header().Get("Retry-After"); got != "5" {
				t.Errorf("Retry-After %q, want 5", got)
			}
			if e := decodeErrorBody(t, rec.Body.Bytes()); e.Code != codeUnavailable {
				t.Errorf("code %q, want %q", e.Code, codeUnavailable)
			}
		})
	}
}

func TestSendStopsAtDeadline(t *testing.T) {
	hs := newHarness(t, nil)
	hs.sender.fail = func(int, []queue.Outgoing) ([]int, error) { return []int{0}, nil }
	// Less time left than the response margin: no wait, no second attempt.
	ctx, cancel := context.WithTimeout(t.Context(), responseMargin/2)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, PathProfiles, strings.NewReader(goodProfile))
	for k, v := range authJSON() {
		req.Header.Set(k, v)
	}
	rec := newRecorder()
	hs.h.ServeHTTP(rec, req)
	if rec.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", rec.status)
	}
	if hs.sender.calls != 1 || len(hs.sleeps) != 0 {
		t.Errorf("%d calls and %d waits, want 1 and 0", hs.sender.calls, len(hs.sleeps))
	}
}

func TestMessageSizeBound(t *testing.T) {
	const maxBytes = 2048
	hs := newHarness(t, func(o *Options) { o.MaxMessageBytes = maxBytes })
	var b strings.Builder
	b.WriteString("[")
	for i := range 200 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"identityMap":{"email":[{"id":"user` + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `@example.com"}]},"segmentMembership":{"ups":{"aud-1":{"status":"realized"},"aud-2":{"status":"exited"}}}}`)
	}
	b.WriteString("]")
	rec := hs.post(t, PathProfiles, b.String())
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status %d, body %s", rec.Code, rec.Body)
	}
	var resp profilesResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	sent := hs.sender.enqueued()
	msgs := decodeMessages(t, sent)
	records := 0
	for i, m := range msgs {
		if len(sent[i].Body) > maxBytes {
			t.Errorf("message %d is %d bytes, over %d", i, len(sent[i].Body), maxBytes)
		}
		records += len(m.Records)
	}
	if resp.ChangesEnqueued != 400 || records != 400 || resp.Messages != len(msgs) || len(msgs) < 4 {
		t.Errorf("changes %d, records %d, messages %d (sent %d); want 400 changes in several messages", resp.ChangesEnqueued, records, resp.Messages, len(msgs))
	}
}

func TestNoPlainIdentifiers(t *testing.T) {
	hs := newHarness(t, nil)
	bodies := []struct {
		path, body string
	}{
		{PathProfiles, mixedBody},
		{PathProfiles, `{"identityMap":{"email":"Jane.Doe@Example.com"}}`},            // a wrong type around an identifier
		{PathProfiles, `[{"identityMap":{"email":[{"id":"Jane.Doe@Example.com"}]}},`}, // truncated after one
		{PathProfiles, `{"identityMap":{"email":[{"id":"not-an-email"}]},"segmentMembership":{"ups":{"a":{"status":"realized"}}}}`},
	}
	var responses strings.Builder
	for _, b := range bodies {
		rec := hs.post(t, b.path, b.body)
		responses.Write(rec.Body.Bytes())
	}
	// An identifier in the path or the method: 404, 405, 400; never logged.
	for _, ev := range []struct{ method, path string }{
		{"GET", "/v1/Jane.Doe@Example.com"},
		{"Jane.Doe@Example.com", PathProfiles},
		{"NOTANEMAIL", PathProfiles},
	} {
		resp, err := hs.h.HandleAPIGateway(t.Context(), apiEvent(ev.method, ev.path, "", nil))
		if err != nil || resp.StatusCode < 400 {
			t.Errorf("%s %s: status %d, error %v; want a 4xx", ev.method, ev.path, resp.StatusCode, err)
		}
		responses.WriteString(resp.Body)
	}
	if strings.Contains(strings.ToLower(hs.logs.String()), "notanemail") {
		t.Error("an unknown method reached a log line")
	}
	logs := hs.logs.String()
	if !strings.Contains(logs, `"requestId"`) {
		t.Fatalf("no request log lines captured: %s", logs)
	}
	for _, m := range hs.sender.enqueued() {
		for _, id := range plainIdentifiers {
			if leaks(m.Body, id) {
				t.Errorf("message body holds the identifier %q", id)
			}
		}
	}
	for _, id := range plainIdentifiers {
		if leaks([]byte(logs), id) {
			t.Errorf("a log line holds the identifier %q", id)
		}
		if leaks([]byte(responses.String()), id) {
			t.Errorf("a response holds the identifier %q", id)
		}
	}
}

func TestRequestLogLine(t *testing.T) {
	ids := []string{"req-1"}
	hs := newHarness(t, func(o *Options) { o.NewRequestID = func() string { id := ids[0]; ids = ids[1:]; return id } })
	rec := hs.post(t, PathProfiles, mixedBody)
	if got := rec.Header().Get(headerRequestID); got != "req-1" {
		t.Errorf("X-Request-Id %q, want req-1", got)
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(hs.logs.String())), &line); err != nil {
		t.Fatalf("want one JSON log line, got %q: %v", hs.logs.String(), err)
	}
	want := map[string]any{"requestId": "req-1", "route": PathProfiles, "method": "POST", "status": 202.0, "profiles": 2.0, "changes": 3.0, "messages": 2.0}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("log %s = %v, want %v", k, line[k], v)
		}
	}
}

func TestNewChecksOptions(t *testing.T) {
	valid := func() Options { return Options{Sender: &fakeSender{}, IngestToken: StaticIngestToken(testToken)} }
	tests := []struct {
		name      string
		mod       func(*Options)
		wantField string // "" means New succeeds
	}{
		{"defaults", func(*Options) {}, ""},
		{"no sender", func(o *Options) { o.Sender = nil }, "Options.Sender"},
		{"no ingest token", func(o *Options) { o.IngestToken = nil }, "Options.IngestToken"},
		{"negative body limit", func(o *Options) { o.Limits.MaxBodyBytes = -1 }, "Options.Limits.MaxBodyBytes"},
		{"negative max profiles", func(o *Options) { o.Limits.MaxProfiles = -1 }, "Options.Limits.MaxProfiles"},
		{"negative message size", func(o *Options) { o.MaxMessageBytes = -1 }, "Options.MaxMessageBytes"},
		{"negative send attempts", func(o *Options) { o.SendRetry.Attempts = -1 }, "Options.SendRetry.Attempts"},
		{"negative send backoff", func(o *Options) { o.SendRetry.Base = -time.Second }, "Options.SendRetry.Base"},
		{"negative retry-after", func(o *Options) { o.RetryAfter = -time.Second }, "Options.RetryAfter"},
		{"negative token TTL", func(o *Options) { o.TokenTTL = -time.Second }, "Options.TokenTTL"},
		{"negative token refresh", func(o *Options) { o.TokenRefresh = -time.Second }, "Options.TokenRefresh"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := valid()
			tc.mod(&opts)
			h, err := New(opts)
			if tc.wantField == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if h.maxBodyBytes != config.DefaultMaxBodyBytes || h.sendRetry.Attempts != DefaultSendRetry.Attempts || h.logger != slog.Default() {
					t.Errorf("zero options did not take the defaults: body %d, attempts %d, logger default %v",
						h.maxBodyBytes, h.sendRetry.Attempts, h.logger == slog.Default())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantField) {
				t.Fatalf("New = %v, want an error naming %s", err, tc.wantField)
			}
		})
	}
}
