package audience

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// mixedBody builds n profiles like profile() does, with every kind of
// identity and membership, failures included:
// repeated identities and audiences, unsupported namespaces, opted-out and
// malformed advertising IDs, bad emails, unknown statuses, bad timestamps,
// audience IDs that cannot name a list, realized then exited.
func mixedBody(rng *rand.Rand, n int) []string {
	ids := []string{"email=a@example.com", "email= B@Example.com ", "EMAIL=c@example.org", "email=not-an-email",
		"gaid=" + gaid, "GAID=" + strings.ToUpper(gaid), "gaid=00000000-0000-0000-0000-000000000000", "gaid={" + gaid + "}",
		"idfa=" + idfa, "idfa=" + strings.ToLower(idfa), "email_lc_sha256=" + sha("d@example.com"), "email_lc_sha256=xyz",
		"phone=+40744111222", "email=é@example.com"}
	auds := []string{"a1", "a2", "a3", "a b"}
	stamps := []string{"@2024-01-01T00:00:00Z", "@2024-01-01T00:00:01Z", "@2024-01-01T00:00:00.5+00:00", "@", "@yesterday"}
	statuses := []string{"realized", "existing", "exited", "exited", "gone"}
	profiles := make([]string, n)
	for i := range profiles {
		var pi, pm []string
		for range rng.IntN(4) {
			pi = append(pi, ids[rng.IntN(len(ids))])
		}
		for range rng.IntN(4) {
			pm = append(pm, auds[rng.IntN(len(auds))]+"="+statuses[rng.IntN(len(statuses))]+stamps[rng.IntN(len(stamps))])
		}
		profiles[i] = profile(pi, pm)
	}
	return profiles
}

// checkMapper maps body with m and checks the changes (Changes, and Len
// and At), the report and the error against the parser's records in
// arrival order as Changes, then Coalesce: the coalescer on records
// against the coalescer on Changes.
func checkMapper(t *testing.T, m *Mapper, body []byte, lim Limits) {
	t.Helper()
	changes, want, wantErr := ParseProfilesBytes(body, lim, recv)
	got, err := m.Map(body, recv)
	if fmt.Sprint(err) != fmt.Sprint(wantErr) {
		t.Fatalf("Map error %v, want %v", err, wantErr)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("report (-exact +Mapper):\n%s", diff)
	}
	coalesced := Coalesce(changes)
	if diff := cmp.Diff(rows(coalesced), rows(m.Changes())); diff != "" {
		t.Fatalf("changes (-exact +Mapper):\n%s", diff)
	}
	checkAt(t, m, coalesced)
}

// checkAt fails unless m.At reads exactly the changes want (Coalesce's
// order, the hash as its bytes, the time as Unix nanoseconds).
func checkAt(t *testing.T, m *Mapper, want []Change) {
	t.Helper()
	if m.Len() != len(want) {
		t.Fatalf("Len %d, want %d", m.Len(), len(want))
	}
	for j, c := range want {
		got := m.At(j)
		if got.Audience != c.Audience || got.List != c.List || got.Op != c.Op || hex.EncodeToString(got.Sum[:]) != c.Hash ||
			got.Time != c.EventTime.UnixNano() || got.Received != c.Received {
			t.Fatalf("At(%d) = %+v (sum %x), want %+v", j, got, *got.Sum, c)
		}
	}
}

// TestMapperMatchesParseThenCoalesce maps many generated bodies with one
// Mapper (so buffers are reused between bodies of different sizes), in
// several forms, and holds each result to Coalesce of the parser's changes.
func TestMapperMatchesParseThenCoalesce(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	forms := []struct {
		name string
		make func(profiles []string) []byte
	}{
		{"array", func(ps []string) []byte { return []byte("[" + strings.Join(ps, ",") + "]") }},
		{"wrapper", func(ps []string) []byte { return []byte(`{"profiles":[` + strings.Join(ps, ",") + "]}") }},
		{"indented", func(ps []string) []byte {
			var b bytes.Buffer
			if err := json.Indent(&b, []byte(`{"profiles":[`+strings.Join(ps, ",")+"]}"), " ", "\t"); err != nil {
				t.Fatal(err)
			}
			return b.Bytes()
		}},
		{"extra members", func(ps []string) []byte {
			for i := range ps {
				ps[i] = `{"attributes":{"a":[1,"x",{"b":null}]},` + ps[i][1:len(ps[i])-1] + `,"x":true}`
			}
			return []byte("[" + strings.Join(ps, ",") + "]")
		}},
		{"an escape half way", func(ps []string) []byte {
			ps[len(ps)/2+len(ps)/4] = profile([]string{`email=a\u0040example.com`}, []string{"a1=realized@"})
			return []byte("[" + strings.Join(ps, ",") + "]")
		}},
		{"a single profile", func(ps []string) []byte { return []byte(ps[0]) }},
	}
	m := NewMapper(Limits{})
	for round := range 40 {
		for _, f := range forms {
			profiles := mixedBody(rng, 1+rng.IntN(60))
			body := f.make(profiles)
			t.Run(fmt.Sprintf("%s/%d", f.name, round), func(t *testing.T) {
				checkMapper(t, m, body, Limits{})
			})
		}
	}
}

