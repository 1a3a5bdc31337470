package audience

import (
	"cmp"
	"encoding/binary"
	"math/bits"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// Mapper maps POST /v1/profiles bodies as MapProfilesBytes does, but keeps
// its working memory from one body to the next, and hands out the result as
// changes (Changes) or as chunks (Chunks) without building the other. Hashes
// stay 32-byte arrays until a result needs them as hex.
//
// A Mapper maps one body at a time (it is not safe for concurrent use); a
// server keeps one per worker or a sync.Pool of them. The zero value is not
// ready: use NewMapper.
type Mapper struct {
	lim Limits
	p   parser
	q   *parser // the second half of a split body (mapSplit)

	// The smallest body mapSplit splits and the fewest records or hashes
	// shared out between goroutines (minSplitBody and minParallelItems; tests
	// lower them to run those paths on small bodies).
	minSplit, minParallel int

	winners []winner // the coalesced records, in Coalesce's order
	runs    []run    // their (audience, list type, op) groups
	hexes   hexTable // the hex of every p.sums entry, built on demand
	hexed   bool     // hexes is for the current body

	// The parse goroutines' shares of p.recs (one, or two for a split
	// body) with their record counts by audience and list type.
	halves  []half
	qCounts []int32

	// Coalescing scratch.
	items, sorted []coItem
	ends          []int32
	scratch       []*coalesceScratch
}

// half is the records p.recs[previous half's end:end] and their counts
// by audience and list type (as parser.audCounts).
type half struct {
	end    int
	counts []int32
}

// NewMapper returns a Mapper for bodies within lim (zero fields: the
// defaults).
func NewMapper(lim Limits) *Mapper {
	return &Mapper{lim: lim.withDefaults(), minSplit: minSplitBody, minParallel: minParallelItems}
}

// Map parses and maps body (as ParseProfilesBytes does), then coalesces the
// changes (as Coalesce does) and returns the report. The changes are then
// read with Changes or Chunks, until the next call of Map. Errors are those
// of MapProfilesBytes; after an error there are no changes. Map does not
// keep body once it returns.
func (m *Mapper) Map(body []byte, receivedAt time.Time) (Report, error) {
	m.winners, m.runs, m.hexes, m.hexed = m.winners[:0], m.runs[:0], hexTable{}, false
	var err error
	if !m.mapSplit(body, receivedAt) {
		m.hexes, m.hexed = hexTable{}, false
		err = m.p.run(body, m.lim, receivedAt, true)
		m.halves = append(m.halves[:0], half{end: len(m.p.recs), counts: m.p.audCounts})
	}
	// Keep nothing of the body: the records hold only indexes and hashes,
	// the report and the audiences their own strings.
	m.p.s = nil
	if err != nil {
		m.p.recs = m.p.recs[:0]
		return Report{}, err
	}
	m.coalesce(m.workers(len(m.p.recs)))
	return m.p.rep, nil
}

// Len is how many changes the last Map left after coalescing.
func (m *Mapper) Len() int { return len(m.winners) }

// Changes returns the last Map's coalesced changes, exactly what
// MapProfilesBytes returns (nil when there are none). The slice is new and
// the caller's.
func (m *Mapper) Changes() []Change {
	if len(m.winners) == 0 {
		return nil
	}
	hexes := m.hex()
	out := make([]Change, len(m.winners))
	for j, w := range m.winners {
		m.p.change(&out[j], w.i, hexes)
	}
	return out
}

// Chunks returns the last Map's coalesced changes cut into chunks, exactly
// what GroupChunks(m.Changes(), maxRecords, maxBytes) returns, without
// building the changes. The chunks are new and the caller's.
func (m *Mapper) Chunks(maxRecords, maxBytes int) []Chunk {
	if len(m.winners) == 0 {
		return nil
	}
	if maxRecords <= 0 {
		maxRecords = DefaultMaxRecords
	}
	hexes := m.hex()
	// One backing array for every chunk's hashes, as GroupChunks does.
	all := make([]string, len(m.winners))
	for j, w := range m.winners {
		all[j] = hexes.of(w.sum)
	}
	const hashLen = 64
	perChunk := maxRecords
	if maxBytes > 0 {
		// Comma-separated hashes: n of them take 65n-1 bytes; a single
		// hash goes alone even when it is over the bound.
		perChunk = max(1, min(perChunk, (maxBytes+1)/(hashLen+1)))
	}
	var chunks []Chunk
	start := 0
	for _, r := range m.runs {
		for i := start; i < int(r.end); i += perChunk {
			j := min(i+perChunk, int(r.end))
			chunks = append(chunks, Chunk{
				Audience: m.p.auds[r.aud],
				List:     recLists[r.list],
				Op:       recOps[r.op],
				Hashes:   all[i:j:j],
			})
		}
		start = int(r.end)
	}
	return chunks
}

// Pack returns the last Map's coalesced changes packed into queue message
// bodies, exactly what PackMessages(m.Changes(), maxBytes) returns, without
// building the changes, their hex strings, or checking hashes the Mapper
// made itself. The bodies are new and the caller's.
func (m *Mapper) Pack(maxBytes int) ([]Packed, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxMessageBytes
	}
	pk := packer{maxBytes: maxBytes}
	start := 0
	// The runs of one audience are adjacent: the changes are in
	// audience order.
	for k := 0; k < len(m.runs); {
		aud := m.runs[k].aud
		e := k + 1
		for e < len(m.runs) && m.runs[e].aud == aud {
			e++
		}
		first, end := start, int(m.runs[e-1].end)
		err := pk.audience(m.p.auds[aud], end-first, func(b []byte, j int) ([]byte, error) {
			w := m.winners[first+j]
			r := &m.p.recs[w.i]
			// The hash is encoded straight into the record: Pack needs no
			// hex strings, and 32 bytes are fewer to fetch than 64.
			var hx [64]byte
			hexEncode32(&hx, &m.p.sums[w.sum])
			return appendRecordJSON(b, recLists[r.list()], recOps[r.op()], hx[:], r.t), nil
		}, func(j int) int { return first + j })
		if err != nil {
			return nil, err
		}
		start, k = end, e
	}
	return pk.out, nil
}

