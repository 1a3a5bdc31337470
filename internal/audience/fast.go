package audience

import "encoding/binary"

// The fast path reads the shape real AEP bodies have, in one pass over the
// bytes: [profile, ...] or {"profiles": [...]}, each profile
// {"identityMap": {NS: [{"id": "..."}]}, "segmentMembership": {NS: {ID:
// {"status": "...", "lastQualificationTime": "..."}}}}, with white space
// anywhere JSON allows it and other members skipped exactly as the exact
// path skips them. It decides nothing on its own: the moment it meets
// anything else (an escape in a key or a string it reads, a value of an
// unexpected type, a null, a missing "id", a limit reached, a request error
// of any kind) it gives up, and the caller maps the whole body again on the
// exact path (document). What it does map, it maps through the same code
// (hashIdentity, parseTimestamp, namespace, audience, fail, endProfile), in
// the same order, so its records and report are the exact path's.
// FuzzParseProfiles holds the two paths to that.

// fastDocument maps p.s on the fast path; false means "not this shape", and
// p must then be reset before the exact path runs.
func (p *parser) fastDocument() bool {
	i, empty, ok := p.fastOpenBody()
	if !ok {
		return false
	}
	if !empty {
		if i, _, _, ok = p.fastProfiles(i, 0, -1); !ok {
			return false
		}
	}
	return p.fastCloseBody(i)
}

// fastOpenBody reads up to the first profile of [profile, ...] or
// {"profiles": [profile, ...]}: i is there, or after the ']' when the array
// is empty.
func (p *parser) fastOpenBody() (i int, empty, ok bool) {
	s := p.s
	i = skipWS(s, 0)
	if i >= len(s) {
		return 0, false, false
	}
	p.fastWrapper = s[i] == '{'
	if p.fastWrapper {
		i = skipWS(s, i+1)
		key, _, j, ok := fastKey(s, i)
		if !ok || string(key) != "profiles" {
			return 0, false, false
		}
		i = j
	}
	if s[i] != '[' {
		return 0, false, false
	}
	i, empty = fastOpen(s, i, ']')
	return i, empty, true
}

// fastCloseBody reads what follows the profile array's ']' at i.
func (p *parser) fastCloseBody(i int) bool {
	s := p.s
	if p.fastWrapper {
		i = skipWS(s, i)
		if i >= len(s) || s[i] != '}' {
			return false
		}
		i++
	}
	return skipWS(s, i) == len(s)
}

// skipWS returns the index of the first byte at or after i that is not JSON
// white space.
func skipWS(s []byte, i int) int {
	for i < len(s) && s[i] <= ' ' && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t') {
		i++
	}
	return i
}

// fastString reads the string whose opening quote is at i; ok is false when
// it has an escape or a control character (or is unterminated). end is the
// index after the closing quote.
func fastString(s []byte, i int) (str []byte, end int, ok bool) {
	j := plainRun(s, i+1)
	if j >= len(s) || s[j] != '"' {
		return nil, 0, false
	}
	return s[i+1 : j], j + 1, true
}

// fastKey reads an object key at i (which must be a quote) and the ':'
// after it. It returns the key, where it is (for paths) and the index of
// the member's value.
func fastKey(s []byte, i int) (key []byte, sp span, val int, ok bool) {
	if i >= len(s) || s[i] != '"' {
		return nil, span{}, 0, false
	}
	j := plainRun(s, i+1)
	if j >= len(s) || s[j] != '"' {
		return nil, span{}, 0, false
	}
	return fastColon(s, i, j)
}

// fastKeyLike is fastKey when the key is likely the one at sp (a key of
// an earlier fast read, so without quotes, backslashes or control
// characters): then it is compared in place instead of scanned.
func fastKeyLike(s []byte, i int, like span) (key []byte, sp span, val int, ok bool) {
	if n := int(like.b - like.a); n > 0 {
		if e := i + 1 + n; e < len(s) && s[i] == '"' && s[e] == '"' && string(s[i+1:e]) == string(s[like.a:like.b]) {
			return fastColon(s, i, e)
		}
	}
	return fastKey(s, i)
}

