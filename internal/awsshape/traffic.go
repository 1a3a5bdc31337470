package awsshape

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"
)

// TrafficOptions shape the generated AEP traffic.
type TrafficOptions struct {
	// Profiles is how many people (default 2000); each has a pre-hashed
	// email (EMAIL list) and a GAID (MAID list).
	Profiles int
	// Audiences is how many audiences (default 3); a person qualifies for
	// each with probability 0.6.
	Audiences int
	// BodyProfiles is how many profiles one request carries (default 10,
	// as AEP's streaming destinations send).
	BodyProfiles int
	// ExitShare of the memberships exit in the update phase (default
	// 0.15); JoinShare of the non-memberships qualify then (default 0.1).
	ExitShare, JoinShare float64
	// Seed makes the traffic repeatable.
	Seed uint64
}

func (o *TrafficOptions) defaults() {
	if o.Profiles == 0 {
		o.Profiles = 2000
	}
	if o.Audiences == 0 {
		o.Audiences = 3
	}
	if o.BodyProfiles == 0 {
		o.BodyProfiles = 10
	}
	if o.ExitShare == 0 {
		o.ExitShare = 0.15
	}
	if o.JoinShare == 0 {
		o.JoinShare = 0.1
	}
}

// Phase is one round of traffic: the request bodies, and the state flips
// they make, per flip key (see flipKey), with the index of the first
// request that carries each.
type Phase struct {
	Name   string
	Bodies [][]byte
	// Changes is how many memberships × identities the bodies carry.
	Changes int
	// Flips maps a flip to the first body that carries it.
	Flips map[FlipKey]int
}

// FlipKey names one record's state flip on one list: the list's stable
// name part ("<ns>:<audience> <TYPE>"), the hash and the op (ADD or
// REMOVE).
type FlipKey struct {
	List string
	Hash string
	Op   string
}

// Traffic is the generated AEP-shaped traffic: a phase where everyone
// qualifies, a phase that re-sends every membership (AEP sends a profile's
// whole segmentMembership each time) with some exits and some new
// qualifications, and a replay of both that must change nothing.
type Traffic struct {
	Qualify, Update, Replay Phase
}

type person struct {
	emailHash string
	gaid      string
	gaidHash  string
}

// aepMembership is one segmentMembership entry.
type aepMembership struct {
	Status                string `json:"status"`
	LastQualificationTime string `json:"lastQualificationTime"`
}

type aepIdentity struct {
	ID string `json:"id"`
}

type aepProfile struct {
	IdentityMap       map[string][]aepIdentity            `json:"identityMap"`
	SegmentMembership map[string]map[string]aepMembership `json:"segmentMembership"`
}

