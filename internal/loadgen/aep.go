package loadgen

import (
	"slices"
	"strings"
	"time"
)

// MaxAEPProfiles is the most profiles Adobe's HTTP API destination puts in
// one request.
const MaxAEPProfiles = 10

// AEPOptions shape traffic as Adobe Experience Platform's HTTP API
// destination sends it; zero fields take the defaults.
type AEPOptions struct {
	// Seed, Audiences, Namespace and InvalidShare are as in GenOptions.
	Seed         uint64
	Audiences    int
	Namespace    string
	InvalidShare float64
	// Start is the event time of the first send; each later send of a
	// profile is Step later (default 2026-01-01T00:00:00Z and 1ms).
	Start time.Time
	Step  time.Duration
	// NewShare is the share of profile sends that are a new profile's
	// first (default 0.30); the others re-send a known profile with one
	// change and every other membership it has, unchanged.
	NewShare float64
	// ExitShare is the share of re-sends whose change is an exit (default
	// 0.35); the rest newly realize an audience the profile is not in. A
	// profile in MaxMemberships audiences (default 8) always exits one.
	ExitShare      float64
	MaxMemberships int
	// RetryShare is the share of bodies the caller sends again after each
	// of the driver's retry delays (AEP: 15 s and 30 s), as if their first
	// answer had been lost (default 0.05; negative for none).
	RetryShare float64
	// ReplayShare is the chance that a re-sent profile's previous body is
	// posted again after the newer one: an older body arriving late
	// (default 0.03; negative for none).
	ReplayShare float64
	// ExitLag: a profile is re-sent only if its last send was at least this
	// many bodies earlier (default 1), so a driver posting concurrently can
	// keep a profile's sends in order (replays aside).
	ExitLag int
}

func (o AEPOptions) withDefaults() AEPOptions {
	def := func(x *float64, d float64) {
		if *x == 0 {
			*x = d
		}
		*x = max(*x, 0)
	}
	def(&o.NewShare, 0.30)
	def(&o.ExitShare, 0.35)
	def(&o.RetryShare, 0.05)
	def(&o.ReplayShare, 0.03)
	if o.MaxMemberships <= 0 {
		o.MaxMemberships = 8
	}
	if o.ExitLag <= 0 {
		o.ExitLag = 1
	}
	return o
}

// AEPGenerator makes AEP-shaped traffic: bodies of at most MaxAEPProfiles
// profiles, each carrying all of its memberships with their own
// lastQualificationTime: most "existing" and unchanged since the profile's
// last send, one newly "realized" or "exited". It marks bodies to retry
// and older bodies to replay. It is not safe for concurrent use.
type AEPGenerator struct {
	o      AEPOptions
	g      *Generator // identities, audiences and the random source
	people []*aepPerson
	bodies int
	sends  int
}

// aepPerson is one profile as AEP knows it.
type aepPerson struct {
	ids      []Identity
	mems     map[int]Membership // by audience index; Status realized/existing (in) or exited
	lastBody int                // the body of its last send
}

// AEPBody is one generated request body.
type AEPBody struct {
	Index    int
	Profiles []Profile
	// Retry: the caller sends this body again after each retry delay.
	Retry bool
	// Replays are older bodies (by Index), each holding an earlier send of
	// one of this body's profiles, to be posted again after this one.
	Replays []int
	// Memberships is the body's memberships; Unchanged those of them the
	// profile had, with the same status and time, at its last send.
	Memberships int
	Unchanged   int
}

// NewAEPGenerator returns an AEP traffic generator.
func NewAEPGenerator(o AEPOptions) *AEPGenerator {
	o = o.withDefaults()
	g := NewGenerator(GenOptions{Seed: o.Seed, Audiences: o.Audiences, Namespace: o.Namespace, InvalidShare: o.InvalidShare, Start: o.Start, Step: o.Step})
	o.Start, o.Step = g.o.Start, g.o.Step
	return &AEPGenerator{o: o, g: g}
}

// Generator is the underlying generator: its audiences, and markers for
// freshness.
func (a *AEPGenerator) Generator() *Generator { return a.g }

// Next makes the next body of n profiles (at most MaxAEPProfiles).
func (a *AEPGenerator) Next(n int) AEPBody {
	n = min(max(n, 1), MaxAEPProfiles)
	b := AEPBody{Index: a.bodies, Retry: a.g.rnd.Float64() < a.o.RetryShare}
	inBody := map[*aepPerson]bool{}
	for range n {
		at := a.o.Start.Add(time.Duration(a.sends) * a.o.Step)
		a.sends++
		p := a.pick(inBody)
		if p == nil {
			p = &aepPerson{ids: a.g.identities(len(a.people)), mems: map[int]Membership{}}
			a.people = append(a.people, p)
			a.newProfile(p, at)
		} else {
			if a.g.rnd.Float64() < a.o.ReplayShare && !slices.Contains(b.Replays, p.lastBody) {
				b.Replays = append(b.Replays, p.lastBody)
			}
			a.change(p, at)
			b.Unchanged += len(p.mems) - 1 // all but the one change

		}
		inBody[p] = true
		p.lastBody = b.Index
		b.Memberships += len(p.mems)
		b.Profiles = append(b.Profiles, a.profile(p))
	}
	slices.Sort(b.Replays)
	a.bodies++
	return b
}