// quotedAt reports whether s holds at i the string want, quotes and all.
// want must be free of quotes, backslashes and control characters, so
// that those bytes can only be that string.
func quotedAt(s []byte, i int, want string) bool {
	e := i + 1 + len(want)
	return e < len(s) && s[i] == '"' && s[e] == '"' && string(s[i+1:e]) == want
}

// fastColon ends fastKey: the key's quotes are at i and j.
func fastColon(s []byte, i, j int) (key []byte, sp span, val int, ok bool) {
	val = skipWS(s, j+1)
	if val >= len(s) || s[val] != ':' {
		return nil, span{}, 0, false
	}
	val = skipWS(s, val+1)
	if val >= len(s) {
		return nil, span{}, 0, false
	}
	return s[i+1 : j], span{a: int32(i + 1), b: int32(j)}, val, true
}

// fastKeyOf is fastKey for a member whose key is most likely one of lits
// (each the compact form `"name":`): which is the index of the key in
// lits, or -1 for another key. Compact keys are compared whole, without
// scanning the string.
func fastKeyOf(s []byte, i int, lits ...*literal) (which int, key []byte, val int, ok bool) {
	for k, lit := range lits {
		if lit.at(s, i) {
			n := len(lit.s)
			j := skipWS(s, i+n)
			return k, s[i+1 : i+n-2], j, j < len(s)
		}
	}
	key, _, val, ok = fastKey(s, i)
	if !ok {
		return -1, nil, 0, false
	}
	for k, lit := range lits {
		if string(key) == lit.s[1:len(lit.s)-2] {
			return k, key, val, true
		}
	}
	return -1, key, val, true
}

// literal is a short string the fast path expects in the body, kept as
// up to three little-endian words and their masks, so that comparing it
// takes a few loads and no call.
type literal struct {
	s    string
	w, m [3]uint64
}

func newLiteral(s string) *literal {
	l := &literal{s: s}
	for k := 0; k < min(len(s), 24); k++ {
		l.w[k/8] |= uint64(s[k]) << (8 * (k % 8))
		l.m[k/8] |= 0xff << (8 * (k % 8))
	}
	return l
}

// at reports whether s holds l at i.
func (l *literal) at(s []byte, i int) bool {
	if len(s)-i < 24 || len(l.s) > 24 {
		return len(s)-i >= len(l.s) && string(s[i:i+len(l.s)]) == l.s
	}
	b := s[i : i+24]
	return binary.LittleEndian.Uint64(b)&l.m[0] == l.w[0] &&
		binary.LittleEndian.Uint64(b[8:])&l.m[1] == l.w[1] &&
		binary.LittleEndian.Uint64(b[16:])&l.m[2] == l.w[2]
}

// The literals of the AEP profile shape.
var (
	litIdentityMap       = newLiteral(`"identityMap":`)
	litSegmentMembership = newLiteral(`"segmentMembership":`)
	litID                = newLiteral(`"id":`)
	litStatus            = newLiteral(`"status":`)
	litLastQualification = newLiteral(`"lastQualificationTime":`)
	litRealized          = newLiteral(`"realized"`)
	litExited            = newLiteral(`"exited"`)
	litExisting          = newLiteral(`"existing"`)
)

// fastNext reads what follows a member or an element at i: a ',' (done is
// false, next at the following token) or the closing bracket (done is true,
// next after it).
func fastNext(s []byte, i int, closing byte) (next int, done, ok bool) {
	i = skipWS(s, i)
	if i >= len(s) {
		return 0, false, false
	}
	switch s[i] {
	case ',':
		return skipWS(s, i+1), false, true
	case closing:
		return i + 1, true, true
	}
	return 0, false, false
}

// fastOpen steps into the object or array whose opening bracket is at i:
// empty reports that it closes at once (next is then after it).
func fastOpen(s []byte, i int, closing byte) (next int, empty bool) {
	i = skipWS(s, i+1)
	if i < len(s) && s[i] == closing {
		return i + 1, true
	}
	return i, false
}

