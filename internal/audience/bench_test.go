package audience

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"
)

// benchProfiles is the size of the generated body the benchmarks map.
const benchProfiles = 10_000

// genBody generates a realistic request body of n AEP profiles: 1–2 emails
// (some with upper case or surrounding space), one advertising ID (gaid or
// idfa), 1–3 memberships out of 20 audiences (mostly realized, some exited or
// existing, timestamps in AEP's several formats). It returns the body and
// every identifier string in it, in order.
func genBody(n int, seed uint64) ([]byte, []string) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	auds := make([]string, 20)
	for i := range auds {
		auds[i] = genUUID(rng, false)
	}
	first := []string{"anna", "ben", "chloe", "david", "emma", "felix", "grace", "hugo", "isla", "jonas"}
	last := []string{"smith", "jones", "garcia", "muller", "rossi", "dubois", "kowalski", "nielsen"}
	domains := []string{"example.com", "mail.example.org", "example.net", "corp.example.co.uk"}
	formats := []string{"2006-01-02T15:04:05Z", "2006-01-02T15:04:05.000-0700", "2006-01-02T15:04:05.000000Z", "2006-01-02T15:04:05-07:00"}
	zones := []*time.Location{time.UTC, time.FixedZone("", 2*3600), time.FixedZone("", -5*3600)}
	statuses := []string{"realized", "realized", "realized", "realized", "realized", "realized", "exited", "exited", "exited", "existing"}
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)

	type entry struct {
		ID string `json:"id"`
	}
	type membership struct {
		Status string `json:"status"`
		Time   string `json:"lastQualificationTime"`
	}
	type profile struct {
		IdentityMap       map[string][]entry               `json:"identityMap"`
		SegmentMembership map[string]map[string]membership `json:"segmentMembership"`
	}
	var ids []string
	profiles := make([]profile, n)
	for i := range profiles {
		idm := map[string][]entry{}
		for e := 0; e < 1+rng.IntN(2); e++ {
			email := fmt.Sprintf("%s.%s%d@%s", first[rng.IntN(len(first))], last[rng.IntN(len(last))], rng.IntN(100000), domains[rng.IntN(len(domains))])
			switch rng.IntN(10) {
			case 0:
				email = strings.ToUpper(email[:1]) + email[1:]
			case 1:
				email = " " + email + " "
			}
			idm["email"] = append(idm["email"], entry{email})
		}
		if rng.IntN(10) < 7 {
			idm["gaid"] = []entry{{genUUID(rng, false)}}
		} else {
			idm["IDFA"] = []entry{{genUUID(rng, true)}}
		}
		for _, e := range idm["email"] {
			ids = append(ids, e.ID)
		}
		for _, ns := range []string{"gaid", "IDFA"} {
			for _, e := range idm[ns] {
				ids = append(ids, e.ID)
			}
		}
		sm := map[string]membership{}
		for range 1 + rng.IntN(3) {
			at := base.Add(time.Duration(rng.IntN(30*24*3600)) * time.Second).In(zones[rng.IntN(len(zones))])
			sm[auds[rng.IntN(len(auds))]] = membership{Status: statuses[rng.IntN(len(statuses))], Time: at.Format(formats[rng.IntN(len(formats))])}
		}
		profiles[i] = profile{IdentityMap: idm, SegmentMembership: map[string]map[string]membership{"ups": sm}}
	}
	body, err := json.Marshal(map[string]any{"profiles": profiles})
	if err != nil {
		panic(err) // static types: cannot fail
	}
	return body, ids
}

func genUUID(rng *rand.Rand, upper bool) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	s := fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	if upper {
		return strings.ToUpper(s)
	}
	return s
}

// benchMapping runs mapOne on the generated body of benchProfiles profiles
// once per iteration and reports identities a second. mapOne returns how
// many identities it activated (all of them) and its output's length (not
// zero).
func benchMapping(b *testing.B, mapOne func(body []byte, received time.Time) (activated, out int, err error)) {
	body, ids := genBody(benchProfiles, 1)
	received := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		activated, out, err := mapOne(body, received)
		if err != nil || activated != len(ids) || out == 0 {
			b.Fatalf("activated %d of %d identities, %d out, err %v", activated, len(ids), out, err)
		}
	}
	reportIDs(b, len(ids), cpu)
}

