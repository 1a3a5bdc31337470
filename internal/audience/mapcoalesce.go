package audience

import (
	"cmp"
	"encoding/binary"
	"math/bits"
	"slices"
)

// coItem is one record in the coalescing sort: its hash's first 8 bytes
// (big-endian, so they order like the hash) with its op in the lowest bit,
// and its record and hash indexes. Ties of the prefix (rare) are broken by
// the whole hash, then the record's event time and index.
type coItem struct {
	k   uint64
	i   int32 // index into parser.recs
	sum int32 // index into parser.sums
}

// winner is a record that survived coalescing, and its hash.
type winner struct {
	i   int32 // index into parser.recs
	sum int32 // index into parser.sums
}

// run is a stretch of winners of one audience, list type and op, ending
// (exclusive) at end.
type run struct {
	end  int32
	aud  int32
	list uint8
	op   uint8
}

// coalesce is Coalesce over the parser's compact records: it sets m.winners
// to the winning records, in Coalesce's output order (by audience, list
// type, op and hash), and m.runs to their (audience, list type, op) groups.
//
// A counting sort puts the records in (audience, list type) order, each
// parse goroutine's records by that goroutine's counts (see half), so one
// pass places them; each group is then sorted by hash, event time and
// arrival, and the last record of each run of one hash wins. With two
// workers, each coalesces about half of the records, whole groups at a
// time.
func (m *Mapper) coalesce(pr *pair) {
	workers := pr.workers()
	n := m.records()
	m.winners, m.runs = m.winners[:0], m.runs[:0]
	if n == 0 {
		return
	}
	audRank := ranks(m.p.auds, compareRef)
	nl := int32(len(recLists))
	groups := len(m.p.auds) * len(recLists)
	for len(m.scratch) < 2 {
		m.scratch = append(m.scratch, &coalesceScratch{})
	}
	sc := m.scratch

	// Where each part's records of each group go; ends[g] is where group
	// g ends. A part's audiences are ranked through its own numbering.
	for h := range m.parts {
		pt := &m.parts[h]
		pos := resizeClear(&sc[h].count, groups)
		rank := sc[h].rank[:0]
		if pt.aud == nil {
			rank = append(rank, audRank...)
		}
		for _, a := range pt.aud {
			rank = append(rank, audRank[a])
		}
		sc[h].rank = rank
		for a, r := range audRank {
			copy(pos[int(r)*3:int(r)*3+3], pt.counts[3*a:3*a+3])
		}
	}
	ends := resize(&m.ends, groups)
	next := int32(0)
	for g := range groups {
		for h := range m.parts {
			c := sc[h].count[g]
			sc[h].count[g] = next
			next += c
		}
		ends[g] = next
	}
	sorted := resize(&m.sorted, n)
	place := func(h int) {
		pt := &m.parts[h]
		pos, rank := sc[h].count, sc[h].rank
		for i := range pt.recs {
			r := &pt.recs[i]
			g := rank[r.aud()]*nl + int32(r.list())
			sorted[pos[g]] = coItem{
				k:   binary.BigEndian.Uint64(pt.sums[r.sum][:8])&^1 | uint64(r.op()),
				i:   pt.recBase + int32(i),
				sum: pt.sumBase + r.sum,
			}
			pos[g]++
		}
	}
	// Each part's records by the goroutine that parsed them, if there
	// were two.
	if len(m.parts) == 2 && pr != nil {
		pr.run(place)
	} else {
		for h := range m.parts {
			place(h)
		}
	}
	// Group g is audience order[g/3]'s list type g%3.
	order := resize(&m.order, len(audRank))
	for a, r := range audRank {
		order[r] = int32(a)
	}
	// Whole groups to each worker, cut near the middle record.
	cuts := make([]int, workers+1)
	cuts[workers] = groups
	for w, g := 1, 0; w < workers; w++ {
		for g < groups && int(ends[g]) < n*w/workers {
			g++
		}
		cuts[w] = g
	}
	pr.run(func(w int) {
		sc[w].coalesceGroups(m, cuts[w], cuts[w+1], ends, sorted, order)
	})
	for _, c := range sc[:workers] {
		base := int32(len(m.winners))
		m.winners = append(m.winners, c.winners...)
		for _, r := range c.runs {
			r.end += base
			m.runs = append(m.runs, r)
		}
	}
}

// coalesceScratch is one coalescing worker's memory.
type coalesceScratch struct {
	count       []int32 // per group: a part's records, then where its next goes
	rank        []int32 // a part's audience indexes' ranks
	bucketCount []int32
	tmp         []coItem // sortByHash's scratch
	winners     []winner
	runs        []run
}

