package audience

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"
)

// parse maps body into p, reusing p's buffers: the records of every
// (membership × mapped identity) in arrival order, their hashes, audiences
// and the report. receivedAt is the event time of memberships without
// lastQualificationTime (their records are marked received).
//
// A malformed identity or membership fails alone and is counted in the
// report; request-level problems (not JSON, a wrong type where the shape is
// fixed, a repeated key, nesting too deep, a limit exceeded) return a
// *RequestError. A receivedAt outside Unix nanoseconds (years 1678–2262) is
// a plain error.
func (p *parser) parse(body []byte, lim Limits, receivedAt time.Time) error {
	lim = lim.withDefaults()
	if int64(len(body)) > lim.MaxBodyBytes {
		return tooLarge(lim.MaxBodyBytes)
	}
	if !InUnixNano(receivedAt) {
		return errors.New("parse profiles: receivedAt is outside the range of Unix nanoseconds")
	}
	p.reset(body, lim, receivedAt.UnixNano())
	return p.document()
}

// reset readies p for body, keeping the capacity of its buffers.
func (p *parser) reset(body []byte, lim Limits, received int64) {
	p.s, p.i, p.lim, p.received, p.depth = body, 0, lim, received, 0
	p.rep = newReport()
	p.path, p.keys = p.path[:0], p.keys[:0]
	// AEP bodies carry about one change per 80 bytes and one identity per
	// 150: sized a little above that, typical bodies never grow these.
	p.recs = resetCap(p.recs, min(len(body)/60, lim.MaxChanges))
	p.sums = resetCap(p.sums, len(body)/100)
	clear(p.auds) // drop the last request's strings
	p.auds = p.auds[:0]
	p.ids, p.mems, p.nAud, p.lastNS = p.ids[:0], p.mems[:0], 0, nil
	if p.nss == nil {
		p.nss = map[string]*namespaceEntry{}
	}
	clear(p.nss)
	clear(p.escKeys)
	p.escKeys = p.escKeys[:0]
}

// wipe zeroes the scratch buffers that can hold a plain identifier (an
// unescaped string, a normalised email, a key or a slice of the body), so
// that a parser kept between requests keeps none of the last one.
func (p *parser) wipe() {
	clear(p.strbuf[:cap(p.strbuf)])
	clear(p.idbuf[:cap(p.idbuf)])
	clear(p.h.norm[:cap(p.h.norm)])
	clear(p.keys[:cap(p.keys)])
	clear(p.escKeys[:cap(p.escKeys)])
	for _, set := range p.sets {
		clear(set)
	}
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
	s        []byte
	i        int
	lim      Limits
	received int64 // Unix nanoseconds
	rep      Report
	h        hasher

	path  []pathSeg // where the walk is, for error paths
	depth int       // open objects and arrays around p.i
	keys  [][]byte  // the keys of the open objects, for repeats (see object)
	sets  []map[string]struct{}

	// Output: one compact record per change, in arrival order; sums holds
	// the hashes they point at and auds the audiences.
	recs []rec
	sums [][32]byte
	auds []Ref

	// The profile being read.
	ids  []profileIdentity
	mems []profileMembership
	nAud int

	nss     map[string]*namespaceEntry // audience namespaces seen, with their audiences
	lastNS  *namespaceEntry            // the last one looked up
	strbuf  []byte                     // unescaped strings; valid until the next readString
	escKeys [][]byte                   // unescaped copies of keys with escapes on the path
	idbuf   []byte                     // an unescaped identifier kept while its entry is read

	// An erasure request (MapErasure): memberships are skipped and every
	// profile's identities kept in erased.
	erasure bool
	erased  []profileIdentity
}

// rec is one change without pointers: cheap to build, sort and drop.
type rec struct {
	t   int64  // event time, Unix nanoseconds
	sum int32  // index into parser.sums
	alo uint32 // aud<<4 | received<<3 | list<<1 | op: see packALO
}

// packALO packs a record's audience (index into parser.auds), whether its
// time is the receive time, its list type (index into recLists) and op
// (index into recOps) into 32 bits, so that a record is 16 bytes.
// maxAudiences bounds the audience index.
func packALO(aud int32, received bool, list, op uint8) uint32 {
	r := uint32(0)
	if received {
		r = 1
	}
	return uint32(aud)<<4 | r<<3 | uint32(list)<<1 | uint32(op)
}

// maxAudiences is one more than the largest audience index packALO keeps.
// A body would need gigabytes to name that many audiences; one that does
// gets invalid_audience for the audiences past it.
const maxAudiences = 1 << 28

func (r *rec) aud() int32     { return int32(r.alo >> 4) }
func (r *rec) received() bool { return r.alo&8 != 0 }
func (r *rec) list() uint8    { return uint8(r.alo >> 1 & 3) }
func (r *rec) op() uint8      { return uint8(r.alo & 1) }

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

type profileIdentity struct {
	list uint8
	sum  int32
}

type profileMembership struct {
	aud      int32
	op       uint8
	received bool
	t        int64
}

// namespaceEntry is an audience namespace: its name and its audiences'
// indexes into parser.auds (-1: an invalid audience).
type namespaceEntry struct {
	name string
	ids  map[string]int32
}

