package chaos

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/pinlist/pinlist/internal/loadgen"
)

// chaosRequest is one request of the chaos stream, with what its 202 must
// count by construction.
type chaosRequest struct {
	body []byte
	// identities is the identity entries the body holds; excluded and
	// failed the ones made to be excluded or to fail, by reason.
	identities int
	excluded   map[string]int
	failed     map[string]int
	// retryNow: the caller sends the body again at once, as after a lost
	// answer. resend: this request is an earlier body sent again later.
	retryNow bool
	resend   bool
}

// person is one member of the stream's population.
type person struct {
	email, gaid, idfa string // gaid and idfa may be ""
}

// chaosStream makes n requests in which a small population joins and
// leaves a few audiences over and over: the same identities across
// separate requests, event times rising from request to request but
// shuffled within one, a person twice in a request with opposite statuses,
// exact duplicate profiles, emails in varying case and white space, a few
// identities to exclude or fail, bodies of every form, and caller retries
// of the same body, at once and a few requests later.
func chaosStream(seed uint64, n int) []chaosRequest {
	rnd := rand.New(rand.NewPCG(seed, seed+1))
	audiences := []string{"c0a1b2c3-0000-4000-8000-00000000000a", "c0a1b2c3-0000-4000-8000-00000000000b", "c0a1b2c3-0000-4000-8000-00000000000c"}
	var people []person
	for i := range 90 {
		p := person{email: fmt.Sprintf("chaos.person%d@example.com", i)}
		if i%2 == 0 {
			p.gaid = fmt.Sprintf("%08x-1111-4222-8333-%012x", i, i*7919)
		}
		if i%3 == 0 {
			p.idfa = fmt.Sprintf("%08X-4444-4555-8666-%012X", i, i*104729)
		}
		people = append(people, p)
	}
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	var out []chaosRequest
	for r := range n {
		req := chaosRequest{excluded: map[string]int{}, failed: map[string]int{}}
		base := start.Add(time.Duration(r) * time.Second) // later requests, later events
		var profiles []loadgen.Profile
		for range 3 + rnd.IntN(8) {
			p := people[rnd.IntN(len(people))]
			// 100–800ms into the request's second, and a flip below at most
			// 90ms away: every event of a request is later than every event
			// of the requests before it.
			at := base.Add(time.Duration(100+rnd.IntN(700)) * time.Millisecond)
			var mems []loadgen.Membership
			for _, a := range rnd.Perm(len(audiences))[:1+rnd.IntN(2)] {
				mems = append(mems, loadgen.Membership{Namespace: "ups", Audience: audiences[a], Status: randomStatus(rnd), Time: at})
			}
			prof := loadgen.Profile{Identities: identities(rnd, p, r, &req), Memberships: mems}
			profiles = append(profiles, prof)
			switch x := rnd.Float64(); {
			case x < 0.10:
				// The same person again, leaving or joining the same
				// audience a moment later or earlier.
				flip := mems[0]
				flip.Status = opposite(flip.Status)
				flip.Time = at.Add(time.Duration(rnd.IntN(180)-90) * time.Millisecond)
				if flip.Time.Equal(at) {
					flip.Time = at.Add(time.Millisecond)
				}
				profiles = append(profiles, loadgen.Profile{Identities: identities(rnd, p, r, &req), Memberships: []loadgen.Membership{flip}})
			case x < 0.18:
				// An exact duplicate of the profile.
				profiles = append(profiles, prof)
				for _, id := range prof.Identities {
					countIdentity(&req, id)
				}
			}
		}
		rnd.Shuffle(len(profiles), func(i, j int) { profiles[i], profiles[j] = profiles[j], profiles[i] })
		form := loadgen.BodyForm(rnd.IntN(3))
		if len(profiles) > 1 && form == loadgen.FormSingle {
			form = loadgen.FormArray
		}
		req.body = loadgen.EncodeBody(profiles, form)
		req.retryNow = rnd.Float64() < 0.10
		out = append(out, req)
		if r > 8 && rnd.Float64() < 0.05 {
			again := out[len(out)-2-rnd.IntN(6)]
			again.retryNow, again.resend = false, true
			out = append(out, again)
		}
	}
	return out
}

// identities is a person's identities as one request sends them: the email
// in some case and padding, the advertising IDs, and now and then an
// identity of another namespace, an opt-out or a malformed email. The
// counts go into req.
func identities(rnd *rand.Rand, p person, r int, req *chaosRequest) []loadgen.Identity {
	email := p.email
	switch rnd.IntN(4) {
	case 0:
		email = strings.ToUpper(email)
	case 1:
		email = " " + strings.ToUpper(email[:1]) + email[1:] + "\t"
	}
	ids := []loadgen.Identity{{Namespace: "email", ID: email}}
	if p.gaid != "" {
		ids = append(ids, loadgen.Identity{Namespace: "gaid", ID: p.gaid})
	}
	if p.idfa != "" {
		ids = append(ids, loadgen.Identity{Namespace: "IDFA", ID: p.idfa})
	}
	switch x := rnd.Float64(); {
	case x < 0.05:
		ids = append(ids, loadgen.Identity{Namespace: "phone", ID: fmt.Sprintf("+1555%07d", r)})
	case x < 0.08:
		ids = append(ids, loadgen.Identity{Namespace: "gaid", ID: "00000000-0000-0000-0000-000000000000"})
	case x < 0.11:
		ids = append(ids, loadgen.Identity{Namespace: "email", ID: fmt.Sprintf("chaos.bad%d at example.com", r)})
	}
	for _, id := range ids {
		countIdentity(req, id)
	}
	return ids
}

// countIdentity counts one identity entry of req by what it was made to be.
func countIdentity(req *chaosRequest, id loadgen.Identity) {
	req.identities++
	switch {
	case id.Namespace == "phone":
		req.excluded[loadgen.ExcludedUnsupportedNamespace]++
	case id.ID == "00000000-0000-0000-0000-000000000000":
		req.excluded[loadgen.ExcludedOptedOut]++
	case strings.Contains(id.ID, " at "):
		req.failed[loadgen.FailedInvalidEmail]++
	}
}

func randomStatus(rnd *rand.Rand) string {
	switch x := rnd.Float64(); {
	case x < 0.40:
		return loadgen.StatusRealized
	case x < 0.55:
		return loadgen.StatusExisting
	}
	return loadgen.StatusExited
}

func opposite(s string) string {
	if s == loadgen.StatusExited {
		return loadgen.StatusRealized
	}
	return loadgen.StatusExited
}
