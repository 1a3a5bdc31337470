package local

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/time/rate"

	"github.com/pinlist/pinlist/internal/fake"
	"github.com/pinlist/pinlist/internal/pinterestsim"
)

// syncBuffer is output a test reads while it is being written.
type syncBuffer = fake.Buffer

// testStack is a Stack started in-process on free ports, with its captured
// stdout and logs.
type testStack struct {
	*Stack
	cfg    Config
	stdout *syncBuffer
	logs   *syncBuffer
}

// testConfig is a Config for tests: free ports, a fresh data directory,
// short intervals, stdout and logs captured.
func testConfig(t *testing.T) (Config, *syncBuffer, *syncBuffer) {
	t.Helper()
	stdout, logs := &syncBuffer{}, &syncBuffer{}
	return Config{
		Addr:          "127.0.0.1:0",
		SimAddr:       "127.0.0.1:0",
		DataDir:       filepath.Join(t.TempDir(), "data"), // created by Start
		PollInterval:  20 * time.Millisecond,
		BatchWindow:   50 * time.Millisecond, // the window's path, without a second's wait per step
		ProgressEvery: 50 * time.Millisecond,
		RetryBase:     20 * time.Millisecond,
		RetryMax:      200 * time.Millisecond,
		// The pipeline under test, not Pinterest's write budget (pinterest's
		// own tests cover the pace against the simulator's budget).
		SimWriteLimit: NoSimWriteLimit,
		WriteRate:     rate.Inf,
		Stdout:        stdout,
		Logger:        slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, stdout, logs
}

// startStack starts a stack on cfg and closes it at the end of the test.
func startStack(t *testing.T, cfg Config, stdout, logs *syncBuffer) *testStack {
	t.Helper()
	s, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if t.Failed() {
			t.Logf("stack stdout:\n%s\nstack logs:\n%s", stdout, logs)
		}
	})
	return &testStack{Stack: s, cfg: cfg, stdout: stdout, logs: logs}
}

// newStack starts a stack with the test defaults, changed by mutate.
func newStack(t *testing.T, mutate func(*Config)) *testStack {
	t.Helper()
	cfg, stdout, logs := testConfig(t)
	if mutate != nil {
		mutate(&cfg)
	}
	return startStack(t, cfg, stdout, logs)
}

// post sends body to the ingest route path with the stack's token and
// returns the status and the decoded JSON answer.
func (s *testStack) post(t *testing.T, path string, body []byte) (int, map[string]any) {
	t.Helper()
	return postJSON(t, s.IngestURL()+path, s.IngestToken(), "application/json", body)
}

func postJSON(t *testing.T, url, token, contentType string, body []byte) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, decodeAnswer(t, resp)
}

func decodeAnswer(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("answer %d is not a JSON object: %v: %q", resp.StatusCode, err, raw)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("answer %d has Content-Type %q, want application/json", resp.StatusCode, ct)
	}
	return out
}

// mustAccept posts body to /v1/profiles and fails unless it is accepted.
func (s *testStack) mustAccept(t *testing.T, body []byte) map[string]any {
	t.Helper()
	status, ans := s.post(t, "/v1/profiles", body)
	if status != http.StatusAccepted {
		t.Fatalf("POST /v1/profiles = %d %v, want 202", status, ans)
	}
	return ans
}

// membership is what a simulator holds: "<ns>:<id> <TYPE>" → sorted hashes.
type membership map[string][]string

// simMembership reads the simulator's state over its inspection API and
// returns the members of the ad account's pinlist lists. Empty lists are
// left out, so that a list emptied by exits equals no list.
func simMembership(t *testing.T, simRoot, adAccount string) membership {
	t.Helper()
	resp, err := http.Get(simRoot + "/_sim/state")
	if err != nil {
		t.Fatalf("GET /_sim/state: %v", err)
	}
	defer resp.Body.Close()
	var st pinterestsim.State
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("decode /_sim/state: %v", err)
	}
	m := membership{}
	for _, l := range st.AdAccounts[adAccount].CustomerLists {
		key, ok := stableListName(l.Name)
		if !ok {
			t.Fatalf("the simulator has a list named %q, not one of pinlist's", l.Name)
		}
		if _, dup := m[key]; dup {
			t.Fatalf("two lists for %s", key)
		}
		if !strings.HasSuffix(key, " "+l.ListType) {
			t.Fatalf("list %q has type %s", l.Name, l.ListType)
		}
		if len(l.Records) > 0 {
			m[key] = l.Records
		}
	}
	return m
}

// stableListName is "<ns>:<id> <TYPE>" of a list named "pinlist <ns>:<id>
// <TYPE>[ - <display name>]".
func stableListName(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "pinlist ")
	if !ok {
		return "", false
	}
	key, rest, ok := strings.Cut(rest, " ")
	if !ok {
		return "", false
	}
	typ, _, _ := strings.Cut(rest, " ")
	return key + " " + typ, true
}