// NewTraffic generates traffic.
func NewTraffic(o TrafficOptions) (*Traffic, error) {
	o.defaults()
	if o.Profiles < 1 || o.Audiences < 1 || o.BodyProfiles < 1 || o.ExitShare < 0 || o.ExitShare > 1 || o.JoinShare < 0 || o.JoinShare > 1 {
		return nil, fmt.Errorf("generate traffic: options out of range: %+v", o)
	}
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x5eed))
	people := make([]person, o.Profiles)
	for i := range people {
		e := sha256.Sum256(fmt.Appendf(nil, "person-%d-%d@example.com", o.Seed, i))
		var u [16]byte
		for j := range u {
			u[j] = byte(rng.Uint32())
		}
		gaid := fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
		g := sha256.Sum256([]byte(gaid))
		people[i] = person{emailHash: hex.EncodeToString(e[:]), gaid: gaid, gaidHash: hex.EncodeToString(g[:])}
	}
	audiences := make([]string, o.Audiences)
	for a := range audiences {
		audiences[a] = fmt.Sprintf("5b0f8a3e-2f1c-4d8e-9a55-%012d", a+1)
	}
	t0 := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	t1 := t0.Add(24 * time.Hour)
	member := make([][]bool, o.Profiles)
	for i := range member {
		member[i] = make([]bool, o.Audiences)
		for a := range member[i] {
			member[i][a] = rng.Float64() < 0.6
		}
	}
	type entry struct {
		status string
		at     time.Time
	}
	build := func(name string, states func(i, a int) (entry, bool)) (Phase, error) {
		ph := Phase{Name: name, Flips: map[FlipKey]int{}}
		for start := 0; start < o.Profiles; start += o.BodyProfiles {
			var body struct {
				Profiles []aepProfile `json:"profiles"`
			}
			for i := start; i < min(start+o.BodyProfiles, o.Profiles); i++ {
				p := people[i]
				prof := aepProfile{
					IdentityMap: map[string][]aepIdentity{
						"email_lc_sha256": {{ID: p.emailHash}},
						"gaid":            {{ID: p.gaid}},
					},
					SegmentMembership: map[string]map[string]aepMembership{"ups": {}},
				}
				for a, aud := range audiences {
					e, ok := states(i, a)
					if !ok {
						continue
					}
					prof.SegmentMembership["ups"][aud] = aepMembership{Status: e.status, LastQualificationTime: e.at.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano)}
					ph.Changes += 2
				}
				body.Profiles = append(body.Profiles, prof)
			}
			raw, err := json.Marshal(body)
			if err != nil {
				return Phase{}, fmt.Errorf("generate traffic: encode a body: %w", err)
			}
			ph.Bodies = append(ph.Bodies, raw)
		}
		return ph, nil
	}
	var err error
	tr := &Traffic{}
	tr.Qualify, err = build("qualify", func(i, a int) (entry, bool) {
		return entry{"realized", t0}, member[i][a]
	})
	if err != nil {
		return nil, err
	}
	// Update: every membership re-sent; some exit, some people newly
	// qualify. Decided once per (person, audience), before building.
	exits := make([][]bool, o.Profiles)
	joins := make([][]bool, o.Profiles)
	for i := range exits {
		exits[i] = make([]bool, o.Audiences)
		joins[i] = make([]bool, o.Audiences)
		for a := range exits[i] {
			if member[i][a] {
				exits[i][a] = rng.Float64() < o.ExitShare
			} else {
				joins[i][a] = rng.Float64() < o.JoinShare
			}
		}
	}
	tr.Update, err = build("update", func(i, a int) (entry, bool) {
		switch {
		case exits[i][a]:
			return entry{"exited", t1}, true
		case joins[i][a]:
			return entry{"realized", t1}, true
		default:
			return entry{"realized", t0}, member[i][a]
		}
	})
	if err != nil {
		return nil, err
	}
	flip := func(ph *Phase, body int, i, a int, op string) {
		for _, k := range []FlipKey{
			{List: "ups:" + audiences[a] + " EMAIL", Hash: people[i].emailHash, Op: op},
			{List: "ups:" + audiences[a] + " MAID", Hash: people[i].gaidHash, Op: op},
		} {
			if _, ok := ph.Flips[k]; !ok {
				ph.Flips[k] = body
			}
		}
	}
	for i := range o.Profiles {
		body := i / o.BodyProfiles
		for a := range o.Audiences {
			if member[i][a] {
				flip(&tr.Qualify, body, i, a, "ADD")
			}
			switch {
			case exits[i][a]:
				flip(&tr.Update, body, i, a, "REMOVE")
			case joins[i][a]:
				flip(&tr.Update, body, i, a, "ADD")
			}
		}
	}
	tr.Replay = Phase{Name: "replay", Flips: map[FlipKey]int{}}
	tr.Replay.Bodies = append(append([][]byte(nil), tr.Qualify.Bodies...), tr.Update.Bodies...)
	tr.Replay.Changes = tr.Qualify.Changes + tr.Update.Changes
	return tr, nil
}

// LowerBound is the fewest customer list calls that can carry ph's flips:
// per list and op, ceil(flips / maxRecords).
func (ph Phase) LowerBound(maxRecords int) int {
	per := map[[2]string]int{}
	for k := range ph.Flips {
		per[[2]string{k.List, k.Op}]++
	}
	n := 0
	for _, c := range per {
		n += (c + maxRecords - 1) / maxRecords
	}
	return n
}
