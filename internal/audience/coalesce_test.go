package audience

import (
	"bytes"
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
)

func at(sec int) time.Time { return time.Unix(1_700_000_000+int64(sec), 0).UTC() }

func TestCoalesce(t *testing.T) {
	a, b := Ref{"ups", "a"}, Ref{"ups", "b"}
	c := Ref{"CustomerAudienceUpload", "z"}
	h1, h2, h3 := sha("1"), sha("2"), sha("3")
	tests := []struct {
		name string
		in   []Change
		want []Change
	}{
		{name: "nothing", in: nil, want: nil},
		{
			name: "the latest event time wins",
			in: []Change{
				{a, ListEmail, h1, OpAdd, at(1), 1, false},
				{a, ListEmail, h1, OpRemove, at(2), 2, false},
			},
			want: []Change{{a, ListEmail, h1, OpRemove, at(2), 2, false}},
		},
		{
			name: "a later event time wins over a later arrival",
			in: []Change{
				{a, ListEmail, h1, OpRemove, at(5), 1, false},
				{a, ListEmail, h1, OpAdd, at(3), 2, false},
			},
			want: []Change{{a, ListEmail, h1, OpRemove, at(5), 1, false}},
		},
		{
			name: "on equal times the exit wins over a later arrival",
			in: []Change{
				{a, ListEmail, h1, OpAdd, at(3), 2, false},
				{a, ListEmail, h1, OpRemove, at(3), 1, false},
			},
			want: []Change{{a, ListEmail, h1, OpRemove, at(3), 1, false}},
		},
		{
			name: "on equal times the exit wins over an earlier arrival",
			in: []Change{
				{a, ListEmail, h1, OpRemove, at(3), 1, false},
				{a, ListEmail, h1, OpAdd, at(3), 2, false},
			},
			want: []Change{{a, ListEmail, h1, OpRemove, at(3), 1, false}},
		},
		{
			name: "an event time outranks a later receive time",
			in: []Change{
				{a, ListEmail, h1, OpAdd, at(3), 1, false},
				{a, ListEmail, h1, OpRemove, at(9), 2, true},
			},
			want: []Change{{a, ListEmail, h1, OpAdd, at(3), 1, false}},
		},
		{
			name: "among receive times the later wins",
			in: []Change{
				{a, ListEmail, h1, OpRemove, at(9), 1, true},
				{a, ListEmail, h1, OpAdd, at(8), 2, true},
			},
			want: []Change{{a, ListEmail, h1, OpRemove, at(9), 1, true}},
		},
		{
			name: "on equal precedence the larger Seq wins",
			in: []Change{
				{a, ListEmail, h1, OpAdd, at(3), 7, true},
				{a, ListEmail, h1, OpAdd, at(3), 2, true},
			},
			want: []Change{{a, ListEmail, h1, OpAdd, at(3), 7, true}},
		},
		{
			name: "audiences, list types and hashes coalesce apart; output sorted by audience, list, op, hash",
			in: []Change{
				{b, ListMAID, h2, OpAdd, at(1), 1, false},
				{a, ListEmail, h3, OpRemove, at(1), 2, false},
				{a, ListEmail, h1, OpAdd, at(1), 3, false},
				{a, ListMAID, h1, OpAdd, at(1), 4, false},
				{c, ListIDFA, h1, OpAdd, at(1), 5, false},
				{a, ListEmail, h2, OpAdd, at(1), 6, false},
				{a, ListEmail, h2, OpAdd, at(0), 7, false},
			},
			want: []Change{
				{c, ListIDFA, h1, OpAdd, at(1), 5, false},
				{a, ListEmail, h1, OpAdd, at(1), 3, false},
				{a, ListEmail, h2, OpAdd, at(1), 6, false},
				{a, ListEmail, h3, OpRemove, at(1), 2, false},
				{a, ListMAID, h1, OpAdd, at(1), 4, false},
				{b, ListMAID, h2, OpAdd, at(1), 1, false},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.in)
			got := Coalesce(in)
			if diff := gocmp.Diff(rows(tt.want), rows(got)); diff != "" {
				t.Errorf("Coalesce (-want +got):\n%s", diff)
			}
			if !slices.EqualFunc(in, tt.in, func(x, y Change) bool { return x == y }) {
				t.Error("Coalesce modified its input")
			}
		})
	}
}

