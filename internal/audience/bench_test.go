package audience

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/pinlist/pinlist/internal/audience/audiencetest"
)

// BenchmarkMapProfiles measures the mapping of one request as ingest does
// it with a Mapper kept between requests: parse, normalise, hash and
// coalesce (Mapper.Map) 10,000 generated profiles already in memory, on
// the calling goroutine.
func BenchmarkMapProfiles(b *testing.B) {
	m := NewMapper(Limits{})
	audiencetest.BenchMap(b, func(body []byte, received time.Time) (int, int, error) {
		rep, err := m.Map(body, received)
		return rep.Activated, m.Len(), err
	})
}

// BenchmarkParseCoalesce is BenchmarkMapProfiles' work through the tests'
// entry points: the changes in arrival order as []Change, then Coalesce.
func BenchmarkParseCoalesce(b *testing.B) {
	audiencetest.BenchMap(b, func(body []byte, received time.Time) (int, int, error) {
		changes, rep, err := ParseProfilesBytes(body, Limits{}, received)
		if err != nil {
			return 0, 0, err
		}
		return rep.Activated, len(Coalesce(changes)), nil
	})
}

// BenchmarkSHA256Baseline hashes the same identifier strings and nothing
// else: the physical limit of the mapping on this machine.
func BenchmarkSHA256Baseline(b *testing.B) {
	_, ids := audiencetest.Body(b, audiencetest.Profiles, 1)
	raw := make([][]byte, len(ids))
	for i, id := range ids {
		raw[i] = []byte(id)
	}
	var sink byte
	b.ReportAllocs()
	cpu := audiencetest.CPUTime()
	for b.Loop() {
		for _, id := range raw {
			sum := sha256.Sum256(id)
			sink ^= sum[0]
		}
	}
	audiencetest.ReportIDs(b, len(ids), cpu)
	if sink == 0 && b.N < 0 {
		b.Log(sink)
	}
}

// BenchmarkMapStages times each stage of BenchmarkMapProfiles on its own,
// to show where the time goes: parsing (with normalising and hashing) and
// coalescing the compact records. Packing the message bodies is
// wire.BenchmarkPack's.
func BenchmarkMapStages(b *testing.B) {
	body, _ := audiencetest.Body(b, audiencetest.Profiles, 1)
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
