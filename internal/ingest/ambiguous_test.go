package ingest

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pinlist/pinlist/internal/audience"
)

// TestAmbiguousAndTooDeepBodies checks the two answers to input that
// cannot be read one way only: a key repeated in an object the parser
// reads, and nesting deeper than encoding/json's 10,000. Both are 400s
// that name the code and the path, and nothing is enqueued.
func TestAmbiguousAndTooDeepBodies(t *testing.T) {
	tests := []struct {
		name string
		body string
		code string
		path string
	}{
		{"profiles twice", `{"profiles":[` + goodProfile + `],"profiles":[]}`, audience.ErrDuplicateKey, "$.profiles"},
		{"id twice", `[{"identityMap":{"email":[{"id":"a@example.com","id":"b@example.com"}]}}]`, audience.ErrDuplicateKey, "$[0].identityMap.email[0].id"},
		{"status twice", `[{"segmentMembership":{"ups":{"x":{"status":"realized","status":"exited"}}}}]`, audience.ErrDuplicateKey, "$[0].segmentMembership.ups.x.status"},
		{"an audience key that could be an email, twice", `[{"segmentMembership":{"ups":{"a@example.com":{},"a@example.com":{}}}}]`, audience.ErrDuplicateKey, "$[0].segmentMembership.ups[?]"},
		{"nesting 10,001 deep", `[{"attributes":` + strings.Repeat("[", 9_999) + strings.Repeat("]", 9_999) + `}]`, audience.ErrTooDeep, "$[0]"},
		{"nesting 100,000 deep", strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000), audience.ErrTooDeep, "$[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t, nil)
			rec := hs.post(t, PathProfiles, tt.body)
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", rec.Code, rec.Body)
			}
			e := decodeErrorBody(t, rec.Body.Bytes())
			if e.Code != tt.code || e.Path != tt.path {
				t.Errorf("error %q at %q, want %q at %q (%s)", e.Code, e.Path, tt.code, tt.path, e.Message)
			}
			if strings.Contains(rec.Body.String(), "a@example.com") || strings.Contains(rec.Body.String(), "b@example.com") {
				t.Errorf("the answer quotes an identifier: %s", rec.Body)
			}
			if n := len(hs.sender.enqueued()); n != 0 {
				t.Errorf("%d messages enqueued for a refused body", n)
			}
		})
	}
}
