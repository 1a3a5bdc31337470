package local

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pinlist/pinlist/internal/pinterestsim"
	"github.com/pinlist/pinlist/internal/token"
)

// t0 is the event time the generated memberships start from.
var t0 = time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)

// The audiences of the generated tests.
const (
	audA = "11111111-1111-4111-8111-111111111111"
	audB = "22222222-2222-4222-8222-222222222222"
	audC = "33333333-3333-4333-8333-333333333333"
)

// TestExampleProfiles posts the repository's quick-start example and the
// AEP documentation's examples, and checks the lists against memberships
// worked out by hand from the files.
func TestExampleProfiles(t *testing.T) {
	s := newStack(t, nil)
	for _, f := range []string{
		"../../examples/profiles.json",
		"testdata/aep/segments-identities-input-profile1-realized-and-exited.json",
		"testdata/aep/segments-identities-input-profile2-realized.json",
		"testdata/aep/aggkey-identity-input-profile1-email-phone-idfa-gaid.json",
	} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ans := s.mustAccept(t, b)
		t.Logf("%s: %v", filepath.Base(f), ans)
	}

	email := func(addr string) string { _, h := ident{nsEmail, addr}.hashed(); return h }
	gaid := func(id string) string { _, h := ident{nsGAID, id}.hashed(); return h }
	idfa := func(id string) string { _, h := ident{nsIDFA, id}.hashed(); return h }
	const (
		news = "ups:5b0f8a3e-2f1c-4d8e-9a55-0c1d2e3f4a5b"
		cart = "ups:9c2e7d14-6b3a-4f0e-8d21-7e6f5a4b3c2d"
		doc1 = "ups:36a51c13-9dd6-4d2c-8aa3-07d785ea5075"
		doc2 = "ups:788d8874-8007-4253-92b7-ee6b6c20c6f3"
	)
	want := membership{
		// Ada (two emails, a GAID), Grace (existing), a pre-hashed email;
		// Alan exited, his zero GAID is an opt-out.
		news + " EMAIL": sorted(email("ada.lovelace@example.com"), email("ada@example.org"), email("grace.hopper@example.com"),
			"a3b6a1b9f1b8e26e1f0a0c6f8d4a2b8e7c5d3f1a9b7e5c3d1f0e2a4b6c8d0e1f"),
		news + " MAID":  sorted(gaid("38400000-8cf0-11bd-b23e-10b96e40000d")),
		news + " IDFA":  sorted(idfa("6d92078a-8246-4ba4-ae5b-76104861e7dc")),
		cart + " EMAIL": sorted(email("ada.lovelace@example.com"), email("ada@example.org"), email("alan.turing@example.com")),
		cart + " MAID":  sorted(gaid("38400000-8cf0-11bd-b23e-10b96e40000d"), gaid("e4fe9bde-caa0-47b6-908d-ffba3fa184f2")),
		cart + " IDFA":  sorted(idfa("AEBE52E7-03EE-455A-B3C4-E57283966239")),
		// AEP's examples: John Doe's two emails realized in two audiences
		// (exited from a third he was never in), Jane Doe in one.
		doc1 + " EMAIL": sorted(email("johndoe@example.com"), email("jd@example.com"), email("jane.doe@example.com")),
		doc2 + " EMAIL": sorted(email("johndoe@example.com"), email("jd@example.com")),
	}
	waitMembership(t, s.SimulatorURL(), s.AdAccountID(), want)
}

func sorted(hashes ...string) []string {
	out := slices.Clone(hashes)
	slices.Sort(out)
	return out
}

