package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/time/rate"

	"github.com/pinlist/pinlist/internal/loadgen"
	"github.com/pinlist/pinlist/internal/local"
)

// corpusDir is the bad-input corpus.
const corpusDir = "../../testdata/bad"

// TestBadInputCorpus posts every request of testdata/bad through the HTTP
// layer of a running local stack and checks the status, the JSON error
// shape and its path, or, for a 202, the counts and failure paths (which
// the independent oracle must agree with). Afterwards the server must
// still be healthy, and the simulator must hold exactly what the accepted
// bodies' good parts add up to, a last good request included.
func TestBadInputCorpus(t *testing.T) {
	cases, err := loadgen.LoadBadCases(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 40 {
		t.Fatalf("the corpus has %d cases, want at least 40", len(cases))
	}
	const token = "corpus-ingest-token"
	s, err := local.Start(context.Background(), local.Config{
		Addr:         "127.0.0.1:0",
		SimAddr:      "127.0.0.1:0",
		DataDir:      t.TempDir(),
		IngestToken:  token,
		PollInterval: 20 * time.Millisecond,
		// Many bodies at once: the pipeline, not the write budget, is tested.
		SimWriteLimit: local.NoSimWriteLimit,
		WriteRate:     rate.Inf,
	})
	if err != nil {
		t.Fatalf("start the local stack: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close the local stack: %v", err)
		}
	})
	ingest := loadgen.NewIngest(s.IngestURL(), token)
	sim := loadgen.NewSim(s.SimulatorURL(), s.AdAccountID())
	oracle := loadgen.NewOracle()

	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			a, err := ingest.Do(t.Context(), request(c, token))
			if err != nil {
				t.Fatalf("%v", err)
			}
			if a.Status != c.Status {
				t.Fatalf("HTTP %d, want %d: %.300s", a.Status, c.Status, a.Body)
			}
			if a.Status/100 != 2 {
				checkError(t, c, a)
				return
			}
			if route(c) != "/v1/profiles" {
				return
			}
			if c.Oracle != nil && !*c.Oracle {
				checkAccepted(t, c, a.Accepted, nil)
				return
			}
			st, err := oracle.AddBody(c.Body, time.Now())
			if err != nil {
				t.Fatalf("the server accepted a body the oracle refuses: %v", err)
			}
			checkAccepted(t, c, a.Accepted, &st)
		})
	}

	// Still healthy, and a good request after all that is applied.
	if err := ingest.Healthy(t.Context()); err != nil {
		t.Fatalf("after the corpus: %v", err)
	}
	last := []byte(`{"identityMap":{"email":[{"id":"corpus.after@example.com"}]},"segmentMembership":{"ups":{"5b0f8a3e-2f1c-4d8e-9a55-0c1d2e3f4a5b":{"status":"realized","lastQualificationTime":"2026-03-02T00:00:00Z"}}}}`)
	a, err := ingest.PostProfiles(t.Context(), last)
	if err != nil || a.Status != http.StatusAccepted {
		t.Fatalf("a good request after the corpus: %v %+v", err, a)
	}
	if _, err := oracle.AddBody(last, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitForMembership(t, sim, oracle, 60*time.Second)
}

// route is the case's route.
func route(c loadgen.BadCase) string {
	if c.Route == "" {
		return "/v1/profiles"
	}
	return c.Route
}

// request turns a case into the request to send.
func request(c loadgen.BadCase, token string) loadgen.Request {
	r := loadgen.Request{Method: c.Method, Path: route(c), Body: bytes.NewReader(c.Body)}
	switch c.ContentType {
	case "":
	case "-":
		r.NoContentType = true
	default:
		r.ContentType = c.ContentType
	}
	switch c.Authorization {
	case "":
	case "-":
		r.NoAuthorization = true
	default:
		r.Authorization = strings.ReplaceAll(c.Authorization, "{token}", token)
	}
	return r
}

// checkError checks an error answer: {"error":{"code","message","path"}}
// (Ingest.Do has checked the shape), the code and the path.
func checkError(t *testing.T, c loadgen.BadCase, a loadgen.Answer) {
	t.Helper()
	var raw struct {
		Error map[string]json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(a.Body, &raw); err != nil {
		t.Fatalf("error answer: %v", err)
	}
	if keys := strings.Join(sortedKeys(raw.Error), ","); keys != "code,message,path" {
		t.Fatalf("error object has keys %s, want code,message,path: %s", keys, a.Body)
	}
	if a.Error.Code != c.Code {
		t.Errorf("error code %q, want %q (%s)", a.Error.Code, c.Code, a.Error.Message)
	}
	if c.ErrorPath != nil && a.Error.Path != *c.ErrorPath {
		t.Errorf("error path %q, want %q (%s)", a.Error.Path, *c.ErrorPath, a.Error.Message)
	}
	if ct := a.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if a.Status == http.StatusUnauthorized && a.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("401 without WWW-Authenticate")
	}
	if a.Status == http.StatusMethodNotAllowed && a.Header.Get("Allow") == "" {
		t.Errorf("405 without Allow")
	}
}

// checkAccepted checks a 202's counts against the case and, unless st is
// nil, the oracle's.
func checkAccepted(t *testing.T, c loadgen.BadCase, got *loadgen.Accepted, st *loadgen.BodyStats) {
	t.Helper()
	type counts struct {
		Activated, Changes int
		Excluded, Failed   map[string]int
	}
	nonZero := cmpopts.EquateEmpty()
	server := counts{got.Activated, got.ChangesEnqueued, got.Excluded, got.Failed}
	if diff := cmp.Diff(counts{c.Activated, c.Changes, c.Excluded, c.Failed}, server, nonZero); diff != "" {
		t.Errorf("202 counts differ from the manifest (-want +got):\n%s", diff)
	}
	if st != nil {
		if diff := cmp.Diff(counts{st.Activated, st.Changes, st.Excluded, st.Failed}, server, nonZero); diff != "" {
			t.Errorf("202 counts differ from the oracle's (-oracle +server):\n%s", diff)
		}
	}
	if c.Failures != nil {
		if diff := cmp.Diff(c.Failures, got.Failures); diff != "" {
			t.Errorf("failures (-want +got):\n%s", diff)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
