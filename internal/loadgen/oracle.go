package loadgen

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// ListKey names one customer list: the audience key ("<namespace>:<id>")
// and the list type (EMAIL, MAID, IDFA).
type ListKey struct {
	Audience string
	Type     string
}

func (k ListKey) String() string { return k.Audience + " " + k.Type }

// OpCounts counts the identifiers of a list by their final operation.
type OpCounts struct {
	Add    int
	Remove int
}

// BodyStats is what the mapping rules make of one request body: the
// counters the 202 answer must report.
type BodyStats struct {
	Profiles  int
	Activated int            // identity entries mapped to a list type
	Excluded  map[string]int // by reason
	Failed    map[string]int // by reason: identities and memberships
	// Changes is the number of distinct (audience, list type, identifier)
	// the body changes: its changes after coalescing within the request.
	Changes int
	// Each of those is exactly one of: a Flip, won over the oracle's state
	// and changed it (in to out or out to in; an identifier never seen is
	// out); Resent, of the same precedence as the state (a membership AEP
	// re-sends unchanged, with its old lastQualificationTime; a retry);
	// Stale, lost to a newer state (a replay of an older body); NoOp, newer
	// than the state but leaving it as it was. They are counted in the
	// order the oracle is given the bodies.
	Flips  int
	Resent int
	Stale  int
	NoOps  int
}

// Identities is the number of identity entries of the body: activated,
// excluded or failed.
func (s BodyStats) Identities() int {
	n := s.Activated + sum(s.Excluded)
	for reason, c := range s.Failed {
		if isIdentityFailure(reason) {
			n += c
		}
	}
	return n
}

func isIdentityFailure(reason string) bool {
	switch reason {
	case FailedInvalidEmail, FailedInvalidEmailHash, FailedInvalidMAID, FailedInvalidIDFA, FailedInvalidIdentity:
		return true
	}
	return false
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// Oracle computes the membership the customer lists must end with, from the
// bodies as they were sent, with its own implementation of the mapping rules
// (see the package doc). The order rule does not depend on arrival: for one
// (audience, list type, identifier) the latest lastQualificationTime wins, on
// a tie the exit wins, and a membership without a time (stamped with its
// receive time) never outranks one that carried a time. So bodies may be
// added in any order, and adding one twice changes nothing. It is safe for
// concurrent use.
type Oracle struct {
	mu      sync.Mutex
	auds    map[string]uint32
	audKeys []string
	state   map[oracleKey]oracleState
	// epoch counts BeginPhase calls: a state whose epoch is the current one
	// remembers in wasAdd what it was when the phase began.
	epoch uint32
}

type oracleKey struct {
	aud  uint32
	list uint8
	hash [32]byte
}

type oracleState struct {
	timed bool  // t is a lastQualificationTime, not a receive time
	t     int64 // Unix nanoseconds
	add   bool
	// wasAdd is the state when phase epoch began (false: out or absent).
	epoch  uint32
	wasAdd bool
}

// newer reports whether a outranks b: a time that was sent beats a receive
// time, then the later time wins, then an exit beats a join. Equal ranks
// mean the same state.
func (a oracleState) newer(b oracleState) bool {
	if a.timed != b.timed {
		return a.timed
	}
	if a.t != b.t {
		return a.t > b.t
	}
	return !a.add && b.add
}

var oracleLists = [...]string{ListEmail, ListMAID, ListIDFA}

func oracleList(t string) uint8 {
	return uint8(slices.Index(oracleLists[:], t))
}

// NewOracle returns an empty Oracle: every list empty.
func NewOracle() *Oracle {
	return &Oracle{auds: map[string]uint32{}, state: map[oracleKey]oracleState{}}
}

// aepProfileIn is a profile as the oracle reads it: only the two fields the
// rules look at, each value kept raw so its type can be checked.
type aepProfileIn struct {
	IdentityMap       json.RawMessage `json:"identityMap"`
	SegmentMembership json.RawMessage `json:"segmentMembership"`
}

// AddBody applies one accepted POST /v1/profiles body. receivedAt stands in
// for a membership without lastQualificationTime. It returns the counters
// the server's 202 answer must show, and an error for a body the server
// would refuse as a whole (then nothing of it is applied).
func (o *Oracle) AddBody(body []byte, receivedAt time.Time) (BodyStats, error) {
	profiles, err := splitProfiles(body)
	if err != nil {
		return BodyStats{}, err
	}
	st := BodyStats{Profiles: len(profiles), Excluded: map[string]int{}, Failed: map[string]int{}}
	type change struct {
		key oracleKey
		s   oracleState
	}
	var changes []change
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, raw := range profiles {
		var p aepProfileIn
		if err := json.Unmarshal(raw, &p); err != nil {
			return BodyStats{}, fmt.Errorf("decode a profile: %w", err)
		}
		ids, err := readIdentities(p.IdentityMap, &st)
		if err != nil {
			return BodyStats{}, err
		}
		mems, err := o.readMemberships(p.SegmentMembership, receivedAt, &st)
		if err != nil {
			return BodyStats{}, err
		}
		for _, m := range mems {
			for _, id := range ids {
				changes = append(changes, change{
					key: oracleKey{aud: m.aud, list: oracleList(id.list), hash: id.hash},
					s:   oracleState{timed: m.timed, t: m.t, add: m.add},
				})
			}
		}
	}
	// Coalesce within the body first (the winner per key), then apply
	// each winner to the state, so the counts are per distinct key.
	winners := make(map[oracleKey]oracleState, len(changes))
	for _, c := range changes {
		if w, ok := winners[c.key]; !ok || c.s.newer(w) {
			winners[c.key] = c.s
		}
	}
	for k, w := range winners {
		cur, ok := o.state[k]
		switch {
		case ok && cur.newer(w):
			st.Stale++
			continue
		case ok && !w.newer(cur):
			st.Resent++
			continue
		case cur.add != w.add: // an absent key is out
			st.Flips++
		default:
			st.NoOps++
		}
		if !ok || cur.epoch != o.epoch {
			cur.wasAdd, cur.epoch = cur.add, o.epoch
		}
		w.epoch, w.wasAdd = cur.epoch, cur.wasAdd
		o.state[k] = w
	}
	st.Changes = len(winners)
	return st, nil
}

// BeginPhase starts counting the state flips of a phase: PhaseFlips
// compares every identifier's state with the one it had here.
func (o *Oracle) BeginPhase() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.epoch++
}

