package audience

import (
	"encoding/binary"
	"time"
)

// Mapper maps POST /v1/profiles bodies: it parses, normalises and hashes
// every identity and coalesces the changes (as Coalesce does), keeping its
// working memory from one body to the next; Len and At read the result
// (package wire packs it into queue message bodies). Between the steps a
// change is a 16-byte record and its hash a 32-byte array, never hex.
//
// A Mapper maps one body at a time on the calling goroutine (it is not safe
// for concurrent use); a server keeps one per worker or a sync.Pool of
// them. Between bodies it holds hashes and audience names, never a plain
// identifier. The zero value is not ready: use NewMapper.
type Mapper struct {
	lim     Limits
	p       parser
	group   []int32 // per record: its (audience, list type) group in output order
	winners []int32 // the coalesced records, in Coalesce's order
	co      coalesceScratch
}

// NewMapper returns a Mapper for bodies within lim (zero fields: the
// defaults).
func NewMapper(lim Limits) *Mapper {
	return &Mapper{lim: lim.withDefaults()}
}

// Map parses and maps body, then coalesces the changes and returns the
// report. The changes are then read with Len and At, until the next call
// of Map; after an error there are none. receivedAt is the event time of
// memberships without lastQualificationTime (their changes are marked
// Received).
//
// A malformed identity or membership fails alone and is counted in the
// report; request-level problems (not JSON, a wrong type where the shape is
// fixed, a repeated key, nesting deeper than 10,000, a limit exceeded)
// return a *RequestError; a receivedAt outside Unix nanoseconds (years
// 1678–2262) a plain error. Map does not keep body once it returns.
func (m *Mapper) Map(body []byte, receivedAt time.Time) (Report, error) {
	m.winners = m.winners[:0]
	err := m.p.parse(body, m.lim, receivedAt)
	// Keep nothing of the body: the records hold only indexes and hashes,
	// the report and the audiences their own strings; no plain identifier
	// stays in a scratch buffer.
	m.p.s = nil
	m.p.wipe()
	if err != nil {
		m.p.recs = m.p.recs[:0]
		return Report{}, err
	}
	m.coalesce()
	return m.p.rep, nil
}

// coalesce sets m.winners to the records Coalesce would keep, in its order.
func (m *Mapper) coalesce() {
	recs, sums := m.p.recs, m.p.sums
	if len(recs) == 0 {
		return
	}
	audRank := ranks(m.p.auds, compareRef)
	group := resize(&m.group, len(recs))
	for i := range recs {
		group[i] = audRank[recs[i].aud()]*int32(len(recLists)) + int32(recs[i].list())
	}
	m.winners = m.co.order(coalesceInput{
		group:      group,
		groups:     len(m.p.auds) * len(recLists),
		key:        func(i int32) uint64 { return binary.BigEndian.Uint64(sums[recs[i].sum][:8]) },
		radixBytes: 3, // hashes are uniform: ties in 24 bits are rare
		cmpHash: func(a, b int32) int {
			x, y := &sums[recs[a].sum], &sums[recs[b].sum]
			return compareSums(x, y)
		},
		cmpLater: func(a, b int32) int {
			x, y := &recs[a], &recs[b]
			if c := comparePrecedence(x.received(), x.t, x.op() == recRemove, y.received(), y.t, y.op() == recRemove); c != 0 {
				return c
			}
			return int(a) - int(b) // the later arrival
		},
		op:  func(i int32) int { return int(recs[i].op()) },
		ops: len(recOps),
	})
}

// compareSums compares two hashes as their hex strings compare.
func compareSums(x, y *[32]byte) int {
	for k := 0; k < 32; k += 8 {
		a, b := binary.BigEndian.Uint64(x[k:]), binary.BigEndian.Uint64(y[k:])
		if a != b {
			if a < b {
				return -1
			}
			return 1
		}
	}
	return 0
}

// Len is how many changes the last Map left after coalescing.
func (m *Mapper) Len() int { return len(m.winners) }

// MappedChange is one of the last Map's coalesced changes as the Mapper
// holds it: the hash as its 32 bytes, the event time as Unix nanoseconds.
type MappedChange struct {
	Audience Ref
	List     ListType
	Op       Op
	Sum      *[32]byte // the SHA-256 of the normalised identifier, until the next Map
	Time     int64     // event time, Unix nanoseconds
	Received bool      // Time is the receive time (Change.Received)
}

// At returns the j-th (0 <= j < Len) of the last Map's coalesced changes,
// in Coalesce's order: the changes of one audience are adjacent, in the
// order they are to be sent. It does not allocate.
func (m *Mapper) At(j int) MappedChange {
	r := &m.p.recs[m.winners[j]]
	return MappedChange{
		Audience: m.p.auds[r.aud()],
		List:     recLists[r.list()],
		Op:       recOps[r.op()],
		Sum:      &m.p.sums[r.sum],
		Time:     r.t,
		Received: r.received(),
	}
}
