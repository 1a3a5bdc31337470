package audience

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// ParseProfiles decodes a POST /v1/profiles body (one profile, an array of
// profiles, or {"profiles": [...]}), maps every identity and membership, and
// returns the changes in arrival order (Seq set, starting at 1) and the
// report. A change is one (membership × mapped identity) of a profile.
// receivedAt is the event time of memberships without lastQualificationTime.
//
// A malformed identity or membership fails alone and is counted in the
// report; request-level problems (not JSON, a wrong type where the shape is
// fixed, a limit exceeded) return a *RequestError and no changes. An error
// from r, or a receivedAt outside Unix nanoseconds (years 1678–2262), is
// returned as a plain error.
func ParseProfiles(r io.Reader, lim Limits, receivedAt time.Time) ([]Change, Report, error) {
	lim = lim.withDefaults()
	body, err := readBody(r, lim.MaxBodyBytes)
	if err != nil {
		return nil, Report{}, err
	}
	return ParseProfilesBytes(body, lim, receivedAt)
}

// readBody reads all of r, but no more than max+1 bytes: more than max is a
// too_large RequestError. A reader that knows its length (bytes.Reader,
// strings.Reader) is read into one allocation of the right size.
func readBody(r io.Reader, max int64) ([]byte, error) {
	size := 512
	if l, ok := r.(interface{ Len() int }); ok {
		if int64(l.Len()) > max {
			return nil, tooLarge(max)
		}
		size = l.Len() + 1 // +1 so that EOF is seen without growing
	}
	buf := make([]byte, 0, size)
	lr := io.LimitReader(r, max+1)
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, cap(buf))
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read profiles body: %w", err)
		}
	}
	if int64(len(buf)) > max {
		return nil, tooLarge(max)
	}
	return buf, nil
}

// ParseProfilesBytes is ParseProfiles for a body already in memory (an API
// Gateway event's body). It does not keep body.
func ParseProfilesBytes(body []byte, lim Limits, receivedAt time.Time) ([]Change, Report, error) {
	p, err := parse(body, lim, receivedAt)
	if err != nil {
		return nil, Report{}, err
	}
	if len(p.recs) == 0 {
		return nil, p.rep, nil
	}
	hexes := &hexTable{half: [2]string{hexSums(p.sums)}, cut: int32(len(p.sums))}
	out := make([]Change, len(p.recs))
	for i := range p.recs {
		p.change(&out[i], int32(i), hexes)
	}
	return out, p.rep, nil
}

// MapProfiles is Coalesce(ParseProfiles(...)) in one pass: it parses, maps
// and coalesces without building the arrival-order changes, which makes it
// the fast path for ingest. The result and the report are exactly those of
// ParseProfiles followed by Coalesce.
func MapProfiles(r io.Reader, lim Limits, receivedAt time.Time) ([]Change, Report, error) {
	lim = lim.withDefaults()
	body, err := readBody(r, lim.MaxBodyBytes)
	if err != nil {
		return nil, Report{}, err
	}
	return MapProfilesBytes(body, lim, receivedAt)
}

// MapProfilesBytes is MapProfiles for a body already in memory. It maps
// with a new Mapper; a caller that maps many bodies keeps one instead.
func MapProfilesBytes(body []byte, lim Limits, receivedAt time.Time) ([]Change, Report, error) {
	m := NewMapper(lim)
	rep, err := m.Map(body, receivedAt)
	if err != nil {
		return nil, Report{}, err
	}
	return m.Changes(), rep, nil
}

// parse maps body on the exact path alone: ParseProfiles's reference
// behaviour, which the fast path is held to.
func parse(body []byte, lim Limits, receivedAt time.Time) (*parser, error) {
	p := &parser{}
	if err := p.run(body, lim, receivedAt, false); err != nil {
		return nil, err
	}
	return p, nil
}