// fastOpenObject steps into the object at i; ok is false when the value
// is not an object (a null or another type: the exact path decides what
// that means).
func fastOpenObject(s []byte, i int) (next int, empty, ok bool) {
	if s[i] != '{' {
		return 0, false, false
	}
	next, empty = fastOpen(s, i, '}')
	return next, empty, true
}

// fastSkip skips a value the exact path skips too, with the exact path's
// skipValue (so it is accepted exactly when that accepts it).
func (p *parser) fastSkip(i int) (int, bool) {
	p.i = i
	if p.skipValue() != nil {
		return 0, false
	}
	return p.i, true
}

// fastProfiles reads the profiles of the array from i (the first byte of
// profile idx) to the array's ']'; next is after it. If a profile starts at
// stopAt it stops there instead, with stopped set and idx that profile's.
func (p *parser) fastProfiles(i, idx, stopAt int) (next, nextIdx int, stopped, ok bool) {
	s := p.s
	for ; ; idx++ {
		if i == stopAt {
			return i, idx, true, true
		}
		if i >= len(s) || s[i] != '{' || p.rep.Profiles >= p.lim.MaxProfiles {
			return 0, 0, false, false
		}
		p.rep.Profiles++
		p.fastProfile = idx
		p.startProfile()
		if i, ok = p.fastProfileObject(i); !ok || p.endProfile() != nil {
			return 0, 0, false, false
		}
		var done bool
		if i, done, ok = fastNext(s, i, ']'); !ok || done {
			return i, idx + 1, false, ok
		}
	}
}

// fastProfileObject reads one profile whose '{' is at i.
func (p *parser) fastProfileObject(i int) (int, bool) {
	s := p.s
	i, empty := fastOpen(s, i, '}')
	if empty {
		return i, true
	}
	for {
		which, _, j, ok := fastKeyOf(s, i, litIdentityMap, litSegmentMembership)
		if !ok {
			return 0, false
		}
		switch which {
		case 0:
			j, ok = p.fastIdentityMap(j)
		case 1:
			j, ok = p.fastSegmentMembership(j)
		default:
			j, ok = p.fastSkip(j)
		}
		if !ok {
			return 0, false
		}
		var done bool
		if i, done, ok = fastNext(s, j, '}'); !ok || done {
			return i, ok
		}
	}
}

// fastIdentityMap reads {"<namespace>": [{"id": "..."}, ...], ...} at i.
func (p *parser) fastIdentityMap(i int) (int, bool) {
	s := p.s
	i, empty, ok := fastOpenObject(s, i)
	if !ok || empty {
		return i, ok
	}
	for {
		// Namespace keys repeat from profile to profile: the last one seen
		// with the same first byte is compared in place.
		last := &p.idNS[0]
		if i+1 < len(s) {
			last = &p.idNS[s[i+1]&15]
		}
		key, nsSpan, j, ok := fastKeyLike(s, i, *last)
		if !ok || s[j] != '[' {
			return 0, false
		}
		*last = nsSpan
		ns := classifyNamespace(key)
		j, empty := fastOpen(s, j, ']')
		for idx := 0; !empty; idx++ {
			if j >= len(s) || idx >= p.lim.MaxIdentitiesPerNS {
				return 0, false
			}
			if ns == nsOther {
				p.rep.Excluded[ExcludedUnsupportedNamespace]++
				j, ok = p.fastSkip(j)
			} else {
				j, ok = p.fastIdentity(j, ns, nsSpan, idx)
			}
			if !ok {
				return 0, false
			}
			if j, empty, ok = fastNext(s, j, ']'); !ok {
				return 0, false
			}
		}
		var done bool
		if i, done, ok = fastNext(s, j, '}'); !ok || done {
			return i, ok
		}
	}
}

// fastIdentity reads one {"id": "..."} of a namespace pinlist maps, at i.
func (p *parser) fastIdentity(i int, ns namespace, nsSpan span, idx int) (int, bool) {
	id, i, ok := p.fastIdentityEntry(i)
	if !ok {
		return 0, false
	}
	switch sum := p.newSum(); p.h.hashIdentity(ns, id, sum) {
	case idOK:
		p.rep.Activated++
		p.ids = append(p.ids, profileIdentity{list: listIndex(ns.list()), sum: int32(len(p.sums) - 1)})
		return i, true
	case idOptedOut:
		p.rep.Excluded[ExcludedOptedOut]++
	default:
		p.fastFail(ns.failReason(), nameSeg(nameIdentityMap), keySeg(nsSpan), indexSeg(idx), nameSeg(nameID))
	}
	p.sums = p.sums[:len(p.sums)-1]
	return i, true
}

