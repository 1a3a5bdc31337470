package audience

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The JSON reading below is hand-written for speed: the fields pinlist maps
// are read straight from the body without reflection or per-token
// allocations. Values pinlist does not read (attributes, unknown keys) are
// skipped and then checked with json.Valid, so the parser accepts exactly
// what encoding/json accepts (the fuzz tests hold it to that).

// plain marks the bytes that may appear in a JSON string as they are.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func (p *parser) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// maxDepth is the deepest nesting of objects and arrays the parser reads:
// encoding/json's limit, so that it accepts exactly the JSON encoding/json
// accepts, but says why.
const maxDepth = 10_000

// object reads an object whose '{' is at p.i. For each member it reads the
// key and calls fn with the key, where it is (for paths) and p.i at the first
// byte of the value; fn must consume the value. A key that comes twice is a
// duplicate_key error: which of the two values counts would be a guess
// (encoding/json keeps the last, other readers the first).
func (p *parser) object(fn func(key []byte, sp span) error) error {
	p.i++
	p.depth++
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		p.depth--
		return nil
	}
	base := len(p.keys)
	for {
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return p.syntaxErr("expected an object key")
		}
		sp := span{a: int32(p.i + 1)}
		key, escaped, err := p.readString()
		if err != nil {
			return err
		}
		sp.b = int32(p.i - 1)
		if escaped {
			sp = span{a: -1, b: -1}
		}
		if err := p.uniqueKey(base, key, escaped, sp); err != nil {
			return err
		}
		p.ws()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return p.syntaxErr("expected ':' after an object key")
		}
		p.i++
		p.ws()
		if p.i >= len(p.s) {
			return p.syntaxErr("unexpected end of body")
		}
		if err := fn(key, sp); err != nil {
			return err
		}
		if done, err := p.next('}'); done || err != nil {
			p.keys = p.keys[:base]
			p.depth--
			return err
		}
	}
}

// uniqueKey adds key to the keys of the object being read (p.keys[base:])
// and fails if it is there already. Small objects are searched; from
// maxListedKeys keys on, a set per depth is used instead.
func (p *parser) uniqueKey(base int, key []byte, escaped bool, sp span) error {
	const maxListedKeys = 16
	seen := p.keys[base:]
	dup := false
	if len(seen) < maxListedKeys {
		for _, k := range seen {
			if bytes.Equal(k, key) {
				dup = true
				break
			}
		}
	} else {
		for len(p.sets) <= p.depth {
			p.sets = append(p.sets, nil)
		}
		set := p.sets[p.depth]
		if len(seen) == maxListedKeys {
			if set == nil {
				set = map[string]struct{}{}
				p.sets[p.depth] = set
			}
			clear(set)
			for _, k := range seen {
				set[string(k)] = struct{}{}
			}
		}
		_, dup = set[string(key)]
		set[string(key)] = struct{}{}
	}
	if dup {
		p.push(key, sp)
		return p.requestErr(ErrDuplicateKey, "a key repeated in one object: which of its values counts is ambiguous")
	}
	if escaped {
		key = bytes.Clone(key) // it is in strbuf, which the next string overwrites
	}
	p.keys = append(p.keys, key)
	return nil
}

// next reads what follows an object member or an array element: a ','
// (done is false) or the closing bracket (done is true).
func (p *parser) next(closing byte) (done bool, err error) {
	p.ws()
	if p.i >= len(p.s) {
		return false, p.syntaxErr("unexpected end of body")
	}
	switch p.s[p.i] {
	case ',':
		p.i++
		p.ws()
		return false, nil
	case closing:
		p.i++
		return true, nil
	}
	return false, p.syntaxErr("expected ',' or '" + string(closing) + "'")
}

// array reads an array whose '[' is at p.i, calling fn for each element with
// p.i at its first byte; fn must consume the element.
func (p *parser) array(fn func(idx int) error) error {
	p.i++
	p.depth++
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		p.depth--
		return nil
	}
	for idx := 0; ; idx++ {
		if p.i >= len(p.s) {
			return p.syntaxErr("unexpected end of body")
		}
		if err := fn(idx); err != nil {
			return err
		}
		if done, err := p.next(']'); done || err != nil {
			p.depth--
			return err
		}
	}
}