// reportIDs reports identities a second of wall time (ids/s) and of the
// process's CPU time (cpu-ids/s): on a machine shared with other work the
// second is the steadier measure of the work itself.
func reportIDs(b *testing.B, ids int, cpuBefore time.Duration) {
	b.ReportMetric(float64(ids*b.N)/b.Elapsed().Seconds(), "ids/s")
	if cpu := cpuTime() - cpuBefore; cpu > 0 {
		b.ReportMetric(float64(ids*b.N)/cpu.Seconds(), "cpu-ids/s")
	}
}

// cpuTime is the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMapProfiles measures the mapping of one request as ingest does
// it with a Mapper kept between requests: parse, normalise, hash and
// coalesce (Mapper.Map) 10,000 generated profiles already in memory, on
// the calling goroutine.
func BenchmarkMapProfiles(b *testing.B) {
	m := NewMapper(Limits{})
	benchMapping(b, func(body []byte, received time.Time) (int, int, error) {
		rep, err := m.Map(body, received)
		return rep.Activated, m.Len(), err
	})
}

// BenchmarkMapAndPack is all of ingest's work on a body with a Mapper: map
// it, then pack the changes into queue message bodies (Mapper.Map,
// Mapper.Pack).
func BenchmarkMapAndPack(b *testing.B) {
	m := NewMapper(Limits{})
	benchMapping(b, func(body []byte, received time.Time) (int, int, error) {
		rep, err := m.Map(body, received)
		if err != nil {
			return 0, 0, err
		}
		packed, err := m.Pack(0)
		return rep.Activated, len(packed), err
	})
}

// BenchmarkParseCoalescePack is the same work through the tests' entry
// points: the changes in arrival order as []Change, Coalesce, PackMessages.
func BenchmarkParseCoalescePack(b *testing.B) {
	benchMapping(b, func(body []byte, received time.Time) (int, int, error) {
		changes, rep, err := ParseProfilesBytes(body, Limits{}, received)
		if err != nil {
			return 0, 0, err
		}
		packed, err := PackMessages(Coalesce(changes), 0)
		return rep.Activated, len(packed), err
	})
}

// BenchmarkSHA256Baseline hashes the same identifier strings and nothing
// else: the physical limit of the mapping on this machine.
func BenchmarkSHA256Baseline(b *testing.B) {
	_, ids := genBody(benchProfiles, 1)
	raw := make([][]byte, len(ids))
	for i, id := range ids {
		raw[i] = []byte(id)
	}
	var sink byte
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		for _, id := range raw {
			sum := sha256.Sum256(id)
			sink ^= sum[0]
		}
	}
	reportIDs(b, len(ids), cpu)
	if sink == 0 && b.N < 0 {
		b.Log(sink)
	}
}

// BenchmarkMapStages times each stage of BenchmarkMapAndPack on its own,
// to show where the time goes: parsing (with normalising and hashing),
// coalescing the compact records, and packing the message bodies.
func BenchmarkMapStages(b *testing.B) {
	body, _ := genBody(benchProfiles, 1)
	received := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
	m := NewMapper(Limits{})
	if _, err := m.Map(body, received); err != nil {
		b.Fatal(err)
	}
	var p parser
	stages := []struct {
		name string
		run  func()
	}{
		{"parse", func() { _ = p.parse(body, m.lim, received) }},
		{"coalesce", func() { m.coalesce() }},
		{"pack", func() { _, _ = m.Pack(0) }},
	}
	for _, s := range stages {
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.run()
			}
		})
	}
}

// BenchmarkPackMessages packs the coalesced changes of the generated body
// into queue message bodies (ingest's last step).
func BenchmarkPackMessages(b *testing.B) {
	body, _ := genBody(benchProfiles, 1)
	changes, _, err := MapProfilesBytes(body, Limits{}, time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := PackMessages(changes, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(changes)*b.N)/b.Elapsed().Seconds(), "changes/s")
}

// BenchmarkDecodeMessage decodes and validates those message bodies and
// turns them back into changes (upload's first step).
func BenchmarkDecodeMessage(b *testing.B) {
	body, _ := genBody(benchProfiles, 1)
	changes, _, err := MapProfilesBytes(body, Limits{}, time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		b.Fatal(err)
	}
	packed, err := PackMessages(changes, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var seq uint64
		for _, p := range packed {
			m, err := DecodeMessage(p.Body)
			if err != nil {
				b.Fatal(err)
			}
			seq += uint64(len(m.Changes(seq)))
		}
	}
	b.ReportMetric(float64(len(changes)*b.N)/b.Elapsed().Seconds(), "changes/s")
}