// PhaseFlips is, per list, how many identifiers are in now and were out
// (or unknown) when the phase began (Add), and the reverse (Remove): the
// records Pinterest must be sent for the phase, however many times AEP
// re-sent them. An identifier that flipped and flipped back counts for
// nothing.
func (o *Oracle) PhaseFlips() map[ListKey]OpCounts {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[ListKey]OpCounts{}
	for k, s := range o.state {
		if s.epoch != o.epoch || s.add == s.wasAdd {
			continue
		}
		lk := ListKey{Audience: o.audKeys[k.aud], Type: oracleLists[k.list]}
		c := out[lk]
		if s.add {
			c.Add++
		} else {
			c.Remove++
		}
		out[lk] = c
	}
	return out
}

// LowerBoundOf is the fewest customer list calls that carry counts with at
// most maxRecords records per call: for each list and operation,
// ceil(records / maxRecords).
func LowerBoundOf(counts map[ListKey]OpCounts, maxRecords int) int {
	n := 0
	for _, c := range counts {
		n += ceilDiv(c.Add, maxRecords) + ceilDiv(c.Remove, maxRecords)
	}
	return n
}

// pairFlips is counts by list and operation, leaving out the empty ones.
func pairFlips(counts map[ListKey]OpCounts) []int {
	var out []int
	for _, c := range counts {
		for _, n := range []int{c.Add, c.Remove} {
			if n > 0 {
				out = append(out, n)
			}
		}
	}
	return out
}

// Total is the records of counts: adds and removes over every list.
func Total(counts map[ListKey]OpCounts) int {
	n := 0
	for _, c := range counts {
		n += c.Add + c.Remove
	}
	return n
}

// splitProfiles finds the profiles of a body: one profile object, an array
// of them, or {"profiles": [...]}.
func splitProfiles(body []byte) ([]json.RawMessage, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, errors.New("empty body")
	}
	var list []json.RawMessage
	switch trimmed[0] {
	case '[':
		if err := json.Unmarshal(trimmed, &list); err != nil {
			return nil, fmt.Errorf("decode the profile array: %w", err)
		}
	case '{':
		var top map[string]json.RawMessage
		if err := json.Unmarshal(trimmed, &top); err != nil {
			return nil, fmt.Errorf("decode the body: %w", err)
		}
		if raw, ok := top["profiles"]; ok {
			if err := json.Unmarshal(raw, &list); err != nil {
				return nil, fmt.Errorf("decode profiles: %w", err)
			}
		} else {
			list = []json.RawMessage{trimmed}
		}
	default:
		return nil, errors.New("the body is neither an object nor an array")
	}
	for i, p := range list {
		if t := bytes.TrimSpace(p); len(t) == 0 || t[0] != '{' {
			return nil, fmt.Errorf("profile %d is not an object", i)
		}
	}
	return list, nil
}