// fastIdentityEntry reads {"id": "<string>", ...} at i: the identifier
// (the last "id", as encoding/json keeps it) and the index after the
// entry. The compact form {"id":"..."} is matched as a whole first.
func (p *parser) fastIdentityEntry(i int) (id []byte, end int, ok bool) {
	s := p.s
	if len(s)-i >= len(cID) && string(s[i:i+len(cID)]) == cID {
		if id, end, ok = fastString(s, i+len(cID)-1); ok && end < len(s) && s[end] == '}' {
			return id, end + 1, true
		}
	}
	i, empty, ok := fastOpenObject(s, i)
	if !ok || empty { // not {"id": ...}
		return nil, 0, false
	}
	haveID := false
	for {
		which, _, j, ok := fastKeyOf(s, i, litID)
		if !ok {
			return nil, 0, false
		}
		if which == 0 {
			if s[j] != '"' {
				return nil, 0, false
			}
			if id, j, ok = fastString(s, j); !ok {
				return nil, 0, false
			}
			haveID = true
		} else if j, ok = p.fastSkip(j); !ok {
			return nil, 0, false
		}
		var done bool
		if i, done, ok = fastNext(s, j, '}'); !ok {
			return nil, 0, false
		} else if done {
			return id, i, haveID
		}
	}
}

// fastSegmentMembership reads {"<audience ns>": {"<audience id>": {...}}} at i.
func (p *parser) fastSegmentMembership(i int) (int, bool) {
	s := p.s
	i, empty, ok := fastOpenObject(s, i)
	if !ok || empty {
		return i, ok
	}
	for {
		nsKey, nsSpan, j, ok := fastKeyLike(s, i, p.lastNSKey)
		if !ok || s[j] != '{' {
			return 0, false
		}
		ns := p.lastNS
		if ns == nil || ns.name != string(nsKey) {
			ns = p.namespace(nsKey)
			p.lastNS, p.lastNSKey = ns, nsSpan
		}
		j, empty := fastOpen(s, j, '}')
		for !empty {
			if p.nAud >= p.lim.MaxAudiencesPerProfile {
				return 0, false
			}
			p.nAud++
			// The audience is most likely one the cache holds (see
			// audienceSlot): compared in place, it needs no scan.
			var aud audienceEntry
			var idSpan span
			k := 0
			if j+9 < len(s) {
				if e := &p.audCache[audienceSlot(s[j+1:j+9])]; e.ns == ns && len(e.e.id) >= 8 && quotedAt(s, j, e.e.id) {
					_, idSpan, k, ok = fastColon(s, j, j+1+len(e.e.id))
					aud = e.e
				}
			}
			if k == 0 {
				var idKey []byte
				if idKey, idSpan, k, ok = fastKey(s, j); ok {
					aud = p.audience(ns, idKey)
				}
			}
			if !ok {
				return 0, false
			}
			if k, ok = p.fastMembership(k, aud, nsSpan, idSpan); !ok {
				return 0, false
			}
			if j, empty, ok = fastNext(s, k, '}'); !ok {
				return 0, false
			}
		}
		var done bool
		if i, done, ok = fastNext(s, j, '}'); !ok || done {
			return i, ok
		}
	}
}

