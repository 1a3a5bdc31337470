package audience

import (
	"bytes"
	"strconv"
	"time"
)

// minSplitBody is the smallest body a Mapper maps on two goroutines; below
// it starting the second one costs more than it saves.
const minSplitBody = 128 << 10

// mapSplit maps m.p's body on the fast path on two goroutines: the profile
// array is cut at a profile that starts near the middle (a guess, see
// splitCandidate), the second goroutine maps the profiles from there to the
// end into m.q, and the first maps the profiles before it into m.p. The cut
// holds only if the first goroutine, reading the body from its start, meets
// a profile starting exactly there; then m.q is merged into m.p, which ends
// as a single pass over the body would leave it. Otherwise m.q is dropped
// and the first goroutine goes on alone. The halves run on the goroutines
// of pr. false means that the body was not mapped (no pr: too small or one
// CPU; or not of the fast path's shape): p must be reset and the body
// mapped the usual way.
func (m *Mapper) mapSplit(body []byte, receivedAt time.Time, pr *pair) bool {
	if pr == nil || int64(len(body)) > m.lim.MaxBodyBytes || receivedAt.Before(minEventTime) || receivedAt.After(maxEventTime) {
		return false
	}
	p := &m.p
	p.reset(body, m.lim, receivedAt.UnixNano())
	i, empty, ok := p.fastOpenBody()
	if !ok || empty {
		return false
	}
	cut := splitCandidate(body, i+(len(body)-i)/2)
	if cut < 0 {
		return false
	}
	if m.q == nil {
		m.q = &parser{}
	}
	q := m.q
	q.reset(body, m.lim, p.received)
	q.fastWrapper, q.deferPaths = p.fastWrapper, true
	// Each half's hashes are hex-encoded by the goroutine that made them,
	// while the other may still be parsing; the second half's hashes are
	// numbered after the first's, as the hex table wants them.
	var (
		qok        bool
		end, idx   int
		stopped    bool
		phex, qhex string
	)
	pr.run(func(w int) {
		if w == 1 {
			end, _, _, ok := q.fastProfiles(cut, 0, -1)
			if qok = ok && q.fastCloseBody(end); qok {
				qhex = hexSums(q.sums)
			}
			return
		}
		if end, idx, stopped, ok = p.fastProfiles(i, 0, cut); ok && stopped {
			phex = hexSums(p.sums)
		}
	})
	q.s = nil
	switch {
	case !ok:
		return false
	case stopped && qok:
		if !p.merge(q, idx, &m.qAud, &m.qCounts) {
			return false
		}
		m.onePart()
		m.parts = append(m.parts, part{recs: q.recs, sums: q.sums, recBase: int32(len(p.recs)), sumBase: int32(len(p.sums)),
			aud: m.qAud, counts: m.qCounts})
		m.hexes, m.hexed = hexTable{half: [2]string{phex, qhex}, cut: int32(len(p.sums))}, true
		return true
	case stopped:
		// The second half is not of the fast path's shape, or the cut
		// was wrong after all: go on alone from the cut.
		if end, _, _, ok = p.fastProfiles(end, idx, -1); !ok {
			return false
		}
	}
	if !p.fastCloseBody(end) {
		return false
	}
	m.onePart()
	return true
}

// splitCandidate returns the index of a '{' at or after from that looks
// like the start of a profile in the top-level array ("}," before it, white
// space allowed, and identityMap or segmentMembership as its first key), or
// -1 if there is none in the next MiB. It is only a guess: the same bytes
// can stand inside a skipped value or a string.
func splitCandidate(s []byte, from int) int {
	limit := min(len(s), from+1<<20)
	for i := from; i < limit; i++ {
		k := bytes.IndexByte(s[i:limit], '{')
		if k < 0 {
			return -1
		}
		i += k
		j := lastNonSpace(s, i-1)
		if j < 0 || s[j] != ',' {
			continue
		}
		if j = lastNonSpace(s, j-1); j < 0 || s[j] != '}' {
			continue
		}
		key := s[skipWS(s, i+1):]
		if bytes.HasPrefix(key, []byte(`"identityMap"`)) || bytes.HasPrefix(key, []byte(`"segmentMembership"`)) {
			return i
		}
	}
	return -1
}

// lastNonSpace returns the index of the last byte at or before i that is
// not JSON white space, or -1.
func lastNonSpace(s []byte, i int) int {
	for i >= 0 && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t') {
		i--
	}
	return i
}

// merge adds what q mapped (the profiles from index first on) to p's
// report as if p had mapped them itself: counts added, failures after p's
// with their paths completed (up to the cap), q's audiences interned in p
// (*qAud is q's audience indexes as p's) and *qCounts set to q's record
// counts by p's audience indexes. q's records and hashes stay where they
// are (see part). false means that the two together are over a request
// limit (profiles or changes); the body must then be mapped again in one
// pass, which fails where a single pass fails.
func (p *parser) merge(q *parser, first int, qAud, qCounts *[]int32) bool {
	if p.rep.Profiles+q.rep.Profiles > p.lim.MaxProfiles || len(p.recs)+len(q.recs) > p.lim.MaxChanges {
		return false
	}
	p.rep.Profiles += q.rep.Profiles
	p.rep.Activated += q.rep.Activated
	for k, v := range q.rep.Excluded {
		p.rep.Excluded[k] += v
	}
	failed := 0
	for k, v := range q.rep.Failed {
		p.rep.Failed[k] += v
	}
	for _, v := range p.rep.Failed {
		failed += v
	}
	for _, f := range q.deferred {
		if len(p.rep.Failures) >= p.lim.MaxFailures {
			break
		}
		p.rep.Failures = append(p.rep.Failures, Failure{Reason: f.reason, Path: p.profilePath(first+f.profile) + f.rest})
	}
	// One pass sets it at the first failure past the cap.
	p.rep.FailuresTruncated = failed > p.lim.MaxFailures

	remap := resize(qAud, len(q.auds))
	for k, ref := range q.auds {
		remap[k] = p.audience(p.namespace([]byte(ref.Namespace)), []byte(ref.ID)).idx
	}
	counts := resizeClear(qCounts, len(p.audCounts))
	for k, a := range remap {
		copy(counts[3*a:3*a+3], q.audCounts[3*k:3*k+3])
	}
	return true
}

// profilePath is the path of profile idx of the body's profile array.
func (p *parser) profilePath(idx int) string {
	if p.fastWrapper {
		return "$.profiles[" + strconv.Itoa(idx) + "]"
	}
	return "$[" + strconv.Itoa(idx) + "]"
}
