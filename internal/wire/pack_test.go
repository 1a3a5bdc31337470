package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/audience/audiencetest"
)

// recv is the receive time the tests map bodies at.
var recv = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// changesOf reads the last Map's changes from m (Len, At) as Changes, Seq
// being their order.
func changesOf(m *audience.Mapper) []audience.Change {
	out := make([]audience.Change, m.Len())
	for j := range out {
		c := m.At(j)
		out[j] = audience.Change{Audience: c.Audience, List: c.List, Op: c.Op, Hash: hex.EncodeToString(c.Sum[:]),
			EventTime: time.Unix(0, c.Time).UTC(), Seq: uint64(j + 1), Received: c.Received}
	}
	return out
}

// checkPack maps body with m and holds Pack to packChanges of the same
// changes, at several bounds: the same bodies, byte for byte, or the same
// error.
func checkPack(t *testing.T, m *audience.Mapper, body []byte) {
	t.Helper()
	if _, err := m.Map(body, recv); err != nil {
		var re *audience.RequestError
		if !errors.As(err, &re) {
			t.Fatalf("Map: %v", err)
		}
	}
	changes := changesOf(m)
	for _, maxBytes := range []int{0, 1000, 400, 150} {
		want, wantErr := packChanges(changes, maxBytes)
		got, err := Pack(m, maxBytes)
		if fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Fatalf("Pack(%d) error %v, want %v", maxBytes, err, wantErr)
		}
		if !samePacked(want, got) {
			t.Fatalf("Pack(%d) (-packChanges +Pack):\n%s", maxBytes, cmp.Diff(want, got))
		}
	}
}

// aepBodies is the AEP sample payloads of package audience's tests.
func aepBodies(t testing.TB) [][]byte {
	files, err := filepath.Glob("../audience/testdata/aep/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no AEP samples (%v)", err)
	}
	var out [][]byte
	for _, name := range files {
		body, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, body)
	}
	return out
}

// oddBody has an audience ID that needs JSON escapes, memberships without
// a time (Received) and exits, in two namespaces.
const oddBody = `[{"identityMap":{"email":[{"id":"a@example.com"},{"id":"b@example.com"}],"gaid":[{"id":"e4fe9bde-caa0-47b6-908d-ffba3fa184f2"}]},
 "segmentMembership":{"ups":{"q\"<&>\\":{"status":"realized"},"b":{"status":"exited","lastQualificationTime":"2024-01-01T00:00:00Z"}},
  "CustomerAudienceUpload":{"c":{"status":"existing","lastQualificationTime":"1970-01-01T00:00:00Z"}}}}]`

// TestPackMatchesPackChanges packs generated bodies of several sizes, the
// AEP samples and an odd body with one Mapper (so buffers are reused) and
// holds each packing to packChanges.
func TestPackMatchesPackChanges(t *testing.T) {
	m := audience.NewMapper(audience.Limits{})
	bodies := append(aepBodies(t), []byte(oddBody))
	for i, n := range []int{1, 7, 300, 3000} {
		body, _ := audiencetest.Body(t, n, uint64(i+1))
		bodies = append(bodies, body)
	}
	for i, body := range bodies {
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkPack(t, m, body) })
	}
	// The odd body, decoded: its escaped audience and receive times.
	if _, err := m.Map([]byte(oddBody), recv); err != nil {
		t.Fatal(err)
	}
	packed, err := Pack(m, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []audience.Change
	for _, p := range packed {
		msg, err := Decode(p.Body)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, msg.Changes(uint64(len(got)))...)
	}
	if diff := cmp.Diff(changesOf(m), got); diff != "" {
		t.Fatalf("decoded (-mapped +decoded):\n%s", diff)
	}
}

// FuzzPack maps any body and holds Pack to packChanges of the changes the
// Mapper's At reads.
func FuzzPack(f *testing.F) {
	for _, body := range aepBodies(f) {
		f.Add(body)
	}
	f.Add([]byte(oddBody))
	gen, _ := audiencetest.Body(f, 3, 2)
	f.Add(gen)
	m := audience.NewMapper(audience.Limits{})
	f.Fuzz(func(t *testing.T, body []byte) { checkPack(t, m, body) })
}

