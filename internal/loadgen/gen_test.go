package loadgen

import (
	"bytes"
	"math"
	"slices"
	"testing"
	"time"
)

func TestGeneratorIsRepeatable(t *testing.T) {
	a, b := NewGenerator(GenOptions{Seed: 7}), NewGenerator(GenOptions{Seed: 7})
	for i := range 5 {
		ba, bb := EncodeBody(a.Body(100).Profiles, FormArray), EncodeBody(b.Body(100).Profiles, FormArray)
		if !bytes.Equal(ba, bb) {
			t.Fatalf("body %d differs between two generators with one seed", i)
		}
	}
	if c := NewGenerator(GenOptions{Seed: 8}); slices.Equal(c.Audiences(), a.Audiences()) {
		t.Fatal("another seed made the same audiences")
	}
}

// TestGeneratorMix checks the traffic's shape over 10,000 profiles: the
// identity mix, 10 % exits, exits only of joins ExitLag bodies back, and
// event times later than every earlier body's.
func TestGeneratorMix(t *testing.T) {
	const lag = 4
	g := NewGenerator(GenOptions{Seed: 1, ExitLag: lag})
	if n := len(g.Audiences()); n != 20 {
		t.Fatalf("%d audiences, want 20", n)
	}
	firstBody := map[string]int{} // identity → first body it was in
	var memberships, exits, emails, gaids, idfas, padded, upper, profiles int
	var lastMax time.Time
	o := NewOracle()
	for bi := range 100 {
		b := g.Body(100)
		st, err := o.AddBody(EncodeBody(b.Profiles, FormWrapped), recv)
		if err != nil {
			t.Fatalf("body %d: %v", bi, err)
		}
		if st.Profiles != 100 || st.Activated == 0 {
			t.Fatalf("body %d: %+v", bi, st)
		}
		var times []time.Time
		for _, p := range b.Profiles {
			profiles++
			for _, m := range p.Memberships {
				memberships++
				times = append(times, m.Time)
				if !m.Time.After(lastMax) {
					t.Fatalf("body %d has an event time %s not after the previous bodies' %s", bi, m.Time, lastMax)
				}
				if m.Status == StatusExited {
					exits++
					for _, id := range p.Identities {
						h := identityKey(id)
						first, ok := firstBody[h]
						if !ok || first > bi-lag {
							t.Fatalf("body %d exits an identity first sent in body %d (ok %v), want at least %d bodies back", bi, first, ok, lag)
						}
					}
				}
			}
			for _, id := range p.Identities {
				if _, ok := firstBody[identityKey(id)]; !ok {
					firstBody[identityKey(id)] = bi
				}
				switch asciiLower(id.Namespace) {
				case NSEmail:
					emails++
					if id.ID != string(bytes.TrimSpace([]byte(id.ID))) {
						padded++
					}
					if id.ID != asciiLower(id.ID) {
						upper++
					}
				case NSGAID:
					gaids++
				case NSIDFA:
					idfas++
				}
			}
		}
		if slices.IsSortedFunc(times, func(a, b time.Time) int { return a.Compare(b) }) {
			t.Fatalf("body %d is in event-time order; want it shuffled", bi)
		}
		lastMax = slices.MaxFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	}
	share := func(n, of int) float64 { return float64(n) / float64(of) }
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"exits among memberships", share(exits, memberships), 0.10},
		{"profiles with an email", share(emails, profiles), 0.80},
		{"profiles with a GAID", share(gaids, profiles), 0.36},
		{"profiles with an IDFA", share(idfas, profiles), 0.25},
		{"emails padded with white space", share(padded, emails), 0.04},
		{"emails with upper case", share(upper, emails), 0.10 + 0.25*0.1}, // exits re-send a quarter upper-cased
	} {
		if math.Abs(c.got-c.want) > 0.25*c.want {
			t.Errorf("%s: %.3f, want about %.3f", c.name, c.got, c.want)
		}
	}
}

// identityKey identifies an identity across re-sends (hash of the
// normalised form).
func identityKey(id Identity) string {
	m := mapIdentity(id.Namespace, id.ID)
	return m.list + string(m.hash[:])
}

func TestMarkerIsFreshAndWatchable(t *testing.T) {
	g := NewGenerator(GenOptions{Seed: 3})
	g.Body(10)
	p, hash := g.Marker(2)
	o := NewOracle()
	if _, err := o.AddBody(EncodeBody([]Profile{p}, FormSingle), recv); err != nil {
		t.Fatal(err)
	}
	got := o.Expected()[ListKey{Audience: g.AudienceKey(2), Type: ListIDFA}]
	if !slices.Equal(got, []string{hash}) {
		t.Fatalf("marker list holds %v, want [%s]", got, hash)
	}
}

