// Package audiencetest helps the tests and benchmarks of the mapping, in
// package audience and after it (package wire): it generates realistic AEP
// request bodies and reports identities mapped a second. It imports
// nothing of pinlist, so package audience's own tests use it too; nothing
// but tests imports it.
package audiencetest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Profiles is the size of the generated body the mapping benchmarks map.
const Profiles = 10_000

// Body generates a realistic request body of n AEP profiles: 1–2 emails
// (some with upper case or surrounding space), one advertising ID (gaid or
// idfa), 1–3 memberships out of 20 audiences (mostly realized, some exited or
// existing, timestamps in AEP's several formats). It returns the body and
// every identifier string in it, in order.
func Body(tb testing.TB, n int, seed uint64) ([]byte, []string) {
	tb.Helper()
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
		tb.Fatalf("encode the generated body: %v", err)
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

// BenchMap runs mapOne on the generated body of Profiles profiles
// once per iteration and reports identities a second. mapOne returns how
// many identities it activated (all of them) and its output's length (not
// zero).
func BenchMap(b *testing.B, mapOne func(body []byte, received time.Time) (activated, out int, err error)) {
	body, ids := Body(b, Profiles, 1)
	received := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	cpu := CPUTime()
	for b.Loop() {
		activated, out, err := mapOne(body, received)
		if err != nil || activated != len(ids) || out == 0 {
			b.Fatalf("activated %d of %d identities, %d out, err %v", activated, len(ids), out, err)
		}
	}
	ReportIDs(b, len(ids), cpu)
}

// ReportIDs reports identities a second of wall time (ids/s) and of the
// process's CPU time (cpu-ids/s): on a machine shared with other work the
// second is the steadier measure of the work itself.
func ReportIDs(b *testing.B, ids int, cpuBefore time.Duration) {
	b.ReportMetric(float64(ids*b.N)/b.Elapsed().Seconds(), "ids/s")
	if cpu := CPUTime() - cpuBefore; cpu > 0 {
		b.ReportMetric(float64(ids*b.N)/cpu.Seconds(), "cpu-ids/s")
	}
}

// CPUTime is the user and system CPU time of the process so far.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