// TestCoalesceArrivalOrder is the property: any arrival order (Seq given
// by arrival) coalesces to the same changes, equal times included (the
// precedence, not the arrival, decides), and to what a plain map-based
// implementation gives.
func TestCoalesceArrivalOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 40 {
		changes := randomChanges(rng, 1+rng.IntN(400), round%2 == 0)
		want := rowsNoSeq(referenceCoalesce(changes))
		for range 5 {
			rng.Shuffle(len(changes), func(i, j int) { changes[i], changes[j] = changes[j], changes[i] })
			for i := range changes {
				changes[i].Seq = uint64(i + 1)
			}
			if diff := gocmp.Diff(want, rowsNoSeq(Coalesce(changes))); diff != "" {
				t.Fatalf("round %d: coalescing depends on arrival order (-want +got):\n%s", round, diff)
			}
		}
	}
}

// TestCoalesceMatchesReference compares Coalesce with the map-based
// reference on inputs with equal times, equal Seqs, big groups (the radix
// path) and hashes that share their first 8 bytes.
func TestCoalesceMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for round := range 30 {
		changes := randomChanges(rng, 1+rng.IntN(3000), false)
		want := rows(referenceCoalesce(changes))
		if diff := gocmp.Diff(want, rows(Coalesce(changes))); diff != "" {
			t.Fatalf("round %d (-reference +Coalesce):\n%s", round, diff)
		}
	}
}

// randomChanges draws changes over few audiences, lists and hashes so that
// they collide. distinct gives every change its own event time; otherwise
// times and Seqs repeat. Some hashes share their first 8 bytes, and a few
// are not hex at all (Coalesce must order any string).
func randomChanges(rng *rand.Rand, n int, distinct bool) []Change {
	auds := []Ref{{"ups", "a"}, {"ups", "b"}, {"up", "sa"}, {"ups:", "a"}, {"x", "y"}}
	lists := []ListType{ListEmail, ListMAID, ListIDFA}
	hashes := testHashes
	ops := []Op{OpAdd, OpRemove}
	times := rng.Perm(n)
	out := make([]Change, n)
	for i := range out {
		sec := times[i]
		if !distinct {
			sec = rng.IntN(5)
		}
		out[i] = Change{
			Audience:  auds[rng.IntN(len(auds))],
			List:      lists[rng.IntN(len(lists))],
			Hash:      hashes[rng.IntN(len(hashes))],
			Op:        ops[rng.IntN(len(ops))],
			EventTime: at(sec),
			Seq:       uint64(rng.IntN(n/2 + 1)),
			Received:  rng.IntN(4) == 0,
		}
	}
	return out
}

// testHashes are the hashes randomChanges draws from.
var testHashes = func() []string {
	var h []string
	for i := range 40 {
		h = append(h, sha(fmt.Sprint(i)))
	}
	return append(h, "00000000"+sha("p")[8:], "00000000"+sha("q")[8:], "0000000", "00000000", "zz", "")
}()

// referenceCoalesce is Coalesce written the obvious way, on the
// Precedence strings.
func referenceCoalesce(changes []Change) []Change {
	type key struct {
		aud  Ref
		list ListType
		hash string
	}
	best := map[key]int{}
	for i, c := range changes {
		k := key{c.Audience, c.List, c.Hash}
		j, ok := best[k]
		if !ok {
			best[k] = i
			continue
		}
		o := changes[j]
		if pc, po := c.Precedence(), o.Precedence(); pc > po || pc == po && c.Seq >= o.Seq {
			best[k] = i
		}
	}
	var out []Change
	for _, i := range best {
		out = append(out, changes[i])
	}
	slices.SortFunc(out, func(x, y Change) int {
		return cmp.Or(strings.Compare(x.Audience.Namespace, y.Audience.Namespace), strings.Compare(x.Audience.ID, y.Audience.ID),
			strings.Compare(string(x.List), string(y.List)), strings.Compare(string(x.Op), string(y.Op)), strings.Compare(x.Hash, y.Hash))
	})
	return out
}