// change is record i as a Change, its hash hex-encoded.
func (p *parser) change(i int32) Change {
	r := &p.recs[i]
	return Change{
		Audience:  p.auds[r.aud()],
		List:      recLists[r.list()],
		Op:        recOps[r.op()],
		Hash:      hex.EncodeToString(p.sums[r.sum][:]),
		EventTime: time.Unix(0, r.t).UTC(),
		Seq:       uint64(i) + 1,
		Received:  r.received(),
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
		return p.requestErr(ErrWrongType, "the body must be a profile object, an array of profiles or {\"profiles\": [...]}")
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
		}
		return p.profileField(key)
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
		return p.requestErr(ErrWrongType, "profiles must be an array")
	}
	return p.array(func(idx int) error {
		p.pushIndex(idx)
		defer p.pop()
		if p.rep.Profiles >= p.lim.MaxProfiles {
			return p.requestErr(ErrTooManyProfiles, fmt.Sprintf("more than %d profiles", p.lim.MaxProfiles))
		}
		if p.s[p.i] != '{' {
			if err := p.skipValue(); err != nil {
				return err
			}
			return p.requestErr(ErrWrongType, "a profile must be an object")
		}
		p.rep.Profiles++
		p.startProfile()
		if err := p.object(func(key []byte, _ span) error { return p.profileField(key) }); err != nil {
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
	return false, p.requestErr(ErrWrongType, msg)
}

// profileField reads the value of a profile's member key: identityMap and
// segmentMembership are mapped, anything else skipped.
func (p *parser) profileField(key []byte) error {
	switch string(key) {
	case "identityMap":
		p.pushName(nameIdentityMap)
		defer p.pop()
		return p.identityMap()
	case "segmentMembership":
		if p.erasure {
			return p.skipValue()
		}
		p.pushName(nameSegmentMembership)
		defer p.pop()
		return p.segmentMembership()
	}
	return p.skipValue()
}

func (p *parser) startProfile() {
	p.ids = p.ids[:0]
	p.mems = p.mems[:0]
	p.nAud = 0
}

// endProfile emits the profile's changes: every membership × every identity.
func (p *parser) endProfile() error {
	if p.erasure {
		return p.endErasureProfile()
	}
	if len(p.ids) == 0 || len(p.mems) == 0 {
		return nil
	}
	n := len(p.ids) * len(p.mems)
	if len(p.recs)+n > p.lim.MaxChanges {
		return p.requestErr(ErrTooManyChanges, fmt.Sprintf("more than %d changes (identities × memberships) in the request", p.lim.MaxChanges))
	}
	if cap(p.recs)-len(p.recs) < n {
		// Double, rather than append's 1.25× for large slices.
		p.recs = slices.Grow(p.recs, max(n, len(p.recs), 1024))
	}
	for _, m := range p.mems {
		ao := packALO(m.aud, m.received, 0, m.op)
		for _, id := range p.ids {
			p.recs = append(p.recs, rec{t: m.t, sum: id.sum, alo: ao | uint32(id.list)<<1})
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
				return p.requestErr(ErrTooManyIdentities, fmt.Sprintf("more than %d identities in one namespace of one profile", p.lim.MaxIdentitiesPerNS))
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
	if re, ok := err.(*RequestError); ok && re.Kind == ErrDuplicateKey {
		// Name the entry, as failures do: the path ends in the key.
		key := p.path[len(p.path)-1]
		re.Path = p.renderPath(p.path[:len(p.path)-1], indexSeg(idx), key)
	}
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
		p.ids = append(p.ids, profileIdentity{list: ns.list(), sum: int32(len(p.sums) - 1)})
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
func (p *parser) membership(aud int32) error {
	if p.s[p.i] != '{' {
		if err := p.skipValue(); err != nil {
			return err
		}
		p.fail(FailInvalidMembership)
		return nil
	}
	var op uint8
	t, received := p.received, true
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
				received = false
				return nil
			case 'n':
				t, received, timeOK = p.received, true, true
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
	case aud < 0:
		p.fail(FailInvalidAudience)
	case !statusOK:
		p.fail(FailInvalidStatus, nameSeg(nameStatus))
	case !timeOK:
		p.fail(FailInvalidTimestamp, nameSeg(nameLastQualificationTime))
	default:
		p.mems = append(p.mems, profileMembership{aud: aud, op: op, received: received, t: t})
	}
	return nil
}

// namespace interns an audience namespace key (bodies mostly name one).
func (p *parser) namespace(key []byte) *namespaceEntry {
	if p.lastNS != nil && p.lastNS.name == string(key) {
		return p.lastNS
	}
	e, ok := p.nss[string(key)]
	if !ok {
		e = &namespaceEntry{name: string(key), ids: map[string]int32{}}
		p.nss[e.name] = e
	}
	p.lastNS = e
	return e
}

// audience interns an audience of namespace ns and checks it once.
func (p *parser) audience(ns *namespaceEntry, id []byte) int32 {
	if idx, ok := ns.ids[string(id)]; ok {
		return idx
	}
	ref := Ref{Namespace: ns.name, ID: string(id)}
	idx := int32(-1)
	if ref.Validate() == nil && len(p.auds) < maxAudiences {
		idx = int32(len(p.auds))
		p.auds = append(p.auds, ref)
	}
	ns.ids[ref.ID] = idx
	return idx
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

// requestErr is a request error of kind at the current path.
func (p *parser) requestErr(kind, msg string) error {
	return &RequestError{Kind: kind, Path: p.renderPath(p.path), Message: msg}
}
