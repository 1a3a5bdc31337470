package audience

import (
	"cmp"
	"slices"
	"strings"
)

// Coalesce keeps, per (audience, list type, hash), the change with the latest
// EventTime; on a tie the larger Seq wins (and on a full tie the later one in
// changes). The result is a new slice sorted by audience (namespace, then
// ID), list type, op and hash, so equal input sets give equal output
// whatever their order. The input is not modified.
func Coalesce(changes []Change) []Change {
	if len(changes) == 0 {
		return nil
	}
	group, groups := indexGroups(changes)
	ops := opRanks(changes)
	winners := coalesceOrder(coalesceInput{
		group:      group,
		groups:     groups,
		key:        func(i int32) uint64 { return prefix8(changes[i].Hash) },
		radixBytes: 8,
		cmpHash: func(a, b int32) int {
			return strings.Compare(changes[a].Hash, changes[b].Hash)
		},
		cmpLater: func(a, b int32) int {
			x, y := &changes[a], &changes[b]
			return cmp.Or(x.EventTime.Compare(y.EventTime), cmp.Compare(x.Seq, y.Seq))
		},
		op:  func(i int32) int { return int(ops.rank[i]) },
		ops: ops.n,
	})
	out := make([]Change, len(winners))
	for j, i := range winners {
		out[j] = changes[i]
	}
	return out
}

// coalesceInput describes n elements to coalesce: each belongs to a group
// (audience and list type, numbered in output order) and has a hash, an
// event time and an arrival order, and an op.
type coalesceInput struct {
	group    []int32
	groups   int
	key      func(i int32) uint64 // the first 8 bytes of the hash, big-endian: orders like the hash
	cmpHash  func(a, b int32) int // compares the whole hashes
	cmpLater func(a, b int32) int // compares (event time, arrival)
	op       func(i int32) int    // the op's rank in sorted order, < ops
	ops      int
	// radixBytes is how many leading bytes of key the radix sort orders
	// by; equal runs are then sorted in full.
	radixBytes int
}

// coalesceOrder returns the winning element of every (group, hash) in output
// order: by group, then op, then hash.
func coalesceOrder(in coalesceInput) []int32 {
	n := len(in.group)
	// Counting sort by group, stable.
	start := make([]int32, in.groups+1)
	for _, g := range in.group {
		start[g+1]++
	}
	for g := 1; g <= in.groups; g++ {
		start[g] += start[g-1]
	}
	items := make([]sortItem, n)
	next := slices.Clone(start[:in.groups])
	for i, g := range in.group {
		items[next[g]] = sortItem{k: in.key(int32(i)), i: int32(i)}
		next[g]++
	}
	full := func(a, b sortItem) int {
		if a.k != b.k {
			return cmp.Compare(a.k, b.k)
		}
		return cmp.Or(in.cmpHash(a.i, b.i), in.cmpLater(a.i, b.i))
	}

	out := make([]int32, 0, n)
	tmp := make([]sortItem, n)
	var winners []int32
	for g := 0; g < in.groups; g++ {
		grp := items[start[g]:start[g+1]]
		if len(grp) == 0 {
			continue
		}
		grp = sortGroup(grp, tmp[:len(grp)], in.radixBytes, full)
		// The last element of each run of one hash wins.
		winners = winners[:0]
		for j := range grp {
			if j+1 < len(grp) && grp[j+1].k == grp[j].k && in.cmpHash(grp[j+1].i, grp[j].i) == 0 {
				continue
			}
			winners = append(winners, grp[j].i)
		}
		// By op, keeping hash order within one op.
		for op := 0; op < in.ops; op++ {
			for _, w := range winners {
				if in.op(w) == op {
					out = append(out, w)
				}
			}
		}
	}
	return out
}