// TestMapProfilesIsParseThenCoalesce checks the fused path against the two
// steps on generated bodies with repeated identities and audiences, equal
// and different times, realized then exited in both orders.
func TestMapProfilesIsParseThenCoalesce(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	emails := []string{"a@example.com", "B@example.com", " b@example.com", "c@example.org"}
	maids := []string{"gaid=" + gaid, "idfa=" + idfa, "gaid=" + strings.ToUpper(gaid)}
	auds := []string{"a1", "a2", "a3"}
	stamps := []string{"@2024-01-01T00:00:00Z", "@2024-01-01T00:00:01Z", "@2024-01-01T00:00:00.5+00:00", "@"}
	statuses := []string{"realized", "existing", "exited"}
	for round := range 300 {
		var profiles []string
		for range 1 + rng.IntN(12) {
			var ids, mems []string
			for range rng.IntN(3) {
				ids = append(ids, "email="+emails[rng.IntN(len(emails))])
			}
			if rng.IntN(2) == 0 {
				ids = append(ids, maids[rng.IntN(len(maids))])
			}
			for range rng.IntN(3) {
				mems = append(mems, auds[rng.IntN(len(auds))]+"="+statuses[rng.IntN(len(statuses))]+stamps[rng.IntN(len(stamps))])
			}
			profiles = append(profiles, profile(ids, mems))
		}
		body := "[" + strings.Join(profiles, ",") + "]"
		changes, rep1 := mustParse(t, body, Limits{})
		mapped, rep2, err := MapProfiles(strings.NewReader(body), Limits{}, recv)
		if err != nil {
			t.Fatal(err)
		}
		if diff := gocmp.Diff(rows(Coalesce(changes)), rows(mapped)); diff != "" {
			t.Fatalf("round %d: MapProfiles differs from Coalesce(ParseProfiles) (-two steps +fused):\n%s\nbody: %s", round, diff, body)
		}
		if diff := gocmp.Diff(rep1, rep2); diff != "" {
			t.Fatalf("round %d: reports differ:\n%s", round, diff)
		}
	}
}

// TestRadixSort checks the radix sort against a stable sort, with repeated
// keys and keys that differ only in some bytes.
func TestRadixSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{1, 2, 64, 1000} {
		items := make([]sortItem, n)
		for i := range items {
			items[i] = sortItem{k: rng.Uint64() & 0x00ff00ff0000ff00 >> uint(rng.IntN(2)*8), i: int32(i)}
		}
		want := slices.Clone(items)
		slices.SortStableFunc(want, func(a, b sortItem) int { return cmp.Compare(a.k, b.k) })
		got := radixSort(slices.Clone(items), make([]sortItem, n), 8)
		if !slices.Equal(got, want) {
			t.Errorf("n=%d: radixSort is not a stable sort by k", n)
		}
	}
}

func TestPrefix8(t *testing.T) {
	for _, pair := range [][2]string{{"", "a"}, {"a", "ab"}, {"ab", "b"}, {"0123456", "01234567"}, {"01234567", "012345670"}} {
		if prefix8(pair[0]) > prefix8(pair[1]) {
			t.Errorf("prefix8(%q) > prefix8(%q)", pair[0], pair[1])
		}
	}
	if bytes.Compare([]byte("zz"), []byte("zz\x00")) >= 0 || prefix8("zz") != prefix8("zz\x00") {
		t.Error("zero padding: equal prefixes must be left to the full comparison")
	}
}