type oracleIdentity struct {
	list string
	hash [32]byte
}

// readIdentities maps an identityMap, counting every entry in st.
func readIdentities(raw json.RawMessage, st *BodyStats) ([]oracleIdentity, error) {
	if isNull(raw) {
		return nil, nil
	}
	var nss map[string]json.RawMessage
	if err := json.Unmarshal(raw, &nss); err != nil {
		return nil, fmt.Errorf("identityMap is not an object: %w", err)
	}
	var out []oracleIdentity
	for ns, v := range nss {
		if isNull(v) {
			continue
		}
		var entries []json.RawMessage
		if err := json.Unmarshal(v, &entries); err != nil {
			return nil, fmt.Errorf("identity namespace is not an array: %w", err)
		}
		for _, e := range entries {
			if !mappedNamespace(ns) {
				st.Excluded[ExcludedUnsupportedNamespace]++
				continue
			}
			var entry map[string]json.RawMessage
			var id string
			if json.Unmarshal(e, &entry) != nil || json.Unmarshal(entry["id"], &id) != nil || !isString(entry["id"]) {
				st.Failed[FailedInvalidIdentity]++
				continue
			}
			if !utf8.Valid(entry["id"]) {
				// encoding/json replaced the invalid bytes with U+FFFD;
				// the identifier as sent is no valid one of any namespace.
				id = "\xff"
			}
			m := mapIdentity(ns, id)
			switch {
			case m.failed != "":
				st.Failed[m.failed]++
			case m.excluded != "":
				st.Excluded[m.excluded]++
			default:
				st.Activated++
				out = append(out, oracleIdentity{list: m.list, hash: m.hash})
			}
		}
	}
	return out, nil
}

type oracleMembership struct {
	aud   uint32
	add   bool
	timed bool
	t     int64
}

// readMemberships reads a segmentMembership, counting failures in st.
func (o *Oracle) readMemberships(raw json.RawMessage, receivedAt time.Time, st *BodyStats) ([]oracleMembership, error) {
	if isNull(raw) {
		return nil, nil
	}
	var nss map[string]json.RawMessage
	if err := json.Unmarshal(raw, &nss); err != nil {
		return nil, fmt.Errorf("segmentMembership is not an object: %w", err)
	}
	var out []oracleMembership
	for ns, v := range nss {
		if isNull(v) {
			continue
		}
		var auds map[string]json.RawMessage
		if err := json.Unmarshal(v, &auds); err != nil {
			return nil, fmt.Errorf("audience namespace is not an object: %w", err)
		}
		for id, mv := range auds {
			var m map[string]json.RawMessage
			if json.Unmarshal(mv, &m) != nil || m == nil {
				st.Failed[FailedInvalidMembership]++
				continue
			}
			if !validAudience(ns, id) {
				st.Failed[FailedInvalidAudience]++
				continue
			}
			var status string
			if !isString(m["status"]) || json.Unmarshal(m["status"], &status) != nil {
				st.Failed[FailedInvalidStatus]++
				continue
			}
			var add bool
			switch status {
			case "realized", "existing":
				add = true
			case "exited":
			default:
				st.Failed[FailedInvalidStatus]++
				continue
			}
			t, ok := eventTime(m["lastQualificationTime"], receivedAt)
			if !ok {
				st.Failed[FailedInvalidTimestamp]++
				continue
			}
			timed := m["lastQualificationTime"] != nil && !isNull(m["lastQualificationTime"])
			out = append(out, oracleMembership{aud: o.audience(ns + ":" + id), add: add, timed: timed, t: t})
		}
	}
	return out, nil
}

func (o *Oracle) audience(key string) uint32 {
	if i, ok := o.auds[key]; ok {
		return i
	}
	i := uint32(len(o.audKeys))
	o.auds[key] = i
	o.audKeys = append(o.audKeys, key)
	return i
}