// run maps body into p, reusing p's buffers. With fast it first tries the
// fast path (fastDocument) and, if the body is not of the shape that path
// reads, starts over on the exact path (document); the result is the same
// either way.
func (p *parser) run(body []byte, lim Limits, receivedAt time.Time, fast bool) error {
	lim = lim.withDefaults()
	if int64(len(body)) > lim.MaxBodyBytes {
		return tooLarge(lim.MaxBodyBytes)
	}
	if receivedAt.Before(minEventTime) || receivedAt.After(maxEventTime) {
		return errors.New("parse profiles: receivedAt is outside the range of Unix nanoseconds")
	}
	p.reset(body, lim, receivedAt.UnixNano())
	if fast {
		if p.fastDocument() {
			return nil
		}
		p.reset(body, lim, receivedAt.UnixNano())
	}
	return p.document()
}

// reset readies p for body, keeping the capacity of its buffers.
func (p *parser) reset(body []byte, lim Limits, received int64) {
	p.s, p.i, p.lim, p.received = body, 0, lim, received
	p.rep = newReport()
	p.path = p.path[:0]
	// AEP bodies carry about one change per 80 bytes and one identity per
	// 150: sized a little above that, typical bodies never grow these
	// (larger counts double them).
	p.recs = resetCap(p.recs, min(len(body)/60, lim.MaxChanges))
	p.sums = resetCap(p.sums, len(body)/100)
	clear(p.auds) // drop the last request's strings
	p.auds, p.audCounts = p.auds[:0], p.audCounts[:0]
	// The profile's identities and memberships, and the normalised email,
	// live in arrays inside the parser (see its padding): written for
	// every profile, they must not share cache lines with another parser.
	p.ids, p.mems, p.nAud = p.idsBuf[:0], p.memsBuf[:0], 0
	p.h.norm = p.h.normBuf[:0]
	if p.nss == nil {
		p.nss = map[string]*namespaceEntry{}
	}
	clear(p.nss)
	p.lastNS, p.lastNSKey = nil, span{}
	clear(p.audCache[:])
	clear(p.idNS[:])
	clear(p.escKeys)
	p.escKeys = p.escKeys[:0]
	p.fastWrapper, p.fastProfile = false, 0
	p.deferPaths, p.deferred = false, p.deferred[:0]
}

// wipe zeroes the scratch buffers that can hold a plain identifier (an
// unescaped string, a normalised email), so that a parser kept between
// requests keeps none of the last one.
func (p *parser) wipe() {
	clear(p.strbuf[:cap(p.strbuf)])
	clear(p.idbuf[:cap(p.idbuf)])
	clear(p.h.norm[:cap(p.h.norm)])
}

// resetCap empties s and makes room for at least n elements.
func resetCap[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, 0, n)
	}
	return s[:0]
}

func tooLarge(max int64) *RequestError {
	return &RequestError{Kind: ErrTooLarge, Path: "$", Message: fmt.Sprintf("body is over %d bytes", max)}
}

// parser walks one body. Only the parts pinlist reads are decoded; every
// other value is skipped but still checked to be valid JSON.
type parser struct {
	// Two parsers map the halves of a split body at the same time, and
	// two objects of this size can be neighbours in memory: the padding
	// keeps one's most written fields (the first and the last) off the
	// cache lines of the other (128 bytes: x86 fetches lines in pairs).
	// Without it the first half took 40 % longer than the second.
	_ [128]byte

	s        []byte
	i        int
	lim      Limits
	received int64 // Unix nanoseconds
	rep      Report
	h        hasher

	path []pathSeg // where the walk is, for error paths

	// Output: one compact record per change, in arrival order; sums holds
	// the hashes they point at and auds the audiences.
	recs []rec
	sums [][32]byte
	auds []Ref
	// audCounts counts the records of each audience and list type:
	// audCounts[3*aud+list].
	audCounts []int32

	// The profile being read.
	ids     []profileIdentity
	mems    []profileMembership
	nAud    int
	idsBuf  [32]profileIdentity
	memsBuf [32]profileMembership

	nss       map[string]*namespaceEntry // audience namespaces seen, with their audiences
	lastNS    *namespaceEntry            // the fast path's last audience namespace
	lastNSKey span                       // and where its key was
	audCache  [256]audienceSlotEntry     // see audience
	idNS      [16]span                   // the fast path's last identity namespace keys, by first byte
	strbuf    []byte                     // unescaped strings; valid until the next readString
	escKeys   [][]byte                   // unescaped copies of keys with escapes on the path
	idbuf     []byte                     // an unescaped identifier kept while its entry is read

	// Where the fast path is, for failure paths: in {"profiles": [...]}
	// (else a top-level array), at profile fastProfile.
	fastWrapper bool
	fastProfile int
	deferPaths  bool              // failures go to deferred (see fastFail)
	deferred    []deferredFailure // with deferPaths

	_ [128]byte // see the first field
}

