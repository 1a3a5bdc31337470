package audience

import (
	"encoding/hex"
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
		out = append(out, Identity{List: recLists[id.list], Hash: hex.EncodeToString(m.p.sums[id.sum][:])})
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
