package audience

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Identity is one hashed identifier and the list type it belongs to: what
// an erasure request names.
type Identity struct {
	List ListType
	Hash string
}

// MapErasure parses a POST /v1/erasure body: the same shapes as Map's (one
// profile, an array of profiles or {"profiles": [...]}) and the same
// request errors, every identity normalised and hashed exactly as Map does
// it. Memberships are ignored (not even checked). It returns the distinct
// identities, sorted by list type and hash, and the report (Activated
// counts the identities mapped, before duplicates are dropped). The total
// of identities is bounded by Limits.MaxChanges.
func (m *Mapper) MapErasure(body []byte) ([]Identity, Report, error) {
	m.winners = m.winners[:0]
	m.p.erasure = true
	m.p.erased = m.p.erased[:0]
	err := m.p.parse(body, m.lim, time.Unix(0, 0))
	m.p.erasure = false
	m.p.s = nil
	m.p.wipe()
	m.p.recs = m.p.recs[:0]
	if err != nil {
		m.p.erased = m.p.erased[:0]
		return nil, Report{}, err
	}
	out := make([]Identity, 0, len(m.p.erased))
	for _, id := range m.p.erased {
		var hx [64]byte
		hexEncode32(&hx, &m.p.sums[id.sum])
		out = append(out, Identity{List: recLists[id.list], Hash: string(hx[:])})
	}
	m.p.erased = m.p.erased[:0]
	slices.SortFunc(out, func(a, b Identity) int {
		if c := strings.Compare(string(a.List), string(b.List)); c != 0 {
			return c
		}
		return strings.Compare(a.Hash, b.Hash)
	})
	return slices.Compact(out), m.p.rep, nil
}

// endErasureProfile keeps the profile's identities (an erasure request).
func (p *parser) endErasureProfile() error {
	if len(p.erased)+len(p.ids) > p.lim.MaxChanges {
		return p.requestErr(ErrTooManyChanges, fmt.Sprintf("more than %d identities in the request", p.lim.MaxChanges))
	}
	p.erased = append(p.erased, p.ids...)
	return nil
}

// MessageErasure is the kind of a queue message that erases identifiers
// from every list of their type: records with op REMOVE and the erasure's
// time, no audience.
const MessageErasure = "erasure"

// ErasureGroup is the FIFO message group of erasure messages (no audience
// key has it: audience keys hold a ':').
const ErasureGroup = "erasure"

// NewErasureMessages encodes erasure messages for ids, erased at at: one
// record per identity (op REMOVE, time at), each body at most maxBytes
// (DefaultMaxMessageBytes when 0).
func NewErasureMessages(ids []Identity, at time.Time, maxBytes int) ([][]byte, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxMessageBytes
	}
	if at.Before(minEventTime) || at.After(maxEventTime) {
		return nil, errors.New("erasure messages: the erasure time is outside the range of Unix nanoseconds")
	}
	head := []byte(`{"v":1,"kind":"erasure","audience":{"ns":"","id":""},"records":[`)
	const suffix = "]}"
	var out [][]byte
	var body []byte
	var rec []byte
	for i, id := range ids {
		if err := validRecord(id.List, OpRemove, id.Hash); err != nil {
			return nil, fmt.Errorf("erasure message: identity %d: %w", i, err)
		}
		rec = appendRecordJSON(rec[:0], id.List, OpRemove, id.Hash, at.UnixNano(), false)
		if body != nil && len(body)+1+len(rec)+len(suffix) > maxBytes {
			out = append(out, append(body, suffix...))
			body = nil
		}
		if body == nil {
			if len(head)+len(rec)+len(suffix) > maxBytes {
				return nil, fmt.Errorf("erasure message: one record needs %d bytes, over the %d-byte bound", len(head)+len(rec)+len(suffix), maxBytes)
			}
			body = append([]byte(nil), head...)
		} else {
			body = append(body, ',')
		}
		body = append(body, rec...)
	}
	if body != nil {
		out = append(out, append(body, suffix...))
	}
	return out, nil
}

// decodeErasure checks an erasure message: no audience, records all
// REMOVE.
func decodeErasure(m Message) error {
	if m.Audience != (Ref{}) {
		return &MessageError{Reason: "an erasure message with an audience"}
	}
	if len(m.Records) == 0 {
		return &MessageError{Reason: "an erasure message without records"}
	}
	for i, r := range m.Records {
		if err := validRecord(r.List, r.Op, r.Hash); err != nil {
			return &MessageError{Reason: fmt.Sprintf("record %d: %v", i, err)}
		}
		if r.Op != OpRemove || r.Received {
			return &MessageError{Reason: fmt.Sprintf("record %d: an erasure record must be a REMOVE with an event time", i)}
		}
	}
	return nil
}

// MessageRetire is the kind of a queue message that retires an audience
// (AEP deleted it): its members leave its lists, the ledger drops its rows
// and its lists are never written to again. It has no records.
const MessageRetire = "retire"

// NewRetireMessage encodes a "retire" message for a.
func NewRetireMessage(a Ref) ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("retire message: %w", err)
	}
	body, err := json.Marshal(Message{Version: MessageVersion, Kind: MessageRetire, Audience: a})
	if err != nil {
		return nil, fmt.Errorf("encode retire message: %w", err)
	}
	return body, nil
}
