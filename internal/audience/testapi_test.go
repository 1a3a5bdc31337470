package audience

import (
	"fmt"
	"io"
	"time"
)

// The entry points below are the tests' views of the one parser and the
// one coalescer: production code maps with a Mapper (Map, Len, At) and
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
