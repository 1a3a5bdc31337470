package audience

import (
	"runtime"
	"time"
)

// Mapper maps POST /v1/profiles bodies as MapProfilesBytes does, but keeps
// its working memory from one body to the next, maps a large body on two
// goroutines when Go may run two at once, and hands out the result as
// changes (Changes), chunks (Chunks) or queue message bodies (Pack) without
// building the others. Hashes stay 32-byte arrays until a result needs
// them as hex.
//
// A Mapper maps one body at a time (it is not safe for concurrent use); a
// server keeps one per worker or a sync.Pool of them. Between bodies it
// holds hashes and audience names, never a plain identifier. The zero
// value is not ready: use NewMapper.
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

	// The body's records and hashes where the parse goroutines left them:
	// parts[0] is m.p's, parts[1] m.q's when the body was split.
	parts []part
	qAud  []int32 // m.q's audience indexes as m.p's
	// Record counts by m.p's audience index and list type: m.q's.
	qCounts []int32

	// Coalescing scratch.
	sorted      []coItem
	ends, order []int32
	scratch     []*coalesceScratch
}

// part is one parse goroutine's share of a body: its records and hashes,
// numbered for the whole body from recBase and sumBase (a record's index
// is its arrival order), its audience indexes as m.p's (aud; nil when they
// are m.p's own), and its record counts by m.p's audience index and list
// type (counts[3*aud+list]).
type part struct {
	recs             []rec
	sums             [][32]byte
	recBase, sumBase int32
	aud              []int32
	counts           []int32
}

// onePart makes parts the whole of m.p's records and hashes.
func (m *Mapper) onePart() {
	m.parts = append(m.parts[:0], part{recs: m.p.recs, sums: m.p.sums, counts: m.p.audCounts})
}

// records is how many records the last Map made, before coalescing.
func (m *Mapper) records() int {
	last := &m.parts[len(m.parts)-1]
	return int(last.recBase) + len(last.recs)
}

// rec is record i of the whole body.
func (m *Mapper) rec(i int32) *rec {
	for k := len(m.parts) - 1; ; k-- {
		if pt := &m.parts[k]; i >= pt.recBase || k == 0 {
			return &pt.recs[i-pt.recBase]
		}
	}
}

// sum is hash s of the whole body.
func (m *Mapper) sum(s int32) *[32]byte {
	for k := len(m.parts) - 1; ; k-- {
		if pt := &m.parts[k]; s >= pt.sumBase || k == 0 {
			return &pt.sums[s-pt.sumBase]
		}
	}
}

// NewMapper returns a Mapper for bodies within lim (zero fields: the
// defaults).
func NewMapper(lim Limits) *Mapper {
	return &Mapper{lim: lim.withDefaults(), minSplit: minSplitBody, minParallel: minParallelItems}
}

// Map parses and maps body (as ParseProfilesBytes does), then coalesces the
// changes (as Coalesce does) and returns the report. The changes are then
// read with Changes, Chunks or Pack, until the next call of Map. Errors are those
// of MapProfilesBytes; after an error there are no changes. Map does not
// keep body once it returns.
func (m *Mapper) Map(body []byte, receivedAt time.Time) (Report, error) {
	m.winners, m.runs, m.hexes, m.hexed = m.winners[:0], m.runs[:0], hexTable{}, false
	// A large body is mapped on two goroutines; the helper is started
	// first, so that it is awake by the time its half is handed to it.
	var pr *pair
	if len(body) >= m.minSplit && runtime.GOMAXPROCS(0) >= 2 {
		pr = startPair()
		defer pr.close()
	}
	var err error
	if !m.mapSplit(body, receivedAt, pr) {
		err = m.p.run(body, m.lim, receivedAt, true)
		m.onePart()
	}
	// Keep nothing of the body: the records hold only indexes and hashes,
	// the report and the audiences their own strings; no plain identifier
	// stays in a scratch buffer.
	m.p.s = nil
	m.p.wipe()
	if m.q != nil {
		m.q.wipe()
	}
	if err != nil {
		m.parts = m.parts[:0]
		return Report{}, err
	}
	if m.records() < m.minParallel {
		pr = nil // not worth sharing out
	}
	m.coalesce(pr)
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
	start := 0
	for _, r := range m.runs {
		ref, list, op := m.p.auds[r.aud], recLists[r.list], recOps[r.op]
		for j := start; j < int(r.end); j++ {
			w := m.winners[j]
			out[j] = Change{
				Audience:  ref,
				List:      list,
				Op:        op,
				Hash:      hexes.of(w.sum),
				EventTime: time.Unix(0, m.rec(w.i).t).UTC(),
				Seq:       uint64(w.i) + 1,
			}
		}
		start = int(r.end)
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
			r := m.rec(w.i)
			// The hash is encoded straight into the record: Pack needs no
			// hex strings, and 32 bytes are fewer to fetch than 64.
			var hx [64]byte
			hexEncode32(&hx, m.sum(w.sum))
			return appendRecordJSON(b, recLists[r.list()], recOps[r.op()], hx[:], r.t), nil
		}, func(j int) int { return first + j })
		if err != nil {
			return nil, err
		}
		start, k = end, e
	}
	return pk.out, nil
}

// minParallelItems is the least number of records that a Mapper shares
// out between two goroutines.
const minParallelItems = 4096