// waitMembership polls the simulator until it holds want, and fails with the
// difference when it does not within the bound.
func waitMembership(t *testing.T, simRoot, adAccount string, want membership) {
	t.Helper()
	var got membership
	deadline := time.Now().Add(30 * time.Second)
	for {
		got = simMembership(t, simRoot, adAccount)
		if cmp.Equal(got, want, cmpopts.EquateEmpty()) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the simulator's lists never matched (-want +got):\n%s", cmp.Diff(want, got, cmpopts.EquateEmpty()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFor polls cond until it holds, failing after a bound with what.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---- The expected membership, computed independently from the input ----

// Identity kinds of the test model, as AEP namespaces.
const (
	nsEmail = "email"
	nsGAID  = "gaid"
	nsIDFA  = "idfa"
)

// ident is one identity as sent.
type ident struct{ ns, id string }

// hashed is the identity as Pinterest gets it, and its list type: the
// mapping rules of ARCHITECTURE.md, written out again here.
func (i ident) hashed() (listType, hash string) {
	var norm string
	switch strings.ToLower(i.ns) {
	case nsEmail:
		listType, norm = "EMAIL", strings.ToLower(strings.TrimSpace(i.id))
	case nsGAID:
		listType, norm = "MAID", strings.ToLower(i.id)
	case nsIDFA:
		listType, norm = "IDFA", strings.ToUpper(i.id)
	default:
		panic("unknown namespace " + i.ns)
	}
	sum := sha256.Sum256([]byte(norm))
	return listType, hex.EncodeToString(sum[:])
}

// membershipEvent is one audience membership of a profile.
type membershipEvent struct {
	audience string // AEP audience ID in namespace ups
	status   string // realized, existing, exited
	at       time.Time
}

// profile is one AEP profile of the test model.
type profile struct {
	ids    []ident
	events []membershipEvent
}

// aepJSON is the profile as AEP sends it.
func (p profile) aepJSON() map[string]any {
	idMap := map[string][]map[string]string{}
	for _, i := range p.ids {
		idMap[i.ns] = append(idMap[i.ns], map[string]string{"id": i.id})
	}
	segs := map[string]any{}
	for _, e := range p.events {
		segs[e.audience] = map[string]string{"status": e.status, "lastQualificationTime": e.at.UTC().Format(time.RFC3339Nano)}
	}
	return map[string]any{"identityMap": idMap, "segmentMembership": map[string]any{"ups": segs}}
}

// body is a POST /v1/profiles body for profiles.
func body(t *testing.T, profiles ...profile) []byte {
	t.Helper()
	ps := make([]map[string]any, len(profiles))
	for i, p := range profiles {
		ps[i] = p.aepJSON()
	}
	b, err := json.Marshal(map[string]any{"profiles": ps})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// model computes the expected membership from every profile sent, in order:
// for each (audience, list type, hash) the membership with the latest event
// time wins, a later one on a tie.
type model struct {
	latest map[string]modelEntry // "<audience key> <TYPE> <hash>"
}

type modelEntry struct {
	in bool
	at time.Time
}

func newModel() *model { return &model{latest: map[string]modelEntry{}} }

func (m *model) add(profiles ...profile) {
	for _, p := range profiles {
		for _, e := range p.events {
			for _, i := range p.ids {
				lt, h := i.hashed()
				k := "ups:" + e.audience + " " + lt + " " + h
				if old, ok := m.latest[k]; ok && old.at.After(e.at) {
					continue
				}
				m.latest[k] = modelEntry{in: e.status != "exited", at: e.at}
			}
		}
	}
}

func (m *model) membership() membership {
	out := membership{}
	for k, e := range m.latest {
		if !e.in {
			continue
		}
		i := strings.LastIndexByte(k, ' ')
		out[k[:i]] = append(out[k[:i]], k[i+1:])
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}

// plainEmails are the plain addresses among profiles, as sent.
func plainEmails(profiles ...profile) []string {
	set := map[string]bool{}
	for _, p := range profiles {
		for _, i := range p.ids {
			if i.ns == nsEmail {
				set[strings.TrimSpace(i.id)] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// gen makes deterministic test identities.
type gen struct{ n int }

func (g *gen) next() int { g.n++; return g.n }

// email is an address with the case and spacing callers send.
func (g *gen) email() ident {
	n := g.next()
	local := fmt.Sprintf("Person.%d", n)
	if n%3 == 0 {
		return ident{nsEmail, "  " + local + "@Example.COM "}
	}
	return ident{nsEmail, strings.ToLower(local) + "@example.com"}
}

// gaid and idfa are UUIDs, in the case they are not normalised to half of
// the time.
func (g *gen) gaid() ident {
	n := g.next()
	id := fmt.Sprintf("%08x-aaaa-4bbb-8ccc-%012x", n, n*7919)
	if n%2 == 0 {
		id = strings.ToUpper(id)
	}
	return ident{nsGAID, id}
}

func (g *gen) idfa() ident {
	n := g.next()
	id := fmt.Sprintf("%08X-DDDD-4EEE-9FFF-%012X", n, n*104729)
	if n%2 == 0 {
		id = strings.ToLower(id)
	}
	return ident{nsIDFA, id}
}
