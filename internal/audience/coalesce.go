package audience

import (
	"cmp"
	"slices"
	"strings"
)

// Coalesce keeps, per (audience, list type, hash), the change of the
// greatest Precedence: the latest event time, on a tie the exit, a receive
// time below any event time. Of changes of equal precedence (the same
// state) the larger Seq wins, and on a full tie the later one in changes.
// The result is a new slice sorted by audience (namespace, then ID), list
// type, op and hash, so equal input sets give equal output whatever their
// order. The input is not modified. The Mapper coalesces its records with
// the same coalesceOrder.
func Coalesce(changes []Change) []Change {
	if len(changes) == 0 {
		return nil
	}
	type groupKey struct {
		aud  Ref
		list ListType
	}
	group, groups := denseRanks(len(changes), func(i int) groupKey { return groupKey{changes[i].Audience, changes[i].List} },
		func(a, b groupKey) int {
			return cmp.Or(compareRef(a.aud, b.aud), strings.Compare(string(a.list), string(b.list)))
		})
	ops, nops := denseRanks(len(changes), func(i int) Op { return changes[i].Op },
		func(a, b Op) int { return strings.Compare(string(a), string(b)) })
	winners := new(coalesceScratch).order(coalesceInput{
		group:      group,
		groups:     groups,
		key:        func(i int32) uint64 { return prefix8(changes[i].Hash) },
		radixBytes: 8,
		cmpHash: func(a, b int32) int {
			return strings.Compare(changes[a].Hash, changes[b].Hash)
		},
		cmpLater: func(a, b int32) int {
			x, y := &changes[a], &changes[b]
			return cmp.Or(
				comparePrecedence(x.Received, x.EventTime.UnixNano(), x.Op == OpRemove, y.Received, y.EventTime.UnixNano(), y.Op == OpRemove),
				cmp.Compare(x.Seq, y.Seq))
		},
		op:  func(i int32) int { return int(ops[i]) },
		ops: nops,
	})
	out := make([]Change, len(winners))
	for j, i := range winners {
		out[j] = changes[i]
	}
	return out
}

// comparePrecedence compares two changes' precedences (whether the time is
// a receive time, Unix nanoseconds, whether the op is REMOVE) as their
// Precedence strings compare, without building the strings.
func comparePrecedence(recvA bool, tA int64, removeA bool, recvB bool, tB int64, removeB bool) int {
	return cmp.Or(cmp.Compare(bit(recvB), bit(recvA)), cmp.Compare(tA, tB), cmp.Compare(bit(removeA), bit(removeB)))
}

func bit(b bool) int {
	if b {
		return 1
	}
	return 0
}

// coalesceInput describes n elements to coalesce: each belongs to a group
// (audience and list type, numbered in output order) and has a hash, a
// precedence and an arrival order, and an op.
type coalesceInput struct {
	group    []int32
	groups   int
	key      func(i int32) uint64 // the first 8 bytes of the hash, big-endian: orders like the hash
	cmpHash  func(a, b int32) int // compares the whole hashes
	cmpLater func(a, b int32) int // compares (precedence, arrival)
	op       func(i int32) int    // the op's rank in sorted order, < ops
	ops      int
	// radixBytes is how many leading bytes of key the radix sort orders
	// by; equal runs are then sorted in full.
	radixBytes int
}

// coalesceScratch is coalesceOrder's working memory, kept by a Mapper from
// one body to the next.
type coalesceScratch struct {
	start, next, out, winners []int32
	items, tmp                []sortItem
}

// order returns the winning element of every (group, hash) in output
// order: by group, then op, then hash. The result is in s's memory, valid
// until the next call.
func (s *coalesceScratch) order(in coalesceInput) []int32 {
	n := len(in.group)
	// Counting sort by group, stable.
	start := resize(&s.start, in.groups+1)
	clear(start)
	for _, g := range in.group {
		start[g+1]++
	}
	for g := 1; g <= in.groups; g++ {
		start[g] += start[g-1]
	}
	items := resize(&s.items, n)
	next := append(s.next[:0], start[:in.groups]...)
	s.next = next
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

	out := s.out[:0]
	tmp := resize(&s.tmp, n)
	winners := s.winners[:0]
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
	s.out, s.winners = out, winners
	return out
}

// resize sets *s to n elements, reusing its memory (they are not
// cleared: callers overwrite them), and returns it.
func resize[T any](s *[]T, n int) []T {
	if cap(*s) < n {
		*s = make([]T, n)
	}
	*s = (*s)[:n]
	return *s
}

// denseRanks gives each of n elements the rank of its key among the
// distinct keys (in cmpFn order), and the number of distinct keys.
func denseRanks[K comparable](n int, key func(i int) K, cmpFn func(a, b K) int) ([]int32, int) {
	ids := map[K]int32{}
	var keys []K
	rank := make([]int32, n)
	for i := range rank {
		k := key(i)
		id, ok := ids[k]
		if !ok {
			id = int32(len(keys))
			ids[k] = id
			keys = append(keys, k)
		}
		rank[i] = id
	}
	r := ranks(keys, cmpFn)
	for i := range rank {
		rank[i] = r[rank[i]]
	}
	return rank, len(keys)
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