// TestEmailsGAIDsAndIDFAs posts generated profiles with every identity kind,
// in the case and spacing callers send, across three audiences and several
// requests, with more audiences than workers.
func TestEmailsGAIDsAndIDFAs(t *testing.T) {
	s := newStack(t, func(c *Config) { c.Workers = 2 })
	var g gen
	m := newModel()
	var all []profile
	for req := range 6 {
		var ps []profile
		for i := range 25 {
			p := profile{ids: []ident{g.email()}}
			switch i % 4 {
			case 1:
				p.ids = append(p.ids, g.gaid())
			case 2:
				p.ids = []ident{g.idfa()}
			case 3:
				p.ids = append(p.ids, g.gaid(), g.idfa(), g.email())
			}
			at := t0.Add(time.Duration(req*100+i) * time.Second)
			p.events = []membershipEvent{{audA, "realized", at}}
			if i%2 == 0 {
				p.events = append(p.events, membershipEvent{audB, "existing", at})
			}
			if i%5 == 0 {
				p.events = append(p.events, membershipEvent{audC, "realized", at})
			}
			ps = append(ps, p)
		}
		s.mustAccept(t, body(t, ps...))
		m.add(ps...)
		all = append(all, ps...)
	}
	want := m.membership()
	for _, k := range []string{"EMAIL", "MAID", "IDFA"} {
		if len(want["ups:"+audA+" "+k]) == 0 {
			t.Fatalf("the generated input has no %s members: the test proves less than it says", k)
		}
	}
	waitMembership(t, s.SimulatorURL(), s.AdAccountID(), want)

	p, err := s.Progress(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if p.Received == 0 || p.Applied != p.Received || p.Queued+p.InFlight != 0 || p.DeadLetters != 0 {
		t.Errorf("progress = %+v, want every received change applied and an empty queue", p)
	}
	waitFor(t, "a progress line with the totals", func() bool {
		return strings.Contains(s.stdout.String(), p.String())
	})
	assertNoPlainEmails(t, s, plainEmails(all...))
}

// TestExitsAfterJoinsAcrossRequests: members join in one request, some exit
// in a later one, some of those come back in a third; each request is
// applied before the next is sent, and again with all three in a row.
func TestExitsAfterJoinsAcrossRequests(t *testing.T) {
	for _, wait := range []bool{true, false} {
		name := "one request at a time"
		if !wait {
			name = "requests back to back"
		}
		t.Run(name, func(t *testing.T) {
			s := newStack(t, nil)
			var g gen
			var people []profile
			for i := range 12 {
				p := profile{ids: []ident{g.email(), g.gaid(), g.idfa()}}
				if i%3 == 0 {
					p.ids = p.ids[:1]
				}
				people = append(people, p)
			}
			at := func(step int) time.Time { return t0.Add(time.Duration(step) * time.Hour) }
			with := func(p profile, evs ...membershipEvent) profile { p.events = evs; return p }

			var joins, exits, back []profile
			for _, p := range people {
				joins = append(joins, with(p, membershipEvent{audA, "realized", at(1)}, membershipEvent{audB, "realized", at(1)}))
			}
			for i, p := range people {
				if i%2 == 0 {
					exits = append(exits, with(p, membershipEvent{audA, "exited", at(2)}))
				}
			}
			for i, p := range people {
				if i%4 == 0 {
					back = append(back, with(p, membershipEvent{audA, "realized", at(3)}, membershipEvent{audB, "exited", at(3)}))
				}
			}
			m := newModel()
			for _, step := range [][]profile{joins, exits, back} {
				s.mustAccept(t, body(t, step...))
				m.add(step...)
				if wait {
					waitMembership(t, s.SimulatorURL(), s.AdAccountID(), m.membership())
				}
			}
			want := m.membership()
			if got, all := len(want["ups:"+audA+" EMAIL"]), len(people); got == 0 || got == all {
				t.Fatalf("audience A ends with %d of %d emails: the exits prove nothing", got, all)
			}
			waitMembership(t, s.SimulatorURL(), s.AdAccountID(), want)
		})
	}
}

// TestAudienceMetadataThenMembers: POST /v1/audiences is accepted with the
// audience's key and only records the audience's name (Pinterest is not
// known to accept empty lists: nothing is created yet); the members that
// follow create the three lists under that name, with their first records.
func TestAudienceMetadataThenMembers(t *testing.T) {
	s := newStack(t, nil)
	b, err := os.ReadFile("../../examples/audience.json")
	if err != nil {
		t.Fatal(err)
	}
	const key = "ups:5b0f8a3e-2f1c-4d8e-9a55-0c1d2e3f4a5b"
	status, ans := s.post(t, "/v1/audiences", b)
	if status != http.StatusAccepted || ans["externalAudienceId"] != key {
		t.Fatalf("POST /v1/audiences = %d %v, want 202 with externalAudienceId %s", status, ans, key)
	}
	waitFor(t, "the audience message recorded", func() bool {
		pr, err := s.Progress(t.Context())
		return err == nil && pr.AppliedMessages == 1 && pr.Queued+pr.InFlight == 0
	})
	if lists := simLists(t, s); len(lists) != 0 {
		t.Fatalf("the audience-metadata call created %d lists, want none before a member", len(lists))
	}
	var g gen
	p := profile{ids: []ident{g.email(), g.gaid(), g.idfa()}, events: []membershipEvent{{strings.TrimPrefix(key, "ups:"), "realized", t0}}}
	s.mustAccept(t, body(t, p))
	m := newModel()
	m.add(p)
	waitMembership(t, s.SimulatorURL(), s.AdAccountID(), m.membership())
	named := 0
	for _, l := range simLists(t, s) {
		if l.Name == "pinlist "+key+" "+l.ListType+" - Newsletter subscribers" && len(l.Records) == 1 {
			named++
		}
	}
	if named != 3 {
		t.Errorf("%d lists named after the audience with their member, want 3", named)
	}
}

// simLists is the simulator's customer lists of the stack's ad account.
func simLists(t *testing.T, s *testStack) []pinterestsim.CustomerListState {
	t.Helper()
	var st pinterestsim.State
	resp, err := http.Get(s.SimulatorURL() + "/_sim/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st.AdAccounts[s.AdAccountID()].CustomerLists
}

// TestRecoversWhenPinterestExpiresTheAccessToken: Pinterest stops accepting
// the access token long before its stored expiry. The upload's 401 reloads
// the token file (the same token) and asks the refresher to check it now;
// the refresher's probe sees the refusal and refreshes, and the held
// messages are applied — no person, no lost change.
func TestRecoversWhenPinterestExpiresTheAccessToken(t *testing.T) {
	s := newStack(t, nil)
	var g gen
	m := newModel()
	join := func(at time.Time) {
		ps := []profile{{ids: []ident{g.email(), g.gaid()}, events: []membershipEvent{{audA, "realized", at}}}}
		s.mustAccept(t, body(t, ps...))
		m.add(ps...)
	}
	join(t0)
	waitMembership(t, s.SimulatorURL(), s.AdAccountID(), m.membership())
	before, err := token.FileStore{Path: TokenPath(s.cfg.DataDir)}.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	resp, err := http.Post(s.SimulatorURL()+"/_sim/expire_tokens", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("expire tokens: %s", resp.Status)
	}

	join(t0.Add(time.Minute))
	waitMembership(t, s.SimulatorURL(), s.AdAccountID(), m.membership())
	after, err := token.FileStore{Path: TokenPath(s.cfg.DataDir)}.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if after.AccessToken == before.AccessToken || after.RefreshToken == before.RefreshToken {
		t.Error("the token file still holds the refused pair")
	}
	if !strings.Contains(s.logs.String(), "refused the access token before its expiry") {
		t.Error("the refresh did not say why it ran")
	}
}
