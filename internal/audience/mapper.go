package audience

import (
	"encoding/binary"
	"time"
)

// Mapper maps POST /v1/profiles bodies: it parses, normalises and hashes
// every identity, coalesces the changes (as Coalesce does) and packs them
// into queue message bodies (Pack), keeping its working memory from one
// body to the next. Between the steps a change is a 16-byte record and its
// hash a 32-byte array; hex appears only in the packed bodies.
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
// report. The changes are then read with Len and Pack, until the next call
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

// Pack returns the last Map's coalesced changes packed into queue message
// bodies of kind "changes", one audience per message, each body at most
// maxBytes (DefaultMaxMessageBytes when 0): audiences in Coalesce's order,
// the records of one audience in order, so the messages of one audience can
// go to one FIFO group in order. The bodies are new and the caller's.
func (m *Mapper) Pack(maxBytes int) ([]Packed, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxMessageBytes
	}
	pk := packer{maxBytes: maxBytes}
	// The records of one audience are adjacent: the winners are in
	// audience order.
	for start := 0; start < len(m.winners); {
		aud := m.p.recs[m.winners[start]].aud()
		end := start + 1
		for end < len(m.winners) && m.p.recs[m.winners[end]].aud() == aud {
			end++
		}
		first := start
		err := pk.audience(m.p.auds[aud], end-start, func(b []byte, j int) ([]byte, error) {
			r := &m.p.recs[m.winners[first+j]]
			var hx [64]byte
			hexEncode32(&hx, &m.p.sums[r.sum])
			return appendRecordJSON(b, recLists[r.list()], recOps[r.op()], hx[:], r.t, r.received()), nil
		}, func(j int) int { return first + j })
		if err != nil {
			return nil, err
		}
		start = end
	}
	return pk.out, nil
}