// TestMapperLargeBodies checks a large body, and that the limits, the
// failure cap and the failure paths count the whole body.
func TestMapperLargeBodies(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	body := []byte(`{"profiles":[` + strings.Join(mixedBody(rng, 4000), ",") + "]}")
	m := NewMapper(Limits{})
	checkMapper(t, m, body, Limits{})
	records := len(m.p.recs)
	rep, err := m.Map(body, recv)
	if err != nil || len(rep.Failures) != DefaultMaxFailures || !rep.FailuresTruncated {
		t.Fatalf("failures %d, truncated %v, err %v: want the cap reached", len(rep.Failures), rep.FailuresTruncated, err)
	}

	limits := []struct {
		name string
		lim  Limits
	}{
		{"profiles over the limit", Limits{MaxProfiles: 3000}},
		{"changes over the limit", Limits{MaxChanges: records - 1}},
		{"changes at the limit", Limits{MaxChanges: records}},
		{"failure cap reached", Limits{MaxFailures: countFailures(m.p.rep) - 1}},
		{"failure cap not reached", Limits{MaxFailures: countFailures(m.p.rep)}},
	}
	for _, tt := range limits {
		t.Run(tt.name, func(t *testing.T) {
			checkMapper(t, NewMapper(tt.lim), body, tt.lim)
		})
	}
}

// TestMapperOneIdentifierManyTimes maps a body in which every profile
// has the same identifiers in the same audiences, with times that tie and
// times that do not: one hash fills whole groups.
func TestMapperOneIdentifierManyTimes(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	ps := make([]string, 3000)
	for i := range ps {
		at := fmt.Sprintf("@2024-01-01T00:00:%02dZ", rng.IntN(60))
		ps[i] = profile([]string{"email=a@example.com", "gaid=" + gaid}, []string{"a1=realized" + at, "a2=exited" + at})
	}
	body := []byte("[" + strings.Join(ps, ",") + "]")
	checkMapper(t, NewMapper(Limits{}), body, Limits{})
}

// TestMapperKeepsNoPlainIdentifier maps bodies whose identifiers go
// through every scratch buffer (escapes, emails to normalise) and checks that none is left in the Mapper after.
func TestMapperKeepsNoPlainIdentifier(t *testing.T) {
	const secret = "Secret.Person@Example.com"
	ps := make([]string, 200)
	for i := range ps {
		ps[i] = profile([]string{"email= " + secret}, []string{"a1=realized@"})
	}
	for _, body := range []string{
		"[" + strings.Join(ps, ",") + "]",
		`[{"identityMap":{"email":[{"id":"Secret.Person\u0040Example.com"}]},"segmentMembership":{"ups":{"a1":{"status":"realized"}}}}]`,
		// Keys are kept while their object is read: an identifier used as
		// a key, escaped or not, in a small and in a large object.
		`[{"segmentMembership":{"ups":{"Secret.Person@Example.com":{},"Secret.Person\u0040Example.org":{}}}}]`,
		`[{"segmentMembership":{"ups":{` + manyKeys(20) + `,"Secret.Person@Example.com":{"status":"realized"}}}}]`,
	} {
		m := NewMapper(Limits{})
		if _, err := m.Map([]byte(body), recv); err != nil {
			t.Fatal(err)
		}
		p := &m.p
		bufs := [][]byte{p.strbuf[:cap(p.strbuf)], p.idbuf[:cap(p.idbuf)], p.h.norm[:cap(p.h.norm)]}
		bufs = append(bufs, p.keys[:cap(p.keys)]...)
		bufs = append(bufs, p.escKeys[:cap(p.escKeys)]...)
		for _, set := range p.sets {
			for k := range set {
				bufs = append(bufs, []byte(k))
			}
		}
		for _, buf := range bufs {
			if bytes.Contains(bytes.ToLower(buf), []byte("secret.person")) {
				t.Fatalf("a scratch buffer still holds the identifier after Map")
			}
		}
	}
}

func countFailures(r Report) int {
	n := 0
	for _, v := range r.Failed {
		n += v
	}
	return n
}
