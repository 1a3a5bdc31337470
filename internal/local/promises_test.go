package local

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestErasureAndDeletionEndToEnd runs the promises through the local
// stack: an email in three audiences' EMAIL lists and a GAID in one MAID
// list are erased over POST /v1/erasure; a join stamped before the erasure
// that arrives later adds nobody; DELETE /v1/audiences/{id} empties an
// audience's lists. No plain email reaches an answer, a log line or a file.
func TestErasureAndDeletionEndToEnd(t *testing.T) {
	s := newStack(t, nil)
	var g gen
	erased, kept, gaid := g.email(), g.email(), g.gaid()
	p1 := profile{ids: []ident{erased, kept}, events: []membershipEvent{{audA, "realized", t0}, {audB, "realized", t0}, {audC, "realized", t0}}}
	p2 := profile{ids: []ident{gaid, kept}, events: []membershipEvent{{audA, "realized", t0}}}
	s.mustAccept(t, body(t, p1, p2))
	before := newModel()
	before.add(p1, p2)
	waitMembership(t, s.SimulatorURL(), s.AdAccountID(), before.membership())

	var answers []string
	status, ans := s.post(t, "/v1/erasure", body(t, profile{ids: []ident{erased, gaid}}))
	if status != http.StatusAccepted || ans["identifiersErased"] != float64(2) {
		t.Fatalf("POST /v1/erasure = %d %v", status, ans)
	}
	raw, _ := json.Marshal(ans)
	answers = append(answers, string(raw))
	after := newModel()
	after.add(profile{ids: []ident{kept}, events: p1.events}, profile{ids: []ident{kept}, events: p2.events})
	waitMembership(t, s.SimulatorURL(), s.AdAccountID(), after.membership())

	// A join stamped before the erasure (t0 is in the past) arrives late.
	applied := s.appliedMessages(t)
	late := profile{ids: []ident{erased}, events: []membershipEvent{{audA, "realized", t0.Add(time.Hour)}}}
	raw, _ = json.Marshal(s.mustAccept(t, body(t, late)))
	answers = append(answers, string(raw))
	waitFor(t, "the late join to be recorded", func() bool { return s.appliedMessages(t) > applied })
	s.wakeFlusher()
	waitMembership(t, s.SimulatorURL(), s.AdAccountID(), after.membership())

	// The end of audience B.
	req, _ := http.NewRequest(http.MethodDelete, s.IngestURL()+"/v1/audiences/ups:"+audB, nil)
	req.Header.Set("Authorization", "Bearer "+s.IngestToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE /v1/audiences = %d", resp.StatusCode)
	}
	gone := after.membership()
	delete(gone, "ups:"+audB+" EMAIL")
	waitMembership(t, s.SimulatorURL(), s.AdAccountID(), gone)

	for _, a := range answers {
		if strings.Contains(strings.ToLower(a), strings.ToLower(strings.TrimSpace(erased.id))) {
			t.Errorf("an answer holds the plain email: %s", a)
		}
	}
	assertNoPlainEmails(t, s, plainEmails(p1))
}

// appliedMessages is how many queue messages the stack recorded.
func (s *testStack) appliedMessages(t *testing.T) int64 {
	t.Helper()
	p, err := s.Progress(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return p.AppliedMessages
}
