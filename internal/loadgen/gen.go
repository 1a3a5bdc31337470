package loadgen

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// GenOptions shape the generated traffic; zero fields take the defaults.
type GenOptions struct {
	// Seed makes the traffic repeatable (0 is a seed like any other).
	Seed uint64
	// Audiences is how many audiences profiles qualify for (default 20), in
	// the audience namespace Namespace (default "ups").
	Audiences int
	Namespace string
	// ExitShare is the share of memberships that are exits (default 0.10;
	// negative for none). An exit re-sends an earlier profile's identities
	// with status "exited" for one of the audiences it joined.
	ExitShare float64
	// ExitLag: an exit only names a profile sent at least this many bodies
	// earlier (default 1), so that a driver posting bodies concurrently can
	// make sure the join was accepted before the exit is sent.
	ExitLag int
	// Start is the event time of the first profile; each later profile is
	// Step later (default 2026-01-01T00:00:00Z and 1ms), so every profile
	// has its own event time and later bodies have later ones.
	Start time.Time
	Step  time.Duration
	// InvalidShare is the share of profiles that carry one malformed email
	// besides their good identities (default 0.005; negative for none).
	InvalidShare float64
}

func (o GenOptions) withDefaults() GenOptions {
	if o.Audiences <= 0 {
		o.Audiences = 20
	}
	if o.Namespace == "" {
		o.Namespace = "ups"
	}
	if o.ExitShare == 0 {
		o.ExitShare = 0.10
	}
	o.ExitShare = max(o.ExitShare, 0)
	if o.ExitLag <= 0 {
		o.ExitLag = 1
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if o.Step <= 0 {
		o.Step = time.Millisecond
	}
	if o.InvalidShare == 0 {
		o.InvalidShare = 0.005
	}
	o.InvalidShare = max(o.InvalidShare, 0)
	return o
}

// Generator makes realistic AEP traffic. It is not safe for concurrent use.
type Generator struct {
	o         GenOptions
	rnd       *rand.Rand
	audiences []string
	weights   []float64 // cumulative audience popularity
	exitProb  float64   // chance that a profile is an exit
	bodies    int       // bodies made so far
	profiles  int       // profiles made so far
	joins     []join    // earlier joins, in body order
	used      []bool    // joins already exited
	eligible  int       // joins[:eligible] are old enough to exit
}

// join is one profile's membership of one audience, remembered for a later
// exit.
type join struct {
	body       int
	audience   int
	identities []Identity
}

// Body is a generated request body's profiles, before encoding.
type Body struct {
	Index    int // 0 for the first body
	Profiles []Profile
}

// Audience names, first and last names and domains the emails are made of.
var (
	firstNames = []string{"ada", "alan", "grace", "linus", "margaret", "dennis", "barbara", "ken", "frances", "edsger", "radia", "john"}
	lastNames  = []string{"lovelace", "turing", "hopper", "torvalds", "hamilton", "ritchie", "liskov", "thompson", "allen", "dijkstra", "perlman", "backus"}
	domains    = []string{"example.com", "example.org", "mail.example.net", "example.co.uk", "inbox.example.io"}
)

// membershipsPerJoin is the distribution of audiences a joining profile
// qualifies for at once: 1 (50 %), 2 (35 %) or 3 (15 %).
var membershipsPerJoin = []float64{0.50, 0.85, 1.0}

// NewGenerator returns a generator.
func NewGenerator(o GenOptions) *Generator {
	o = o.withDefaults()
	g := &Generator{o: o, rnd: rand.New(rand.NewPCG(o.Seed, o.Seed^0x5deece66d))}
	total := 0.0
	for i := range o.Audiences {
		g.audiences = append(g.audiences, g.uuid(false))
		// Some audiences are more popular than others.
		total += 1 / (1 + float64(i)/4)
		g.weights = append(g.weights, total)
	}
	for i := range g.weights {
		g.weights[i] /= total
	}
	// An exit profile carries one membership, a join 1.65 on average: this
	// share of exit profiles makes ExitShare of the memberships exits.
	const mean = 0.50*1 + 0.35*2 + 0.15*3
	x := o.ExitShare
	g.exitProb = mean * x / (1 - x + mean*x)
	return g
}

// Audiences is the generated audiences' IDs (in namespace Namespace).
func (g *Generator) Audiences() []string { return g.audiences }

// Namespace is the audiences' namespace.
func (g *Generator) Namespace() string { return g.o.Namespace }

// AudienceKey is the key ("<namespace>:<id>") of audience i.
func (g *Generator) AudienceKey(i int) string { return g.o.Namespace + ":" + g.audiences[i] }

// Body makes the next body of n profiles, in a shuffled order: their event
// times are out of order within the body, and every one is later than
// those of the bodies before.
func (g *Generator) Body(n int) Body {
	b := Body{Index: g.bodies, Profiles: make([]Profile, 0, n)}
	g.advanceEligible()
	var made []join
	for range n {
		at := g.now()
		if g.rnd.Float64() < g.exitProb {
			if p, ok := g.exit(at); ok {
				b.Profiles = append(b.Profiles, p)
				continue
			}
		}
		p := g.joinProfile(at)
		for _, m := range p.Memberships {
			made = append(made, join{body: b.Index, audience: g.audienceIndex(m.Audience), identities: mappedOnly(p.Identities)})
		}
		b.Profiles = append(b.Profiles, p)
	}
	g.rnd.Shuffle(len(b.Profiles), func(i, j int) { b.Profiles[i], b.Profiles[j] = b.Profiles[j], b.Profiles[i] })
	g.joins = append(g.joins, made...)
	g.used = append(g.used, make([]bool, len(made))...)
	g.bodies++
	return b
}

// now is the next profile's event time.
func (g *Generator) now() time.Time {
	t := g.o.Start.Add(time.Duration(g.profiles) * g.o.Step)
	g.profiles++
	return t
}

// Now is the event time the next profile will get: later than every
// profile made so far.
func (g *Generator) Now() time.Time { return g.o.Start.Add(time.Duration(g.profiles) * g.o.Step) }

// advanceEligible moves the boundary of the joins an exit may name: joins is
// in body order, so the old enough ones are a prefix that only grows.
func (g *Generator) advanceEligible() {
	for g.eligible < len(g.joins) && g.joins[g.eligible].body <= g.bodies-g.o.ExitLag {
		g.eligible++
	}
}

// exit makes a profile that leaves one audience it joined earlier.
func (g *Generator) exit(at time.Time) (Profile, bool) {
	if g.eligible == 0 {
		return Profile{}, false
	}
	for range 4 {
		i := g.rnd.IntN(g.eligible)
		if g.used[i] {
			continue
		}
		g.used[i] = true
		j := g.joins[i]
		ids := make([]Identity, len(j.identities))
		for k, id := range j.identities {
			ids[k] = id
			if id.Namespace == NSEmail && g.rnd.IntN(4) == 0 {
				// The sender's casing may differ from the join's: it must
				// hash the same.
				ids[k].ID = strings.ToUpper(strings.TrimSpace(id.ID))
			}
		}
		return Profile{Identities: ids, Memberships: []Membership{{
			Namespace: g.o.Namespace, Audience: g.audiences[j.audience], Status: StatusExited, Time: at,
		}}}, true
	}
	return Profile{}, false
}

// joinProfile makes a new profile that qualifies for one to three
// audiences.
func (g *Generator) joinProfile(at time.Time) Profile {
	ids := g.identities(g.profiles)
	k := 0
	for x := g.rnd.Float64(); x >= membershipsPerJoin[k]; k++ {
	}
	k++
	var mems []Membership
	seen := map[int]bool{}
	for len(mems) < k && len(seen) < len(g.audiences) {
		a := g.pickAudience()
		if seen[a] {
			continue
		}
		seen[a] = true
		status := StatusRealized
		if g.rnd.Float64() < 0.15 {
			status = StatusExisting
		}
		mems = append(mems, Membership{Namespace: g.o.Namespace, Audience: g.audiences[a], Status: status, Time: at})
	}
	return Profile{Identities: ids, Memberships: mems}
}

// identities makes profile n's identities: an email, a GAID and an IDFA in
// some mix, sometimes one of another namespace or an opt-out, sometimes a
// malformed email (InvalidShare).
func (g *Generator) identities(n int) []Identity {
	var ids []Identity
	if g.rnd.Float64() < 0.80 {
		ids = append(ids, Identity{g.nsCase(NSEmail), g.email(n)})
	}
	if g.rnd.Float64() < 0.35 {
		ids = append(ids, Identity{g.nsCase(NSGAID), g.uuid(g.rnd.Float64() < 0.05)})
	}
	if g.rnd.Float64() < 0.25 {
		ids = append(ids, Identity{g.nsCase(NSIDFA), g.uuid(g.rnd.Float64() >= 0.05)})
	}
	if len(ids) == 0 {
		ids = append(ids, Identity{NSEmail, g.email(n)})
	}
	switch x := g.rnd.Float64(); {
	case x < 0.03:
		ids = append(ids, Identity{"phone", fmt.Sprintf("+1555%07d", n%10_000_000)})
	case x < 0.05:
		ids = append(ids, Identity{"ECID", fmt.Sprintf("%038d", n)})
	case x < 0.06:
		ids = append(ids, Identity{NSGAID, "00000000-0000-0000-0000-000000000000"})
	}
	if g.rnd.Float64() < g.o.InvalidShare {
		ids = append(ids, Identity{NSEmail, fmt.Sprintf("user%d at example.com", n)})
	}
	return ids
}

// Marker makes a profile whose only identity is a fresh IDFA joining
// audience i at the next event time, and returns the IDFA's hash: a change
// whose arrival in the simulator can be watched for.
func (g *Generator) Marker(i int) (Profile, string) {
	id := g.uuid(true)
	hash, _ := HashAdvertisingID(NSIDFA, id)
	return Profile{
		Identities:  []Identity{{NSIDFA, id}},
		Memberships: []Membership{{Namespace: g.o.Namespace, Audience: g.audiences[i], Status: StatusRealized, Time: g.now()}},
	}, hash
}

func (g *Generator) pickAudience() int {
	x := g.rnd.Float64()
	for i, w := range g.weights {
		if x < w {
			return i
		}
	}
	return len(g.weights) - 1
}

func (g *Generator) audienceIndex(id string) int {
	for i, a := range g.audiences {
		if a == id {
			return i
		}
	}
	return -1
}

// nsCase is the namespace as a sender writes it: mostly lower case,
// sometimes not.
func (g *Generator) nsCase(ns string) string {
	if g.rnd.Float64() < 0.05 {
		if ns == NSEmail {
			return "Email"
		}
		return strings.ToUpper(ns)
	}
	return ns
}

// email is user n's address as a sender writes it: mostly lower case, some
// capitalised or shouting, some padded with white space.
func (g *Generator) email(n int) string {
	first := firstNames[g.rnd.IntN(len(firstNames))]
	last := lastNames[g.rnd.IntN(len(lastNames))]
	addr := fmt.Sprintf("%s.%s%d@%s", first, last, n, domains[g.rnd.IntN(len(domains))])
	switch x := g.rnd.Float64(); {
	case x < 0.05:
		addr = strings.ToUpper(addr)
	case x < 0.10:
		addr = strings.ToUpper(addr[:1]) + addr[1:]
	}
	switch x := g.rnd.Float64(); {
	case x < 0.02:
		addr = " " + addr + " "
	case x < 0.04:
		addr = "\t" + addr + "\n"
	}
	return addr
}

// uuid is a random version 4 UUID, upper or lower case.
func (g *Generator) uuid(upper bool) string {
	hi, lo := g.rnd.Uint64(), g.rnd.Uint64()
	hi = hi&^0xf000 | 0x4000         // version 4
	lo = lo&^(0xc<<60) | (0x8 << 60) // RFC 4122 variant
	s := fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", hi>>32, hi>>16&0xffff, hi&0xffff, lo>>48, lo&0xffffffffffff)
	if upper {
		return strings.ToUpper(s)
	}
	return s
}

// mappedOnly keeps the identities an exit re-sends: the ones that map to a
// list (the others would change nothing).
func mappedOnly(ids []Identity) []Identity {
	out := make([]Identity, 0, len(ids))
	for _, id := range ids {
		if mapIdentity(id.Namespace, id.ID).list != "" {
			out = append(out, id)
		}
	}
	return out
}
