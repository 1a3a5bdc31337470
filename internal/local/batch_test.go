package local

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/pinlist/pinlist/internal/pinterestsim"
)

// TestBatchesAboveTenAndTheWindow: with a batching window far longer than
// the test, an audience's messages wait until a full batch of them does;
// then that batch, larger than SQS's 10, goes through the real upload
// handler as one event and makes one Pinterest write for its one list.
func TestBatchesAboveTenAndTheWindow(t *testing.T) {
	const size = 25
	s := newStack(t, func(c *Config) {
		c.Workers = 1
		c.BatchSize = size
		c.BatchWindow = time.Hour
	})
	var g gen
	m := newModel()
	var all []profile
	for i := range size {
		// One profile with one email per request: one queue message each.
		p := profile{ids: []ident{g.email()}, events: []membershipEvent{{audA, "realized", t0.Add(time.Duration(i) * time.Second)}}}
		if i == size-1 {
			// Held: one message short of a full batch, inside the window.
			progress, err := s.Progress(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if progress.ReceivedMessages != size-1 || progress.Queued != size-1 || progress.InFlight != 0 || progress.AppliedMessages != 0 {
				t.Fatalf("before the batch is full: progress %+v, want %d messages waiting and none delivered", progress, size-1)
			}
		}
		s.mustAccept(t, body(t, p))
		m.add(p)
		all = append(all, p)
	}
	waitMembership(t, s.SimulatorURL(), s.AdAccountID(), m.membership())

	waitFor(t, "every message applied and deleted", func() bool {
		p, err := s.Progress(t.Context())
		return err == nil && p.AppliedMessages == size && p.Queued+p.InFlight == 0
	})
	resp, err := http.Get(s.SimulatorURL() + "/_sim/calls")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var calls map[string]int
	if err := json.NewDecoder(resp.Body).Decode(&calls); err != nil {
		t.Fatal(err)
	}
	// The list is created with the batch's records: one write in all.
	if got := calls[pinterestsim.RouteCustomerListsCreate] + calls[pinterestsim.RouteCustomerListsUpdate]; got != 1 {
		t.Errorf("customer list writes = %d, want 1 for %d messages of one list in one batch (calls %v)", got, size, calls)
	}
	assertNoPlainEmails(t, s, plainEmails(all...))
}