// packChanges encodes changes (as Coalesce returns them) into message bodies
// of kind "changes", one audience per message, each body at most maxBytes
// (DefaultMaxMessageBytes when 0). The records of one audience keep their
// order and audiences come in order of first appearance, so the messages of
// one audience can go to one FIFO group in order. A change that cannot be
// encoded (unknown list type or op, a hash that is not 64 lowercase hex, an
// invalid audience, a time outside Unix nanoseconds) is an error. It is
// the reference Pack is held to: the same packer, fed from Changes.
func packChanges(changes []audience.Change, maxBytes int) ([]Packed, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxMessageBytes
	}
	// Audiences in order of first appearance, each with its changes in order.
	var order []audience.Ref
	var members [][]int32
	slot := map[audience.Ref]int{}
	cur := -1
	for i := range changes {
		a := changes[i].Audience
		if cur < 0 || order[cur] != a {
			var ok bool
			if cur, ok = slot[a]; !ok {
				if err := a.Validate(); err != nil {
					return nil, fmt.Errorf("pack change %d: %w", i, err)
				}
				cur = len(order)
				slot[a] = cur
				order = append(order, a)
				members = append(members, nil)
			}
		}
		members[cur] = append(members[cur], int32(i))
	}
	pk := packer{maxBytes: maxBytes}
	for k, a := range order {
		idx := members[k]
		err := pk.audience(a, len(idx), func(b []byte, j int) ([]byte, error) {
			return appendRecord(b, &changes[idx[j]])
		}, func(j int) int { return int(idx[j]) })
		if err != nil {
			return nil, err
		}
	}
	return pk.out, nil
}

// appendRecord appends c's Record as JSON, the same bytes encoding/json would
// write for it (every field is plain ASCII once validated).
func appendRecord(b []byte, c *audience.Change) ([]byte, error) {
	if err := validRecord(c.List, c.Op, c.Hash); err != nil {
		return b, err
	}
	if !audience.InUnixNano(c.EventTime) {
		return b, errors.New("event time outside the range of Unix nanoseconds")
	}
	return appendRecordJSON(b, c.List, c.Op, c.Hash, c.EventTime.UnixNano(), c.Received), nil
}

// samePacked reports whether two packings are equal (faster than cmp.Equal
// on hundreds of bodies).
func samePacked(a, b []Packed) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Audience != b[i].Audience || a[i].Records != b[i].Records || !bytes.Equal(a[i].Body, b[i].Body) {
			return false
		}
	}
	return true
}

// BenchmarkMapAndPack is all of ingest's work on a body with a Mapper: map
// it, then pack the changes into queue message bodies (Mapper.Map, Pack).
func BenchmarkMapAndPack(b *testing.B) {
	m := audience.NewMapper(audience.Limits{})
	audiencetest.BenchMap(b, func(body []byte, received time.Time) (int, int, error) {
		rep, err := m.Map(body, received)
		if err != nil {
			return 0, 0, err
		}
		packed, err := Pack(m, 0)
		return rep.Activated, len(packed), err
	})
}

// mappedBench maps the generated body of audiencetest.Profiles profiles.
func mappedBench(b *testing.B) *audience.Mapper {
	body, _ := audiencetest.Body(b, audiencetest.Profiles, 1)
	m := audience.NewMapper(audience.Limits{})
	if _, err := m.Map(body, time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkPack packs the Mapper's coalesced changes of the generated body
// into queue message bodies (ingest's last step).
func BenchmarkPack(b *testing.B) {
	m := mappedBench(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Pack(m, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(m.Len()*b.N)/b.Elapsed().Seconds(), "changes/s")
}

// BenchmarkPackChanges packs the same changes from a []Change (the tests'
// reference packer).
func BenchmarkPackChanges(b *testing.B) {
	changes := changesOf(mappedBench(b))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := packChanges(changes, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(changes)*b.N)/b.Elapsed().Seconds(), "changes/s")
}

// BenchmarkDecode decodes and validates those message bodies and turns
// them back into changes (upload's first step).
func BenchmarkDecode(b *testing.B) {
	m := mappedBench(b)
	packed, err := Pack(m, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var seq uint64
		for _, p := range packed {
			msg, err := Decode(p.Body)
			if err != nil {
				b.Fatal(err)
			}
			seq += uint64(len(msg.Changes(seq)))
		}
	}
	b.ReportMetric(float64(m.Len()*b.N)/b.Elapsed().Seconds(), "changes/s")
}