// null consumes the literal null at p.i.
func (p *parser) null() error {
	if rest := p.s[p.i:]; len(rest) < 4 || rest[0] != 'n' || rest[1] != 'u' || rest[2] != 'l' || rest[3] != 'l' {
		return p.syntaxErr("invalid literal")
	}
	p.i += 4
	return nil
}

// readString reads the string whose opening quote is at p.i. Without escapes
// the result is a slice of the body; with escapes it is decoded into strbuf
// and valid only until the next readString. Invalid UTF-8 is kept as is.
func (p *parser) readString() (s []byte, escaped bool, err error) {
	start := p.i + 1
	i := plainRun(p.s, start)
	if i < len(p.s) && p.s[i] == '"' {
		p.i = i + 1
		return p.s[start:i], false, nil
	}
	p.strbuf = append(p.strbuf[:0], p.s[start:i]...)
	p.i = i
	for {
		for p.i < len(p.s) && plain[p.s[p.i]] {
			p.strbuf = append(p.strbuf, p.s[p.i])
			p.i++
		}
		if p.i >= len(p.s) {
			return nil, false, p.syntaxErr("unterminated string")
		}
		switch p.s[p.i] {
		case '"':
			p.i++
			return p.strbuf, true, nil
		case '\\':
			if err := p.escape(); err != nil {
				return nil, false, err
			}
		default:
			return nil, false, p.syntaxErr("control character in a string")
		}
	}
}

// plainRun returns the index of the first byte at or after i that is not
// plain[] (a quote, a backslash or a control character), or len(s). It tests
// eight bytes at a time (SWAR): for each test, the lowest flagged byte of
// the classic "has zero byte" trick is exact, which is all that is needed.
func plainRun(s []byte, i int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(s); i += 8 {
		v := binary.LittleEndian.Uint64(s[i:])
		q := v ^ (ones * '"')
		b := v ^ (ones * '\\')
		if m := ((q-ones)&^q | (b-ones)&^b | (v-ones*0x20)&^v) & highs; m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for i < len(s) && plain[s[i]] {
		i++
	}
	return i
}

// escape decodes the escape sequence at p.i into strbuf, as encoding/json
// does (an unpaired surrogate becomes U+FFFD).
func (p *parser) escape() error {
	if p.i+1 >= len(p.s) {
		return p.syntaxErr("unterminated string")
	}
	c := p.s[p.i+1]
	var r rune
	switch c {
	case '"', '\\', '/':
		r = rune(c)
	case 'b':
		r = '\b'
	case 'f':
		r = '\f'
	case 'n':
		r = '\n'
	case 'r':
		r = '\r'
	case 't':
		r = '\t'
	case 'u':
		u, ok := hex4(p.s, p.i+2)
		if !ok {
			return p.syntaxErr("invalid \\u escape")
		}
		p.i += 6
		if utf16.IsSurrogate(u) {
			if u2, ok := hex4(p.s, p.i+2); ok && p.i+1 < len(p.s) && p.s[p.i] == '\\' && p.s[p.i+1] == 'u' {
				if dec := utf16.DecodeRune(u, u2); dec != utf8.RuneError {
					p.i += 6
					p.strbuf = utf8.AppendRune(p.strbuf, dec)
					return nil
				}
			}
			u = utf8.RuneError
		}
		p.strbuf = utf8.AppendRune(p.strbuf, u)
		return nil
	default:
		return p.syntaxErr("invalid escape")
	}
	p.i += 2
	p.strbuf = append(p.strbuf, byte(r))
	return nil
}

func hex4(s []byte, at int) (rune, bool) {
	if at+4 > len(s) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(s[at:at+4]), 16, 16)
	return rune(v), err == nil
}