// fastMembership reads one {"status": ..., "lastQualificationTime": ...} at i.
func (p *parser) fastMembership(i int, aud audienceEntry, nsSpan, idSpan span) (int, bool) {
	op, t, end, ok := p.compactMembership(i)
	statusOK, timeOK := ok, ok
	if !ok {
		if op, t, statusOK, timeOK, end, ok = p.looseMembership(i); !ok {
			return 0, false
		}
	}
	switch {
	case aud.idx < 0:
		p.fastFail(FailInvalidAudience, nameSeg(nameSegmentMembership), keySeg(nsSpan), keySeg(idSpan))
	case !statusOK:
		p.fastFail(FailInvalidStatus, nameSeg(nameSegmentMembership), keySeg(nsSpan), keySeg(idSpan), nameSeg(nameStatus))
	case !timeOK:
		p.fastFail(FailInvalidTimestamp, nameSeg(nameSegmentMembership), keySeg(nsSpan), keySeg(idSpan), nameSeg(nameLastQualificationTime))
	default:
		p.mems = append(p.mems, profileMembership{aud: aud.idx, op: op, t: t})
	}
	return end, true
}

// The compact forms json.Marshal and most clients write, compared as
// constants of at most 16 bytes (which Go compares inline, without a call).
const (
	cID          = `{"id":"`
	cStatus      = `{"status":"`
	cStatusAfter = `,"status":"`
	cTimeA       = `{"lastQualific` // cTimeA+cTimeB: {"lastQualificationTime":"
	cTimeB       = `ationTime":"`
	cTimeAfterA  = `,"lastQualific` // cTimeAfterA+cTimeB: ,"lastQualificationTime":"
)

// compactMembership reads a membership written exactly as
// {"status":"<realized|existing|exited>","lastQualificationTime":"<time>"}
// (either member first) with a valid time; ok is false for anything else,
// which looseMembership then reads. It has no side effects.
func (p *parser) compactMembership(i int) (op uint8, t int64, end int, ok bool) {
	s := p.s
	var statusOK bool
	switch {
	case len(s)-i >= len(cStatus) && string(s[i:i+len(cStatus)]) == cStatus:
		if op, statusOK, end, ok = fastStatus(s, i+len(cStatus)-1); !ok || !statusOK {
			return 0, 0, 0, false
		}
		if len(s)-end < len(cTimeAfterA)+len(cTimeB) || string(s[end:end+len(cTimeAfterA)]) != cTimeAfterA ||
			string(s[end+len(cTimeAfterA):end+len(cTimeAfterA)+len(cTimeB)]) != cTimeB {
			return 0, 0, 0, false
		}
		if t, end, ok = compactTime(s, end+len(cTimeAfterA)+len(cTimeB)-1); !ok {
			return 0, 0, 0, false
		}
	case len(s)-i >= len(cTimeA)+len(cTimeB) && string(s[i:i+len(cTimeA)]) == cTimeA &&
		string(s[i+len(cTimeA):i+len(cTimeA)+len(cTimeB)]) == cTimeB:
		if t, end, ok = compactTime(s, i+len(cTimeA)+len(cTimeB)-1); !ok {
			return 0, 0, 0, false
		}
		if len(s)-end < len(cStatusAfter) || string(s[end:end+len(cStatusAfter)]) != cStatusAfter {
			return 0, 0, 0, false
		}
		if op, statusOK, end, ok = fastStatus(s, end+len(cStatusAfter)-1); !ok || !statusOK {
			return 0, 0, 0, false
		}
	default:
		return 0, 0, 0, false
	}
	if end >= len(s) || s[end] != '}' {
		return 0, 0, 0, false
	}
	return op, t, end + 1, true
}

// compactTime reads a valid timestamp string whose opening quote is at j.
func compactTime(s []byte, j int) (t int64, end int, ok bool) {
	n := timestampLen(s, j+1)
	if n == 0 || j+1+n >= len(s) || s[j+1+n] != '"' {
		return 0, 0, false
	}
	if t, ok = parseTimestamp(s[j+1 : j+1+n]); !ok {
		return 0, 0, false
	}
	return t, j + n + 2, true
}