// hex hex-encodes every hash of the last Map once, into one string per
// worker that all changes and chunks of that Map share.
func (m *Mapper) hex() *hexTable {
	if !m.hexed {
		sums := m.p.sums
		cut := len(sums)
		if m.workers(len(sums)) == 2 {
			cut = len(sums) / 2
		}
		m.hexes.cut = int32(cut)
		parallel(m.workers(len(sums)), func(w int) {
			if w == 0 {
				m.hexes.lo = hexSums(sums[:cut])
			} else {
				m.hexes.hi = hexSums(sums[cut:])
			}
		})
		m.hexed = true
	}
	return &m.hexes
}

// hexTable is the hex of a run of hashes: hashes [0, cut) in lo, the rest
// in hi.
type hexTable struct {
	lo, hi string
	cut    int32
}

// of is the hex of hash sum.
func (h *hexTable) of(sum int32) string {
	if sum < h.cut {
		return h.lo[64*int(sum) : 64*int(sum)+64]
	}
	off := 64 * int(sum-h.cut)
	return h.hi[off : off+64]
}

// minParallelItems is the least number of records or hashes that a Mapper
// shares out between two goroutines.
const minParallelItems = 4096

// workers is how many goroutines share out n records or hashes: two when
// there are enough of them and Go may run two at once.
func (m *Mapper) workers(n int) int {
	if n < m.minParallel || runtime.GOMAXPROCS(0) < 2 {
		return 1
	}
	return 2
}

// parallel runs f(0) to f(n-1), f(0) on this goroutine and the others on
// goroutines of their own, and returns when all have.
func parallel(n int, f func(w int)) {
	if n == 0 {
		return
	}
	var wg sync.WaitGroup
	for w := 1; w < n; w++ {
		wg.Go(func() { f(w) })
	}
	f(0)
	wg.Wait()
}

// hexSums encodes sums as one string of 64 lowercase hex digits each,
// a block at a time through the stack, so the string is written once.
func hexSums(sums [][32]byte) string {
	var sb strings.Builder
	sb.Grow(64 * len(sums))
	var block [64 * 64]byte
	for len(sums) > 0 {
		n := min(len(sums), 64)
		hexInto(block[:64*n], sums[:n])
		sb.Write(block[:64*n])
		sums = sums[n:]
	}
	return sb.String()
}

// hexInto encodes sums into dst, 64 bytes each.
func hexInto(dst []byte, sums [][32]byte) {
	for k := range sums {
		hexEncode32((*[64]byte)(dst[64*k:]), &sums[k])
	}
}