// skipValue consumes the value at p.i (after white space) and checks that it
// is valid JSON nested at most maxDepth deep.
func (p *parser) skipValue() error {
	p.ws()
	if p.i >= len(p.s) {
		return p.syntaxErr("unexpected end of body")
	}
	start := p.i
	switch p.s[p.i] {
	case '"':
		_, _, err := p.readString()
		return err
	case '{', '[':
		depth := 0
		for p.i < len(p.s) {
			switch p.s[p.i] {
			case '"':
				if _, _, err := p.readString(); err != nil {
					return err
				}
				continue
			case '{', '[':
				if depth++; p.depth+depth > maxDepth {
					return p.requestErr(ErrTooDeep, fmt.Sprintf("objects and arrays nested more than %d deep", maxDepth))
				}
			case '}', ']':
				depth--
				if depth == 0 {
					p.i++
					if !json.Valid(p.s[start:p.i]) {
						p.i = start
						return p.syntaxErr("invalid JSON value")
					}
					return nil
				}
			}
			p.i++
		}
		return p.syntaxErr("unexpected end of body")
	default:
		for p.i < len(p.s) {
			c := p.s[p.i]
			if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
				break
			}
			p.i++
		}
		if !json.Valid(p.s[start:p.i]) {
			p.i = start
			return p.syntaxErr("invalid JSON value")
		}
		return nil
	}
}

// pathSeg is one step of a JSON path. It holds no pointers (the parser
// pushes and pops one per namespace and audience; pointers would cost GC
// write barriers): a key is a span of the body, an unescaped copy in
// parser.escKeys, or one of pinlist's own names.
type pathSeg struct {
	kind uint8
	a, b int32 // segKey: body[a:b]; segEscaped: escKeys[a]; segName: pathNames[a]; segIndex: a
}

const (
	segIndex uint8 = iota
	segKey
	segEscaped
	segName
)

// pathNames are the keys pinlist itself names in paths.
var pathNames = [...]string{"profiles", "identityMap", "segmentMembership", "id", "status", "lastQualificationTime"}

const (
	nameProfiles = iota
	nameIdentityMap
	nameSegmentMembership
	nameID
	nameStatus
	nameLastQualificationTime
)

// span is where a key is in the body; a < 0 when the key had escapes (it is
// then only in parser.strbuf).
type span struct{ a, b int32 }

func nameSeg(n int) pathSeg  { return pathSeg{kind: segName, a: int32(n)} }
func indexSeg(i int) pathSeg { return pathSeg{kind: segIndex, a: int32(i)} }

// push appends the key at sp (key is its unescaped text) to the path.
func (p *parser) push(key []byte, sp span) {
	if sp.a >= 0 {
		p.path = append(p.path, pathSeg{kind: segKey, a: sp.a, b: sp.b})
		return
	}
	p.escKeys = append(p.escKeys, bytes.Clone(key))
	p.path = append(p.path, pathSeg{kind: segEscaped, a: int32(len(p.escKeys) - 1)})
}
func (p *parser) pushName(n int)  { p.path = append(p.path, nameSeg(n)) }
func (p *parser) pushIndex(i int) { p.path = append(p.path, indexSeg(i)) }
func (p *parser) pop()            { p.path = p.path[:len(p.path)-1] }

// maxPathKey bounds how much of one key a path shows.
const maxPathKey = 64

// renderPath renders a JSON path such as $.profiles[3].identityMap.email[0].id.
// Keys that are not plain words are quoted (["a b"]); a key that contains '@'
// could be an email address used as a key and is shown as [?] instead.
func (p *parser) renderPath(segs []pathSeg, extra ...pathSeg) string {
	var b strings.Builder
	b.WriteByte('$')
	for _, seg := range append(segs[:len(segs):len(segs)], extra...) {
		var key string
		switch seg.kind {
		case segIndex:
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(int(seg.a)))
			b.WriteByte(']')
			continue
		case segKey:
			key = string(p.s[seg.a:seg.b])
		case segEscaped:
			key = string(p.escKeys[seg.a])
		case segName:
			key = pathNames[seg.a]
		}
		switch {
		case strings.IndexByte(key, '@') >= 0:
			b.WriteString("[?]")
		case plainKey(key):
			b.WriteByte('.')
			b.WriteString(key)
		default:
			if len(key) > maxPathKey {
				key = key[:maxPathKey] + "…"
			}
			b.WriteByte('[')
			b.WriteString(strconv.Quote(key))
			b.WriteByte(']')
		}
	}
	return b.String()
}

// plainKey reports whether a key can be written after a dot in a path.
func plainKey(k string) bool {
	if len(k) == 0 || len(k) > maxPathKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == ':') {
			return false
		}
	}
	return true
}