// rec is one change without pointers: cheap to build, sort and drop.
type rec struct {
	t   int64  // event time, Unix nanoseconds
	sum int32  // index into parser.sums
	alo uint32 // aud<<3 | list<<1 | op: see packALO
}

// packALO packs a record's audience (index into parser.auds), list type
// (index into recLists) and op (index into recOps) into 32 bits, so that a
// record is 16 bytes: a body of 10,000 profiles writes and reads fewer
// cache lines. maxAudiences bounds the audience index.
func packALO(aud int32, list, op uint8) uint32 {
	return uint32(aud)<<3 | uint32(list)<<1 | uint32(op)
}

// maxAudiences is one more than the largest audience index packALO keeps.
// A body would need gigabytes to name that many audiences; one that does
// gets invalid_audience for the audiences past it.
const maxAudiences = 1 << 29

func (r *rec) aud() int32  { return int32(r.alo >> 3) }
func (r *rec) list() uint8 { return uint8(r.alo >> 1 & 3) }
func (r *rec) op() uint8   { return uint8(r.alo & 1) }

// The list types and ops of recs, each in sorted order so that indexes sort
// like the strings.
var (
	recLists = [...]ListType{ListEmail, ListIDFA, ListMAID}
	recOps   = [...]Op{OpAdd, OpRemove}
)

// Indexes into recOps.
const (
	recAdd    uint8 = 0
	recRemove uint8 = 1
)

func listIndex(l ListType) uint8 {
	switch l {
	case ListIDFA:
		return 1
	case ListMAID:
		return 2
	}
	return 0
}

type profileIdentity struct {
	list uint8
	sum  int32
}

type profileMembership struct {
	aud int32
	op  uint8
	t   int64
}

type namespaceEntry struct {
	name string
	ids  map[string]audienceEntry
}

type audienceEntry struct {
	idx int32  // index into parser.auds; -1 for an invalid audience
	id  string // the audience ID (the map key)
}

// change fills c from record i.
func (p *parser) change(c *Change, i int32, hexes *hexTable) {
	r := &p.recs[i]
	*c = Change{
		Audience:  p.auds[r.aud()],
		List:      recLists[r.list()],
		Op:        recOps[r.op()],
		Hash:      hexes.of(r.sum),
		EventTime: time.Unix(0, r.t).UTC(),
		Seq:       uint64(i) + 1,
	}
}

// document reads the top-level value.
func (p *parser) document() error {
	p.ws()
	if p.i >= len(p.s) {
		return p.syntaxErr("empty body")
	}
	var err error
	switch p.s[p.i] {
	case '[':
		err = p.profileArray()
	case '{':
		err = p.topObject()
	default:
		if err := p.skipValue(); err != nil {
			return err
		}
		return p.wrongType("the body must be a profile object, an array of profiles or {\"profiles\": [...]}")
	}
	if err != nil {
		return err
	}
	p.ws()
	if p.i != len(p.s) {
		return p.syntaxErr("data after the top-level value")
	}
	return nil
}

// topObject reads a body that is either one profile or {"profiles": [...]}.
func (p *parser) topObject() error {
	var wrapper, single bool
	p.startProfile()
	err := p.object(func(key []byte, _ span) error {
		switch string(key) {
		case "profiles":
			if single {
				return p.ambiguous()
			}
			wrapper = true
			p.pushName(nameProfiles)
			err := p.profileArray()
			p.pop()
			return err
		case "identityMap", "segmentMembership":
			if wrapper {
				return p.ambiguous()
			}
			single = true
			return p.profileField(key[0] == 'i')
		}
		return p.skipValue()
	})
	if err != nil || wrapper {
		return err
	}
	p.rep.Profiles++
	return p.endProfile()
}

