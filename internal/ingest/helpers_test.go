package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pinlist/pinlist/internal/fake"
	"github.com/pinlist/pinlist/internal/queue"
	"github.com/pinlist/pinlist/internal/retry"
	"github.com/pinlist/pinlist/internal/wire"
)

const testToken = "s3cret-ingest-token"

// fakeSender records every SendBatch call. fail, when set, decides per call
// (numbered from 1) which entries fail or whether the whole call fails.
type fakeSender struct {
	mu    sync.Mutex
	calls int
	sent  []queue.Outgoing // the entries that were enqueued, in order
	sizes []int            // entries per call
	fail  func(call int, msgs []queue.Outgoing) ([]int, error)
}

func (f *fakeSender) SendBatch(_ context.Context, msgs []queue.Outgoing) ([]int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.sizes = append(f.sizes, len(msgs))
	var failed []int
	if f.fail != nil {
		var err error
		failed, err = f.fail(f.calls, msgs)
		if err != nil {
			return nil, err
		}
	}
	for _, i := range failed {
		if i < 0 || i >= len(msgs) {
			return failed, nil // a broken answer: nothing was enqueued
		}
	}
	for i, m := range msgs {
		if !containsInt(failed, i) {
			f.sent = append(f.sent, m)
		}
	}
	return failed, nil
}

func (f *fakeSender) enqueued() []queue.Outgoing {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]queue.Outgoing(nil), f.sent...)
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// fakeTokens is an IngestTokenSource whose value can change; it counts fetches.
type fakeTokens struct {
	mu      sync.Mutex
	token   string
	err     error
	fetches int
}

func (f *fakeTokens) IngestToken(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fetches++
	return f.token, f.err
}

func (f *fakeTokens) set(tok string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.token, f.err = tok, err
}

func (f *fakeTokens) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fetches
}

// fakeClock is a clock the test moves by hand.
type fakeClock = fake.Clock

// syncBuffer is output a test reads while it is being written.
type syncBuffer = fake.Buffer

// harness is a Handler wired to fakes, with its log captured.
type harness struct {
	h      *Handler
	sender *fakeSender
	tokens *fakeTokens
	clock  *fakeClock
	logs   *syncBuffer
	sleeps []time.Duration
}

func newHarness(t testing.TB, mod func(*Options)) *harness {
	t.Helper()
	hs := &harness{
		sender: &fakeSender{},
		tokens: &fakeTokens{token: testToken},
		clock:  fake.NewClock(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)),
		logs:   &syncBuffer{},
	}
	var mu sync.Mutex
	opts := Options{
		Sender:      hs.sender,
		IngestToken: hs.tokens,
		Logger:      slog.New(slog.NewJSONHandler(hs.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:         hs.clock.Now,
		SendRetry: retry.Policy{Sleep: func(_ context.Context, d time.Duration) error {
			mu.Lock()
			defer mu.Unlock()
			hs.sleeps = append(hs.sleeps, d)
			return nil
		}},
	}
	if mod != nil {
		mod(&opts)
	}
	h, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	hs.h = h
	return hs
}

// do serves one request through ServeHTTP.
func (hs *harness) do(t testing.TB, method, path string, header map[string]string, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	hs.h.ServeHTTP(rec, req)
	return rec
}

// post is an authorised JSON POST.
func (hs *harness) post(t testing.TB, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	return hs.do(t, http.MethodPost, path, authJSON(), body)
}

func authJSON() map[string]string {
	return map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "application/json"}
}

// decodeError parses an error response and checks its shape: exactly
// {"error":{"code","message","path"}}.
func decodeErrorBody(t testing.TB, body []byte) errorDetail {
	t.Helper()
	var raw map[string]map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("error body %q is not JSON: %v", body, err)
	}
	if len(raw) != 1 || raw["error"] == nil {
		t.Fatalf("error body %s: want exactly one key \"error\"", body)
	}
	for _, k := range []string{"code", "message", "path"} {
		if _, ok := raw["error"][k]; !ok {
			t.Errorf("error body %s: no %q", body, k)
		}
	}
	if len(raw["error"]) != 3 {
		t.Errorf("error body %s: want only code, message and path", body)
	}
	var e errorBody
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %s: %v", body, err)
	}
	if e.Error.Code == "" || e.Error.Message == "" {
		t.Errorf("error body %s: empty code or message", body)
	}
	return e.Error
}

// decodeMessages decodes every enqueued body with wire.Decode and
// checks the group and dedup IDs.
func decodeMessages(t testing.TB, msgs []queue.Outgoing) []wire.Message {
	t.Helper()
	out := make([]wire.Message, 0, len(msgs))
	for i, m := range msgs {
		dm, err := wire.Decode(m.Body)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if m.GroupID != dm.Audience.Key() {
			t.Errorf("message %d: group %q, want the audience key %q", i, m.GroupID, dm.Audience.Key())
		}
		if want := sha256Hex(m.Body); m.DedupID != want {
			t.Errorf("message %d: dedup ID %q, want the body's SHA-256 %q", i, m.DedupID, want)
		}
		out = append(out, dm)
	}
	return out
}

var errBoom = errors.New("boom")

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// leaks reports whether body holds the identifier id as text (any case) or
// hex-encoded: a body may hold hashes, never an identifier itself.
func leaks(body []byte, id string) bool {
	lower := strings.ToLower(string(body))
	for _, form := range []string{id, strings.ToLower(id), strings.ToUpper(id)} {
		if strings.Contains(lower, strings.ToLower(form)) || strings.Contains(lower, hex.EncodeToString([]byte(form))) {
			return true
		}
	}
	return false
}

func TestLeaks(t *testing.T) {
	email := "Jane.Doe@Example.com"
	tests := []struct {
		name string
		body string
		want bool
	}{
		{"plain", `{"x":"jane.doe@example.com"}`, true},
		{"upper", `JANE.DOE@EXAMPLE.COM`, true},
		{"hex of the lowercase form", `{"h":"` + hex.EncodeToString([]byte("jane.doe@example.com")) + `0000"}`, true},
		{"hash", `{"h":"` + sha256Hex([]byte("jane.doe@example.com")) + `"}`, false},
	}
	for _, tc := range tests {
		if got := leaks([]byte(tc.body), email); got != tc.want {
			t.Errorf("%s: leaks = %v, want %v", tc.name, got, tc.want)
		}
	}
}
