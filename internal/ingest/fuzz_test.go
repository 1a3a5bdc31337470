package ingest

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/pinlist/pinlist/internal/loadgen"
	"github.com/pinlist/pinlist/internal/queue"
)

// FuzzHandleAPIGateway drives the whole HTTP layer through the Lambda adapter
// with arbitrary methods, paths, headers and bodies. It must never panic,
// never answer 5xx except 503 when the sender refuses, always answer JSON in
// the documented error shape, and enqueue only well-formed messages.
func FuzzHandleAPIGateway(f *testing.F) {
	examples, _ := filepath.Glob("testdata/aep/*.json")
	for _, name := range examples {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add("POST", PathProfiles, "application/json", true, string(b), false, false)
	}
	// The bad-input corpus (testdata/bad, issue 8) seeds it too.
	bad, err := loadgen.BadCorpus("../../testdata/bad")
	if err != nil {
		f.Fatal(err)
	}
	for _, b := range bad {
		f.Add("POST", PathProfiles, "application/json", true, string(b), false, false)
	}
	f.Add("POST", PathProfiles, "application/json", true, mixedBody, false, false)
	f.Add("POST", PathProfiles, "application/json", true, mixedBody, false, true)
	f.Add("POST", PathProfiles, "application/json; charset=utf-8", true, base64.StdEncoding.EncodeToString([]byte(goodProfile)), true, false)
	f.Add("POST", PathProfiles, "", false, goodProfile, false, false)
	f.Add("POST", PathProfiles, "text/plain", true, "hello", false, false)
	f.Add("POST", PathAudiences, "application/json", true, `{"id":"a","name":"n","description":"d","namespace":"ns"}`, false, false)
	f.Add("POST", PathAudiences, "application/json", true, `{"id":"a","name":"n"}`, false, true)
	f.Add("POST", PathAudiences, "application/json", true, `{"id":["a"]}`, false, false)
	f.Add("GET", PathHealth, "", false, "", false, false)
	f.Add("DELETE", "/v1/../healthz", "", true, "", false, false)
	f.Add("POST", "/%zz", "application/json", true, "{", true, false)
	f.Fuzz(func(t *testing.T, method, path, contentType string, authorized bool, body string, isBase64, failSend bool) {
		hs := newHarness(t, func(o *Options) { o.SendRetry.Attempts = 2; o.Limits.MaxBodyBytes = 64 << 10 })
		if failSend {
			hs.sender.fail = func(_ int, msgs []queue.Outgoing) ([]int, error) { return []int{len(msgs) - 1}, nil }
		}
		headers := map[string]string{}
		if contentType != "" {
			headers["content-type"] = contentType
		}
		if authorized {
			headers["authorization"] = "Bearer " + testToken
		}
		ev := apiEvent(method, path, body, headers)
		ev.IsBase64Encoded = isBase64
		resp, err := hs.h.HandleAPIGateway(t.Context(), ev)
		if err != nil {
			t.Fatalf("HandleAPIGateway error: %v", err)
		}
		switch {
		case resp.StatusCode == http.StatusServiceUnavailable:
			if !failSend {
				t.Fatalf("503 without a sender failure: %s", resp.Body)
			}
		case resp.StatusCode >= 500:
			t.Fatalf("status %d: %s", resp.StatusCode, resp.Body)
		case resp.StatusCode >= 400:
			decodeErrorBody(t, []byte(resp.Body))
		}
		if !json.Valid([]byte(resp.Body)) {
			t.Fatalf("status %d with a body that is not JSON: %q", resp.StatusCode, resp.Body)
		}
		if resp.StatusCode == http.StatusAccepted && failSend && len(hs.sender.sizes) > 0 {
			t.Fatalf("202 although the sender kept refusing")
		}
		decodeMessages(t, hs.sender.enqueued())
	})
}