// looseMembership reads a membership object at i in any form the fast
// path takes: members in any order, white space, other members skipped, a
// null or malformed time or an unknown status (reported, not read).
func (p *parser) looseMembership(i int) (op uint8, t int64, statusOK, timeOK bool, end int, ok bool) {
	s := p.s
	i, empty, ok := fastOpenObject(s, i)
	if !ok {
		return 0, 0, false, false, 0, false
	}
	t = p.received
	statusOK, timeOK = false, true
	for !empty {
		which, _, j, ok := fastKeyOf(s, i, litStatus, litLastQualification)
		if !ok {
			return 0, 0, false, false, 0, false
		}
		switch which {
		case 0:
			if s[j] != '"' {
				return 0, 0, false, false, 0, false
			}
			if op, statusOK, j, ok = fastStatus(s, j); !ok {
				return 0, 0, false, false, 0, false
			}
		case 1:
			var v []byte
			switch s[j] {
			case '"':
				// A valid timestamp is found where its shape says it ends
				// (and holds no quote, so that is the string's end too);
				// anything else is scanned as a string first.
				var jt int
				if t, jt, ok = compactTime(s, j); ok {
					timeOK, j = true, jt
					break
				}
				if v, j, ok = fastString(s, j); !ok {
					return 0, 0, false, false, 0, false
				}
				t, timeOK = parseTimestamp(v)
			case 'n':
				if j, ok = p.fastSkip(j); !ok {
					return 0, 0, false, false, 0, false
				}
				t, timeOK = p.received, true
			default:
				return 0, 0, false, false, 0, false
			}
		default:
			if j, ok = p.fastSkip(j); !ok {
				return 0, 0, false, false, 0, false
			}
		}
		if i, empty, ok = fastNext(s, j, '}'); !ok {
			return 0, 0, false, false, 0, false
		}
	}
	return op, t, statusOK, timeOK, i, true
}

// timestampLen is how long the timestamp starting at s[i] is, judged by
// the parts parseTimestamp reads after the fixed 19 bytes (a fraction, then
// Z or an offset), or 0. It checks nothing else: parseTimestamp does.
func timestampLen(s []byte, i int) int {
	k := i + 19
	if k < len(s) && s[k] == '.' {
		k++
		for k < len(s) && '0' <= s[k] && s[k] <= '9' {
			k++
		}
	}
	if k+3 >= len(s) {
		return 0
	}
	switch s[k] {
	case 'Z':
		return k + 1 - i
	case '+', '-':
		if s[k+3] == ':' {
			return k + 6 - i
		}
		return k + 5 - i
	}
	return 0
}

// fastStatus reads the status string at j: realized and existing are
// ADD, exited is REMOVE, anything else is not a status (statusOK false).
func fastStatus(s []byte, j int) (op uint8, statusOK bool, end int, ok bool) {
	switch {
	case litRealized.at(s, j):
		return recAdd, true, j + len(litRealized.s), true
	case litExited.at(s, j):
		return recRemove, true, j + len(litExited.s), true
	case litExisting.at(s, j):
		return recAdd, true, j + len(litExisting.s), true
	}
	v, end, ok := fastString(s, j)
	if !ok {
		return 0, false, 0, false
	}
	switch string(v) {
	case "realized", "existing":
		return recAdd, true, end, true
	case "exited":
		return recRemove, true, end, true
	}
	return recAdd, false, end, true
}

// fastFail is fail at the path segs inside the current profile. With
// p.deferPaths (the second half of a split body, whose profile indexes are
// not known yet) the failure waits in p.deferred, its path without the
// profile's part.
func (p *parser) fastFail(reason string, segs ...pathSeg) {
	if p.deferPaths {
		p.rep.Failed[reason]++
		if len(p.deferred) < p.lim.MaxFailures {
			p.deferred = append(p.deferred, deferredFailure{reason: reason, profile: p.fastProfile, rest: p.renderPath(nil, segs...)[1:]})
		}
		return
	}
	p.path = p.path[:0]
	if p.fastWrapper {
		p.path = append(p.path, nameSeg(nameProfiles))
	}
	p.path = append(p.path, indexSeg(p.fastProfile))
	p.fail(reason, segs...)
	p.path = p.path[:0]
}

// deferredFailure is a failure of profile (an index relative to the start
// of a split body's second half) at the path rest within that profile.
type deferredFailure struct {
	reason  string
	profile int
	rest    string
}

func keySeg(sp span) pathSeg { return pathSeg{kind: segKey, a: sp.a, b: sp.b} }