func (p *parser) ambiguous() error {
	return &RequestError{Kind: ErrAmbiguousBody, Path: "$", Message: `an object with "profiles" must not also have a profile's identityMap or segmentMembership`}
}

func (p *parser) profileArray() error {
	if p.s[p.i] != '[' {
		if err := p.skipValue(); err != nil {
			return err
		}
		return p.wrongType("profiles must be an array")
	}
	return p.array(func(idx int) error {
		p.pushIndex(idx)
		defer p.pop()
		if p.rep.Profiles >= p.lim.MaxProfiles {
			return p.limitErr(ErrTooManyProfiles, fmt.Sprintf("more than %d profiles", p.lim.MaxProfiles))
		}
		if p.s[p.i] != '{' {
			if err := p.skipValue(); err != nil {
				return err
			}
			return p.wrongType("a profile must be an object")
		}
		p.rep.Profiles++
		p.startProfile()
		err := p.object(func(key []byte, _ span) error {
			switch string(key) {
			case "identityMap", "segmentMembership":
				return p.profileField(key[0] == 'i')
			}
			return p.skipValue()
		})
		if err != nil {
			return err
		}
		return p.endProfile()
	})
}

// container checks that the value at p.i opens with want ('{' or '['). A
// null is an empty container: ok is false and err nil, the null consumed. Any
// other value is a wrong_type error with msg.
func (p *parser) container(want byte, msg string) (ok bool, err error) {
	switch p.s[p.i] {
	case want:
		return true, nil
	case 'n':
		return false, p.null()
	}
	if err := p.skipValue(); err != nil {
		return false, err
	}
	return false, p.wrongType(msg)
}

// profileField reads a profile's identityMap or segmentMembership.
func (p *parser) profileField(identityMap bool) error {
	if identityMap {
		p.pushName(nameIdentityMap)
		defer p.pop()
		return p.identityMap()
	}
	p.pushName(nameSegmentMembership)
	defer p.pop()
	return p.segmentMembership()
}

func (p *parser) startProfile() {
	p.ids = p.ids[:0]
	p.mems = p.mems[:0]
	p.nAud = 0
}

// endProfile emits the profile's changes: every membership × every identity.
func (p *parser) endProfile() error {
	if len(p.ids) == 0 || len(p.mems) == 0 {
		return nil
	}
	n := len(p.ids) * len(p.mems)
	if len(p.recs)+n > p.lim.MaxChanges {
		return p.limitErr(ErrTooManyChanges, fmt.Sprintf("more than %d changes (identities × memberships) in the request", p.lim.MaxChanges))
	}
	if cap(p.recs)-len(p.recs) < n {
		// Double, rather than append's 1.25× for large slices.
		p.recs = slices.Grow(p.recs, max(n, len(p.recs), 1024))
	}
	for _, m := range p.mems {
		ao := packALO(m.aud, 0, m.op)
		counts := p.audCounts[3*m.aud : 3*m.aud+3]
		for _, id := range p.ids {
			p.recs = append(p.recs, rec{t: m.t, sum: id.sum, alo: ao | uint32(id.list)<<1})
			counts[id.list]++
		}
	}
	return nil
}

// identityMap reads {"<namespace>": [{"id": "..."}, ...], ...}.
func (p *parser) identityMap() error {
	if ok, err := p.container('{', "identityMap must be an object"); !ok {
		return err
	}
	return p.object(func(key []byte, sp span) error {
		ns := classifyNamespace(key)
		p.push(key, sp)
		defer p.pop()
		if ok, err := p.container('[', "an identity namespace must be an array"); !ok {
			return err
		}
		return p.array(func(idx int) error {
			if idx >= p.lim.MaxIdentitiesPerNS {
				return p.limitErr(ErrTooManyIdentities, fmt.Sprintf("more than %d identities in one namespace of one profile", p.lim.MaxIdentitiesPerNS))
			}
			if ns == nsOther {
				p.rep.Excluded[ExcludedUnsupportedNamespace]++
				return p.skipValue()
			}
			return p.identity(ns, idx)
		})
	})
}