// hexEncode32 writes sum as 64 lowercase hex digits, four bytes at a time:
// the eight nibbles are spread to a byte each (most significant first), then
// each becomes '0'+v, plus 39 more when v ≥ 10 (to reach 'a'); v+6 carries
// into bit 4 exactly then. No byte overflows into the next.
func hexEncode32(dst *[64]byte, sum *[32]byte) {
	for k := 0; k < 32; k += 4 {
		x := uint64(binary.BigEndian.Uint32(sum[k:]))
		x = (x | x<<16) & 0x0000ffff0000ffff
		x = (x | x<<8) & 0x00ff00ff00ff00ff
		x = (x | x<<4) & 0x0f0f0f0f0f0f0f0f
		binary.BigEndian.PutUint64(dst[2*k:], x+0x3030303030303030+((x+0x0606060606060606)>>4&0x0101010101010101)*39)
	}
}

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
func (m *Mapper) coalesce(workers int) {
	recs, sums := m.p.recs, m.p.sums
	n := len(recs)
	m.winners, m.runs = m.winners[:0], m.runs[:0]
	if n == 0 {
		return
	}
	audRank := ranks(m.p.auds, compareRef)
	nl := int32(len(recLists))
	groups := len(m.p.auds) * len(recLists)
	for len(m.scratch) < max(workers, len(m.halves)) {
		m.scratch = append(m.scratch, &coalesceScratch{})
	}
	sc := m.scratch

	// Where each half's records of each group go; ends[g] is where group
	// g ends.
	for h, hf := range m.halves {
		pos := resizeClear(&sc[h].count, groups)
		for a, r := range audRank {
			copy(pos[int(r)*3:int(r)*3+3], hf.counts[3*a:3*a+3])
		}
	}
	ends := resize(&m.ends, groups)
	next := int32(0)
	for g := range groups {
		for h := range m.halves {
			c := sc[h].count[g]
			sc[h].count[g] = next
			next += c
		}
		ends[g] = next
	}
	items := resize(&m.items, n)
	sorted := resize(&m.sorted, n)
	parallel(len(m.halves), func(h int) {
		pos := sc[h].count
		lo := 0
		if h > 0 {
			lo = m.halves[h-1].end
		}
		for i := lo; i < m.halves[h].end; i++ {
			r := &recs[i]
			g := audRank[r.aud()]*nl + int32(r.list())
			sorted[pos[g]] = coItem{
				k:   binary.BigEndian.Uint64(sums[r.sum][:8])&^1 | uint64(r.op()),
				i:   int32(i),
				sum: r.sum,
			}
			pos[g]++
		}
	})
	// Whole groups to each worker, cut near the middle record; items is
	// their scratch space.
	cuts := make([]int, workers+1)
	cuts[workers] = groups
	for w, g := 1, 0; w < workers; w++ {
		for g < groups && int(ends[g]) < n*w/workers {
			g++
		}
		cuts[w] = g
	}
	parallel(workers, func(w int) {
		sc[w].coalesceGroups(cuts[w], cuts[w+1], ends, sorted, items, recs, sums)
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
	count       []int32 // per group: records, then where the next goes
	bucketCount []int32
	winners     []winner
	runs        []run
}

// coalesceGroups coalesces groups [from, to) of sorted (group g ends at
// ends[g]) into c.winners and c.runs, using the same stretch of scratch as
// scratch space.
func (c *coalesceScratch) coalesceGroups(from, to int, ends []int32, sorted, scratch []coItem, recs []rec, sums [][32]byte) {
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
		tmp := scratch[lo:hi]
		lo = hi
		if len(grp) == 0 {
			continue
		}
		grp = c.sortByHash(grp, tmp, recs, sums)
		// Keep the last of each run of one hash, at the front of grp.
		kept := 0
		for j := range grp {
			if j+1 < len(grp) && grp[j+1].k|1 == grp[j].k|1 && sameSum(sums, grp[j+1].sum, grp[j].sum) {
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
				r := &recs[winners[from].i]
				c.runs = append(c.runs, run{end: int32(w), aud: r.aud(), list: r.list(), op: uint8(op)})
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
func (c *coalesceScratch) sortByHash(grp, tmp []coItem, recs []rec, sums [][32]byte) []coItem {
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
					slices.SortFunc(grp[start:end], func(a, c coItem) int { return compareItems(&a, &c, recs, sums) })
				}
				start = end
			}
		}
	}
	less := func(a, c *coItem) bool {
		if x, y := a.k|1, c.k|1; x != y { // nearly always: decided without a call
			return x < y
		}
		return compareItems(a, c, recs, sums) < 0
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
func compareItems(a, c *coItem, recs []rec, sums [][32]byte) int {
	if x, y := a.k|1, c.k|1; x != y {
		return cmp.Compare(x, y)
	}
	if a.sum != c.sum {
		if d := compareSums(&sums[a.sum], &sums[c.sum]); d != 0 {
			return d
		}
	}
	return cmp.Or(cmp.Compare(recs[a.i].t, recs[c.i].t), cmp.Compare(a.i, c.i))
}

// sameSum reports whether hashes x and y are equal.
func sameSum(sums [][32]byte, x, y int32) bool {
	return x == y || sums[x] == sums[y]
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
