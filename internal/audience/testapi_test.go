package audience

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// The entry points below are the tests' views of the one parser and the
// one coalescer: production code maps with a Mapper (Map, Pack) and
// coalesces with Coalesce.

// ParseProfiles reads a POST /v1/profiles body from r (at most
// lim.MaxBodyBytes) and returns its changes in arrival order (Seq from 1),
// before coalescing, and the report: the parser's records as Changes.
func ParseProfiles(r io.Reader, lim Limits, receivedAt time.Time) ([]Change, Report, error) {
	lim = lim.withDefaults()
	body, err := readBody(r, lim.MaxBodyBytes)
	if err != nil {
		return nil, Report{}, err
	}
	return ParseProfilesBytes(body, lim, receivedAt)
}

// ParseProfilesBytes is ParseProfiles for a body in memory.
func ParseProfilesBytes(body []byte, lim Limits, receivedAt time.Time) ([]Change, Report, error) {
	var p parser
	if err := p.parse(body, lim, receivedAt); err != nil {
		return nil, Report{}, err
	}
	if len(p.recs) == 0 {
		return nil, p.rep, nil
	}
	out := make([]Change, len(p.recs))
	for i := range p.recs {
		out[i] = p.change(int32(i))
	}
	return out, p.rep, nil
}

// readBody reads all of r, but no more than max+1 bytes: more than max is a
// too_large RequestError.
func readBody(r io.Reader, max int64) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("read profiles body: %w", err)
	}
	if int64(len(body)) > max {
		return nil, tooLarge(max)
	}
	return body, nil
}

// MapProfiles is a new Mapper's Map of the body read from r, and its
// changes.
func MapProfiles(r io.Reader, lim Limits, receivedAt time.Time) ([]Change, Report, error) {
	lim = lim.withDefaults()
	body, err := readBody(r, lim.MaxBodyBytes)
	if err != nil {
		return nil, Report{}, err
	}
	return MapProfilesBytes(body, lim, receivedAt)
}

// MapProfilesBytes is MapProfiles for a body in memory.
func MapProfilesBytes(body []byte, lim Limits, receivedAt time.Time) ([]Change, Report, error) {
	m := NewMapper(lim)
	rep, err := m.Map(body, receivedAt)
	if err != nil {
		return nil, Report{}, err
	}
	return m.Changes(), rep, nil
}

// Changes returns the last Map's coalesced changes (nil when there are
// none), Seq being the record's arrival order.
func (m *Mapper) Changes() []Change {
	if len(m.winners) == 0 {
		return nil
	}
	out := make([]Change, len(m.winners))
	for j, i := range m.winners {
		out[j] = m.p.change(i)
	}
	return out
}

// PackMessages encodes changes (as Coalesce returns them) into message bodies
// of kind "changes", one audience per message, each body at most maxBytes
// (DefaultMaxMessageBytes when 0). The records of one audience keep their
// order and audiences come in order of first appearance, so the messages of
// one audience can go to one FIFO group in order. A change that cannot be
// encoded (unknown list type or op, a hash that is not 64 lowercase hex, an
// invalid audience, a time outside Unix nanoseconds) is an error.
func PackMessages(changes []Change, maxBytes int) ([]Packed, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxMessageBytes
	}
	// Audiences in order of first appearance, each with its changes in order.
	var order []Ref
	var members [][]int32
	slot := map[Ref]int{}
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
func appendRecord(b []byte, c *Change) ([]byte, error) {
	if err := validRecord(c.List, c.Op, c.Hash); err != nil {
		return b, err
	}
	if c.EventTime.Before(minEventTime) || c.EventTime.After(maxEventTime) {
		return b, errors.New("event time outside the range of Unix nanoseconds")
	}
	return appendRecordJSON(b, c.List, c.Op, c.Hash, c.EventTime.UnixNano(), c.Received), nil
}