// coalesceGroups coalesces groups [from, to) of sorted (group g ends at
// ends[g]) into c.winners and c.runs.
func (c *coalesceScratch) coalesceGroups(m *Mapper, from, to int, ends []int32, sorted []coItem, order []int32) {
	lo := int32(0)
	if from > 0 {
		lo = ends[from-1]
	}
	// One spare slot: the branch-free loop below writes every item and
	// only keeps those of its op.
	total := 0
	if to > from {
		total = int(ends[to-1] - lo)
	}
	winners := slices.Grow(c.winners[:0], total+1)[:total+1]
	c.runs = c.runs[:0]
	w := 0
	for g := from; g < to; g++ {
		hi := ends[g]
		grp := sorted[lo:hi]
		// A group's scratch is the worker's own, sized to the largest
		// group so far: it stays in cache from one group to the next.
		tmp := resize(&c.tmp, len(grp))
		lo = hi
		if len(grp) == 0 {
			continue
		}
		grp = c.sortByHash(grp, tmp, m)
		// Keep the last of each run of one hash, at the front of grp.
		kept := 0
		for j := range grp {
			if j+1 < len(grp) && grp[j+1].k|1 == grp[j].k|1 && m.sameSum(grp[j+1].sum, grp[j].sum) {
				continue
			}
			grp[kept] = grp[j]
			kept++
		}
		// ADD winners, then REMOVE winners, each in hash order; written
		// without a branch on the op, which is as good as random.
		for op := uint64(recAdd); op <= uint64(recRemove); op++ {
			from := w
			for _, it := range grp[:kept] {
				winners[w] = winner{i: it.i, sum: it.sum}
				w += int(it.k&1 ^ op ^ 1)
			}
			if w > from {
				c.runs = append(c.runs, run{end: int32(w), aud: order[g/3], list: uint8(g % 3), op: uint8(op)})
			}
		}
	}
	c.winners = winners[:w]
}

// sortByHash sorts one group by hash, event time and arrival, using tmp
// (as long as grp) as scratch; it returns the sorted slice, grp or tmp.
// A counting sort on the hash's top bits leaves about one record a bucket
// (SHA-256 bits are uniform); one insertion pass over the whole group then
// orders the records that share a bucket, records of different buckets
// being in order already.
func (c *coalesceScratch) sortByHash(grp, tmp []coItem, m *Mapper) []coItem {
	if len(grp) > 16 {
		b := min(bits.Len(uint(len(grp)))-1, 16)
		shift := uint(64 - b)
		count := resizeClear(&c.bucketCount, 1<<b+1)
		for j := range grp {
			count[grp[j].k>>shift+1]++
		}
		largest := int32(0)
		for x := 1; x < len(count); x++ {
			largest = max(largest, count[x])
			count[x] += count[x-1]
		}
		for j := range grp {
			x := grp[j].k >> shift
			tmp[count[x]] = grp[j]
			count[x]++
		}
		grp = tmp
		if largest > 32 {
			// Many equal hash prefixes (one identifier many times):
			// sort the large buckets in O(n log n), not by insertion.
			start := int32(0)
			for _, end := range count[:len(count)-1] {
				if end-start > 32 {
					slices.SortFunc(grp[start:end], func(a, c coItem) int { return m.compareItems(&a, &c) })
				}
				start = end
			}
		}
	}
	less := func(a, c *coItem) bool {
		if x, y := a.k|1, c.k|1; x != y { // nearly always: decided without a call
			return x < y
		}
		return m.compareItems(a, c) < 0
	}
	for j := 1; j < len(grp); j++ {
		if !less(&grp[j], &grp[j-1]) {
			continue
		}
		x := grp[j]
		k := j
		for ; k > 0 && less(&x, &grp[k-1]); k-- {
			grp[k] = grp[k-1]
		}
		grp[k] = x
	}
	return grp
}

// compareItems orders items by hash, event time and arrival (index).
func (m *Mapper) compareItems(a, c *coItem) int {
	if x, y := a.k|1, c.k|1; x != y {
		return cmp.Compare(x, y)
	}
	if a.sum != c.sum {
		if d := compareSums(m.sum(a.sum), m.sum(c.sum)); d != 0 {
			return d
		}
	}
	return cmp.Or(cmp.Compare(m.rec(a.i).t, m.rec(c.i).t), cmp.Compare(a.i, c.i))
}

// sameSum reports whether hashes x and y are equal.
func (m *Mapper) sameSum(x, y int32) bool {
	return x == y || *m.sum(x) == *m.sum(y)
}

// resize makes *s n long, reusing its array when it is large enough; the
// contents are left as they are.
func resize[T any](s *[]T, n int) []T {
	if cap(*s) < n {
		*s = make([]T, n)
	}
	*s = (*s)[:n]
	return *s
}

// resizeClear is resize with every element zeroed.
func resizeClear[T any](s *[]T, n int) []T {
	r := resize(s, n)
	clear(r)
	return r
}

// compareSums compares two hashes as big-endian numbers (like their hex).
func compareSums(a, b *[32]byte) int {
	for k := 0; k < 32; k += 8 {
		x, y := binary.BigEndian.Uint64(a[k:]), binary.BigEndian.Uint64(b[k:])
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