// Timestamp layouts AEP sends: a fraction of 1–9 digits or none, then Z,
// ±hh:mm or ±hhmm.
var timeLayouts = []string{"2006-01-02T15:04:05.999999999Z07:00", "2006-01-02T15:04:05.999999999Z0700"}

// eventTime reads lastQualificationTime: absent or null means receivedAt.
func eventTime(raw json.RawMessage, receivedAt time.Time) (int64, bool) {
	if raw == nil || isNull(raw) {
		return receivedAt.UnixNano(), true
	}
	var s string
	if !isString(raw) || json.Unmarshal(raw, &s) != nil || len(s) < 20 || s[10] != 'T' || fractionDigits(s) > 9 {
		return 0, false
	}
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			if y := t.Year(); y < 1678 || y > 2261 {
				return 0, false
			}
			return t.UnixNano(), true
		}
	}
	return 0, false
}

// fractionDigits counts the digits after the seconds of a timestamp
// (time.Parse takes any number; AEP sends 1 to 9).
func fractionDigits(s string) int {
	if len(s) < 20 || s[19] != '.' {
		return 0
	}
	n := 0
	for _, c := range s[20:] {
		if c < '0' || c > '9' {
			break
		}
		n++
	}
	return n
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func isString(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && t[0] == '"'
}

// Expected is the membership every list must have: the identifiers (64
// lowercase hex) whose latest change is an ADD, sorted. Lists that never
// had an ADD win are absent.
func (o *Oracle) Expected() map[ListKey][]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[ListKey][]string{}
	for k, s := range o.state {
		if !s.add {
			continue
		}
		lk := ListKey{Audience: o.audKeys[k.aud], Type: oracleLists[k.list]}
		out[lk] = append(out[lk], hex.EncodeToString(k.hash[:]))
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}

// Counts is, per list, how many identifiers end with an ADD and how many
// with a REMOVE: the records the connector must send at the least.
func (o *Oracle) Counts() map[ListKey]OpCounts {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[ListKey]OpCounts{}
	for k, s := range o.state {
		lk := ListKey{Audience: o.audKeys[k.aud], Type: oracleLists[k.list]}
		c := out[lk]
		if s.add {
			c.Add++
		} else {
			c.Remove++
		}
		out[lk] = c
	}
	return out
}

// Identifiers is the number of distinct (audience, list type, identifier)
// seen so far.
func (o *Oracle) Identifiers() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.state)
}

// LowerBound is the fewest customer list calls that can bring the lists to
// the expected state with at most maxRecords records per call: for each
// list and operation, ceil(records / maxRecords).
func (o *Oracle) LowerBound(maxRecords int) int {
	return LowerBoundOf(o.Counts(), maxRecords)
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// Diff compares actual list contents (by list) with Expected and describes
// every difference: missing or unexpected lists and members, by count, with
// a few hash prefixes as examples. It is empty when they are equal. Empty
// lists count as absent.
func Diff(expected, actual map[ListKey][]string) []string {
	var out []string
	keys := slices.Collect(maps.Keys(expected))
	for k, v := range actual {
		if _, ok := expected[k]; !ok && len(v) > 0 {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b ListKey) int { return strings.Compare(a.String(), b.String()) })
	for _, k := range keys {
		missing, extra := setDiff(expected[k], actual[k])
		if len(missing) == 0 && len(extra) == 0 {
			continue
		}
		out = append(out, fmt.Sprintf("%s: want %d members, have %d; %d missing %s, %d unexpected %s",
			k, len(expected[k]), len(actual[k]), len(missing), examples(missing), len(extra), examples(extra)))
	}
	return out
}

// setDiff returns what is in want but not in have, and the reverse.
func setDiff(want, have []string) (missing, extra []string) {
	h := make(map[string]bool, len(have))
	for _, x := range have {
		h[x] = true
	}
	w := make(map[string]bool, len(want))
	for _, x := range want {
		w[x] = true
		if !h[x] {
			missing = append(missing, x)
		}
	}
	for _, x := range have {
		if !w[x] {
			extra = append(extra, x)
		}
	}
	return missing, extra
}

func examples(hashes []string) string {
	if len(hashes) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("(e.g.")
	for i, h := range hashes[:min(3, len(hashes))] {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(" " + h[:min(12, len(h))] + "…")
	}
	b.WriteByte(')')
	return b.String()
}