// identity reads one {"id": "..."} entry of a namespace pinlist maps.
func (p *parser) identity(ns namespace, idx int) error {
	if p.s[p.i] != '{' {
		if err := p.skipValue(); err != nil {
			return err
		}
		p.fail(FailInvalidIdentity, indexSeg(idx))
		return nil
	}
	var id []byte
	var haveID, badID bool
	err := p.object(func(key []byte, _ span) error {
		if string(key) != "id" {
			return p.skipValue()
		}
		if p.s[p.i] != '"' {
			badID = true
			return p.skipValue()
		}
		s, escaped, err := p.readString()
		if err != nil {
			return err
		}
		if escaped {
			p.idbuf = append(p.idbuf[:0], s...)
			s = p.idbuf
		}
		id, haveID, badID = s, true, false
		return nil
	})
	if err != nil {
		return err
	}
	switch {
	case badID:
		p.fail(FailInvalidIdentity, indexSeg(idx), nameSeg(nameID))
		return nil
	case !haveID:
		p.fail(FailInvalidIdentity, indexSeg(idx))
		return nil
	}
	switch p.h.hashIdentity(ns, id, p.newSum()) {
	case idOK:
		p.rep.Activated++
		p.ids = append(p.ids, profileIdentity{list: listIndex(ns.list()), sum: int32(len(p.sums) - 1)})
		return nil
	case idOptedOut:
		p.rep.Excluded[ExcludedOptedOut]++
	default:
		p.fail(ns.failReason(), indexSeg(idx), nameSeg(nameID))
	}
	p.sums = p.sums[:len(p.sums)-1]
	return nil
}

// newSum appends a hash slot to p.sums for the identity being read; the
// caller drops it again when the identity is not mapped.
func (p *parser) newSum() *[32]byte {
	if len(p.sums) == cap(p.sums) {
		p.sums = slices.Grow(p.sums, max(256, len(p.sums)))
	}
	p.sums = p.sums[:len(p.sums)+1]
	p.sums[len(p.sums)-1] = [32]byte{}
	return &p.sums[len(p.sums)-1]
}

// segmentMembership reads {"<audience ns>": {"<audience id>": {"status": ..., "lastQualificationTime": ...}}}.
func (p *parser) segmentMembership() error {
	if ok, err := p.container('{', "segmentMembership must be an object"); !ok {
		return err
	}
	return p.object(func(nsKey []byte, sp span) error {
		ns := p.namespace(nsKey)
		p.push(nsKey, sp)
		defer p.pop()
		if ok, err := p.container('{', "an audience namespace must be an object of audience IDs"); !ok {
			return err
		}
		return p.object(func(idKey []byte, sp span) error {
			if p.nAud >= p.lim.MaxAudiencesPerProfile {
				// The path names segmentMembership, not this audience namespace.
				return &RequestError{Kind: ErrTooManyAudiences, Path: p.renderPath(p.path[:len(p.path)-1]),
					Message: fmt.Sprintf("more than %d audience memberships in one profile", p.lim.MaxAudiencesPerProfile)}
			}
			p.nAud++
			aud := p.audience(ns, idKey)
			p.push(idKey, sp)
			defer p.pop()
			return p.membership(aud)
		})
	})
}