// Resend makes bodies of perBody profiles (at most MaxAEPProfiles) that
// re-send every profile made so far, in a shuffled order, each with all its
// memberships exactly as at its last send (statuses "existing" or
// "exited" and their old times): what AEP sends when nothing changed, e.g.
// on its next export. Not one membership in them flips a state, and their
// bytes differ from the bodies before (other profiles side by side), so a
// queue's deduplication by content does not hide them. The generator's
// profiles are left as they were.
func (a *AEPGenerator) Resend(perBody int) [][]Profile {
	perBody = min(max(perBody, 1), MaxAEPProfiles)
	order := a.g.rnd.Perm(len(a.people))
	var out [][]Profile
	for start := 0; start < len(order); start += perBody {
		var ps []Profile
		for _, i := range order[start:min(start+perBody, len(order))] {
			p := a.profile(a.people[i])
			for k, m := range p.Memberships {
				if m.Status == StatusRealized {
					p.Memberships[k].Status = StatusExisting
				}
			}
			ps = append(ps, p)
		}
		out = append(out, ps)
	}
	return out
}

// pick chooses a known profile to re-send (one not sent within ExitLag
// bodies, not already in this body), or nil for a new one.
func (a *AEPGenerator) pick(inBody map[*aepPerson]bool) *aepPerson {
	if len(a.people) == 0 || a.g.rnd.Float64() < a.o.NewShare {
		return nil
	}
	for range 8 {
		p := a.people[a.g.rnd.IntN(len(a.people))]
		if !inBody[p] && p.lastBody <= a.bodies-a.o.ExitLag {
			return p
		}
	}
	return nil
}

// newProfile makes a new profile realize one to three audiences at once.
func (a *AEPGenerator) newProfile(p *aepPerson, at time.Time) {
	k := 0
	for x := a.g.rnd.Float64(); x >= membershipsPerJoin[k]; k++ {
	}
	for len(p.mems) < k+1 && len(p.mems) < len(a.g.audiences) {
		if i := a.g.pickAudience(); p.mems[i].Status == "" {
			p.mems[i] = a.membership(i, StatusRealized, at)
		}
	}
}

// change makes one membership of p change at time at: an exit of an
// audience it is in, or a new qualification. Every other membership becomes
// what AEP re-sends: "existing" (in) or "exited" (out), time unchanged.
func (a *AEPGenerator) change(p *aepPerson, at time.Time) {
	var in, out []int
	for i, m := range p.mems {
		if m.Status == StatusExited {
			out = append(out, i)
			continue
		}
		if m.Status == StatusRealized {
			m.Status = StatusExisting
			p.mems[i] = m
		}
		in = append(in, i)
	}
	slices.Sort(in) // map order must not decide the traffic
	slices.Sort(out)
	exit := len(in) > 0 && (len(in) >= a.o.MaxMemberships || len(in) >= len(a.g.audiences) || a.g.rnd.Float64() < a.o.ExitShare)
	if exit {
		i := in[a.g.rnd.IntN(len(in))]
		p.mems[i] = a.membership(i, StatusExited, at)
		return
	}
	for {
		i := a.g.pickAudience()
		if m, ok := p.mems[i]; ok && m.Status != StatusExited {
			continue
		}
		p.mems[i] = a.membership(i, StatusRealized, at)
		return
	}
}

func (a *AEPGenerator) membership(i int, status string, at time.Time) Membership {
	return Membership{Namespace: a.g.o.Namespace, Audience: a.g.audiences[i], Status: status, Time: at}
}

// profile is p as it is sent now: its identities (the email's case may
// differ from send to send; it hashes the same) and all its memberships.
func (a *AEPGenerator) profile(p *aepPerson) Profile {
	ids := slices.Clone(p.ids)
	for k, id := range ids {
		if id.Namespace == NSEmail && a.g.rnd.IntN(8) == 0 {
			ids[k].ID = strings.ToUpper(strings.TrimSpace(id.ID))
		}
	}
	keys := make([]int, 0, len(p.mems))
	for i := range p.mems {
		keys = append(keys, i)
	}
	slices.Sort(keys)
	mems := make([]Membership, 0, len(keys))
	for _, i := range keys {
		mems = append(mems, p.mems[i])
	}
	return Profile{Identities: ids, Memberships: mems}
}