// TestAEPGeneratorShape: bodies of at most ten profiles, each profile with
// all its memberships, most of them unchanged re-sends; some bodies retried
// and older bodies replayed after newer ones of the same profile, which the
// oracle finds winning nothing; and a re-send of every profile flips
// nothing.
func TestAEPGeneratorShape(t *testing.T) {
	gen := NewAEPGenerator(AEPOptions{Seed: 7})
	o := NewOracle()
	var bodies [][]byte
	var retries, replays, staleReplays, mems, unchanged, flips, resent int
	for i := range 3000 {
		b := gen.Next(10 + i%3) // asking for more than ten gets ten
		if b.Index != i {
			t.Fatalf("body %d has index %d", i, b.Index)
		}
		if len(b.Profiles) == 0 || len(b.Profiles) > MaxAEPProfiles {
			t.Fatalf("body %d has %d profiles", i, len(b.Profiles))
		}
		var n int
		for _, p := range b.Profiles {
			n += len(p.Memberships)
			for _, m := range p.Memberships {
				if m.Time.After(gen.o.Start.Add(time.Duration(gen.sends) * gen.o.Step)) {
					t.Fatalf("body %d: a membership from the future", i)
				}
			}
		}
		if n != b.Memberships {
			t.Fatalf("body %d: %d memberships, counted %d", i, n, b.Memberships)
		}
		raw := EncodeBody(b.Profiles, FormArray)
		bodies = append(bodies, raw)
		st, err := o.AddBody(raw, recv)
		if err != nil {
			t.Fatalf("body %d: %v", i, err)
		}
		flips += st.Flips
		resent += st.Resent
		mems += b.Memberships
		unchanged += b.Unchanged
		if b.Retry {
			retries++
			if st, _ := o.AddBody(raw, recv); st.Resent != st.Changes {
				t.Fatalf("body %d sent again: %+v, want every change re-sent", i, st)
			}
		}
		for _, r := range b.Replays {
			if r >= i {
				t.Fatalf("body %d replays body %d, not an older one", i, r)
			}
			replays++
			st, _ := o.AddBody(bodies[r], recv)
			if st.Flips+st.NoOps != 0 {
				t.Fatalf("body %d replayed after body %d: %+v, want no change to win", r, i, st)
			}
			if st.Stale > 0 {
				staleReplays++
			}
		}
	}
	if retries < 100 || retries > 200 {
		t.Errorf("%d of 3000 bodies retried, want about 5 %%", retries)
	}
	if replays < 100 || staleReplays < replays/10 {
		t.Errorf("%d replays in 3000 bodies, %d of them with a change a later send undid; want some hundreds, some undone", replays, staleReplays)
	}
	// Re-sending everyone unchanged flips nothing, in new bodies.
	seen := map[string]bool{}
	for _, b := range bodies {
		seen[string(b)] = true
	}
	profiles := 0
	for _, ps := range gen.Resend(10) {
		if len(ps) == 0 || len(ps) > MaxAEPProfiles {
			t.Fatalf("a re-send body of %d profiles", len(ps))
		}
		profiles += len(ps)
		raw := EncodeBody(ps, FormArray)
		if seen[string(raw)] {
			t.Fatalf("a re-send body is byte for byte an earlier body")
		}
		st, err := o.AddBody(raw, recv)
		if err != nil || st.Resent != st.Changes || st.Changes == 0 {
			t.Fatalf("a re-send body: %+v, %v; want every change re-sent", st, err)
		}
	}
	if profiles != len(gen.people) {
		t.Errorf("re-sent %d profiles of %d", profiles, len(gen.people))
	}
	if share := float64(unchanged) / float64(mems); share < 0.6 || share > 0.9 {
		t.Errorf("%d of %d memberships unchanged (%.2f), want most but not all", unchanged, mems, share)
	}
	if share := float64(resent) / float64(resent+flips); share < 0.6 || share > 0.9 {
		t.Errorf("the oracle finds %d re-sends and %d flips (%.2f re-sent), want most re-sent", resent, flips, share)
	}
}

func TestAEPGeneratorIsRepeatable(t *testing.T) {
	a, b := NewAEPGenerator(AEPOptions{Seed: 3}), NewAEPGenerator(AEPOptions{Seed: 3})
	for i := range 200 {
		x, y := a.Next(10), b.Next(10)
		if !bytes.Equal(EncodeBody(x.Profiles, FormArray), EncodeBody(y.Profiles, FormArray)) || x.Retry != y.Retry || !slices.Equal(x.Replays, y.Replays) {
			t.Fatalf("body %d differs between two generators of one seed", i)
		}
	}
}