// membership reads one {"status": ..., "lastQualificationTime": ...}.
func (p *parser) membership(aud audienceEntry) error {
	if p.s[p.i] != '{' {
		if err := p.skipValue(); err != nil {
			return err
		}
		p.fail(FailInvalidMembership)
		return nil
	}
	var op uint8
	t := p.received
	var statusOK, timeOK = false, true
	err := p.object(func(key []byte, _ span) error {
		switch string(key) {
		case "status":
			op, statusOK = recAdd, false
			if p.s[p.i] != '"' {
				return p.skipValue()
			}
			s, _, err := p.readString()
			if err != nil {
				return err
			}
			switch string(s) {
			case "realized", "existing":
				op, statusOK = recAdd, true
			case "exited":
				op, statusOK = recRemove, true
			}
			return nil
		case "lastQualificationTime":
			switch p.s[p.i] {
			case '"':
				s, _, err := p.readString()
				if err != nil {
					return err
				}
				t, timeOK = parseTimestamp(s)
				return nil
			case 'n':
				t, timeOK = p.received, true
				return p.null()
			}
			timeOK = false
			return p.skipValue()
		}
		return p.skipValue()
	})
	switch {
	case err != nil:
		return err
	case aud.idx < 0:
		p.fail(FailInvalidAudience)
	case !statusOK:
		p.fail(FailInvalidStatus, nameSeg(nameStatus))
	case !timeOK:
		p.fail(FailInvalidTimestamp, nameSeg(nameLastQualificationTime))
	default:
		p.mems = append(p.mems, profileMembership{aud: aud.idx, op: op, t: t})
	}
	return nil
}

// namespace interns an audience namespace key.
func (p *parser) namespace(key []byte) *namespaceEntry {
	if e, ok := p.nss[string(key)]; ok {
		return e
	}
	e := &namespaceEntry{name: string(key), ids: map[string]audienceEntry{}}
	p.nss[e.name] = e
	return e
}

// audience interns an audience of namespace ns and checks it once. A
// small cache in front of the namespace's map answers most lookups: a
// body names a few audiences many times.
func (p *parser) audience(ns *namespaceEntry, id []byte) audienceEntry {
	slot := &p.audCache[audienceSlot(id)]
	if slot.ns == ns && slot.e.id == string(id) {
		return slot.e
	}
	e, ok := ns.ids[string(id)]
	if !ok {
		ref := Ref{Namespace: ns.name, ID: string(id)}
		e = audienceEntry{idx: -1, id: ref.ID}
		if ref.Validate() == nil && len(p.auds) < maxAudiences {
			e.idx = int32(len(p.auds))
			p.auds = append(p.auds, ref)
			p.audCounts = append(p.audCounts, 0, 0, 0)
		}
		ns.ids[ref.ID] = e
	}
	*slot = audienceSlotEntry{ns: ns, e: e}
	return e
}

// audienceSlot picks id's slot in parser.audCache from its first eight
// bytes (audience IDs are mostly UUIDs), or from all of a shorter one:
// the fast path finds the slot before it knows where the ID ends.
func audienceSlot(id []byte) uint8 {
	var h uint64
	if len(id) >= 8 {
		h = binary.LittleEndian.Uint64(id)
	} else {
		for _, c := range id {
			h = h<<8 | uint64(c)
		}
	}
	return uint8((h * 0x9e3779b97f4a7c15) >> 56)
}

// audienceSlotEntry is one slot of parser.audCache.
type audienceSlotEntry struct {
	ns *namespaceEntry
	e  audienceEntry
}

// fail counts a failed identity or membership at the current path plus extra.
func (p *parser) fail(reason string, extra ...pathSeg) {
	p.rep.Failed[reason]++
	if len(p.rep.Failures) >= p.lim.MaxFailures {
		p.rep.FailuresTruncated = true
		return
	}
	p.rep.Failures = append(p.rep.Failures, Failure{Reason: reason, Path: p.renderPath(p.path, extra...)})
}

func (p *parser) syntaxErr(msg string) error {
	return &RequestError{Kind: ErrMalformedJSON, Path: p.renderPath(p.path), Message: fmt.Sprintf("%s (byte offset %d)", msg, p.i)}
}

func (p *parser) wrongType(msg string) error {
	return &RequestError{Kind: ErrWrongType, Path: p.renderPath(p.path), Message: msg}
}

func (p *parser) limitErr(kind, msg string) error {
	return &RequestError{Kind: kind, Path: p.renderPath(p.path), Message: msg}
}