// indexGroups numbers the (audience, list type) groups of changes in sorted
// order: group = rank(audience)*len(lists) + rank(list).
func indexGroups(changes []Change) (group []int32, groups int) {
	group = make([]int32, len(changes))
	listOf := make([]int32, len(changes))
	audIDs := map[Ref]int32{}
	var auds []Ref
	listIDs := map[ListType]int32{}
	var lists []ListType
	last, lastID := Ref{}, int32(-1)
	for i := range changes {
		c := &changes[i]
		if lastID < 0 || c.Audience != last {
			id, ok := audIDs[c.Audience]
			if !ok {
				id = int32(len(auds))
				audIDs[c.Audience] = id
				auds = append(auds, c.Audience)
			}
			last, lastID = c.Audience, id
		}
		group[i] = lastID
		id, ok := listIDs[c.List]
		if !ok {
			id = int32(len(lists))
			listIDs[c.List] = id
			lists = append(lists, c.List)
		}
		listOf[i] = id
	}
	audRank := ranks(auds, compareRef)
	listRank := ranks(lists, func(a, b ListType) int { return strings.Compare(string(a), string(b)) })
	nl := int32(len(lists))
	for i := range group {
		group[i] = audRank[group[i]]*nl + listRank[listOf[i]]
	}
	return group, len(auds) * len(lists)
}

// opRanks gives each change the rank of its op among the distinct ops.
type opRanking struct {
	rank []int32
	n    int
}

func opRanks(changes []Change) opRanking {
	var ops []Op
	id := make([]int32, len(changes))
	for i := range changes {
		j := slices.Index(ops, changes[i].Op)
		if j < 0 {
			j = len(ops)
			ops = append(ops, changes[i].Op)
		}
		id[i] = int32(j)
	}
	rank := ranks(ops, func(a, b Op) int { return strings.Compare(string(a), string(b)) })
	for i := range id {
		id[i] = rank[id[i]]
	}
	return opRanking{rank: id, n: len(ops)}
}

func compareRef(a, b Ref) int {
	return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.ID, b.ID))
}

// ranks gives each element of xs (all distinct) its position in sorted order.
func ranks[T any](xs []T, cmpFn func(a, b T) int) []int32 {
	order := make([]int32, len(xs))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return cmpFn(xs[a], xs[b]) })
	rank := make([]int32, len(xs))
	for r, i := range order {
		rank[i] = int32(r)
	}
	return rank
}

// sortItem is an element to sort: k is the first 8 bytes of its hash, big-endian.
type sortItem struct {
	k uint64
	i int32
}

// prefix8 is the first 8 bytes of s, big-endian, zero-padded.
func prefix8(s string) uint64 {
	var k uint64
	for j := 0; j < 8; j++ {
		k <<= 8
		if j < len(s) {
			k |= uint64(s[j])
		}
	}
	return k
}

// sortGroup sorts one group stably by full. Large groups are radix-sorted on
// the top radixBytes bytes of the key (linear time) and only runs that share
// those bytes are then compared in full. It returns the sorted slice, which is grp or tmp.
func sortGroup(grp, tmp []sortItem, radixBytes int, full func(a, b sortItem) int) []sortItem {
	if len(grp) < 64 {
		slices.SortStableFunc(grp, full)
		return grp
	}
	grp = radixSort(grp, tmp, radixBytes)
	shift := uint(64 - 8*radixBytes)
	for j := 0; j < len(grp); {
		e := j + 1
		for e < len(grp) && grp[e].k>>shift == grp[j].k>>shift {
			e++
		}
		if e-j > 1 {
			slices.SortStableFunc(grp[j:e], full)
		}
		j = e
	}
	return grp
}

// radixSort sorts items stably by the top nbytes bytes of k (LSD, one byte
// a pass, skipping bytes that are the same in every item). It returns items
// or tmp, whichever holds the result.
func radixSort(items, tmp []sortItem, nbytes int) []sortItem {
	for shift := 64 - 8*nbytes; shift < 64; shift += 8 {
		var count [256]int
		for _, it := range items {
			count[byte(it.k>>shift)]++
		}
		if count[byte(items[0].k>>shift)] == len(items) {
			continue
		}
		pos := 0
		for d, c := range count {
			count[d] = pos
			pos += c
		}
		for _, it := range items {
			d := byte(it.k >> shift)
			tmp[count[d]] = it
			count[d]++
		}
		items, tmp = tmp, items
	}
	return items
}
