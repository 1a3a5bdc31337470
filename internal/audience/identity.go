package audience

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"unicode/utf8"
)

// namespace is how an identityMap key is handled.
type namespace uint8

const (
	nsOther     namespace = iota // not a namespace pinlist maps: excluded
	nsEmail                      // plain email: normalised, then SHA-256
	nsEmailHash                  // email_lc_sha256: already hashed
	nsGAID                       // Google advertising ID → MAID
	nsIDFA                       // Apple advertising ID → IDFA
)

// classifyNamespace matches an identityMap key, ASCII case-insensitively
// (Email, email and EMAIL are one namespace). Unicode case folding is
// deliberately not used: "ſ" or the Kelvin sign must not turn into a namespace.
func classifyNamespace(key []byte) namespace {
	switch len(key) {
	case 4:
		if asciiEqualFold(key, "gaid") {
			return nsGAID
		}
		if asciiEqualFold(key, "idfa") {
			return nsIDFA
		}
	case 5:
		if asciiEqualFold(key, "email") {
			return nsEmail
		}
	case 15:
		if asciiEqualFold(key, "email_lc_sha256") {
			return nsEmailHash
		}
	}
	return nsOther
}

// asciiEqualFold reports whether b equals the lowercase ASCII word, ignoring
// ASCII case in b.
func asciiEqualFold(b []byte, word string) bool {
	if len(b) != len(word) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != word[i] {
			return false
		}
	}
	return true
}

// list is the index into recLists of the customer list type an identity
// of this namespace goes to (EMAIL, IDFA or MAID).
func (ns namespace) list() uint8 {
	switch ns {
	case nsIDFA:
		return 1
	case nsGAID:
		return 2
	}
	return 0
}

// failReason is the Report reason when an identifier of this namespace is malformed.
func (ns namespace) failReason() string {
	switch ns {
	case nsEmail:
		return FailInvalidEmail
	case nsEmailHash:
		return FailInvalidEmailHash
	case nsGAID:
		return FailInvalidMAID
	case nsIDFA:
		return FailInvalidIDFA
	}
	return FailInvalidIdentity
}

// outcome is what normalising one identifier gave.
type outcome uint8

const (
	idOK       outcome = iota // hashed
	idInvalid                 // malformed: a failure
	idOptedOut                // the all-zero advertising ID: excluded
)

// hasher normalises identifiers and hashes them; its buffers are reused so
// that mapping one identifier allocates nothing.
type hasher struct {
	norm []byte
}

// hashIdentity normalises id for namespace ns and, when it is valid, writes
// its SHA-256 to dst. The plain id is never kept: only the scratch buffer
// holds it until the next call.
func (h *hasher) hashIdentity(ns namespace, id []byte, dst *[32]byte) outcome {
	switch ns {
	case nsEmail:
		var ok bool
		h.norm, ok = normalizeEmail(h.norm[:0], id)
		if !ok {
			return idInvalid
		}
		*dst = sha256.Sum256(h.norm)
		return idOK
	case nsEmailHash:
		// Already hashed: 64 hex digits in either case; stored lowercased.
		id = trimASCIISpace(id)
		if len(id) != 64 {
			return idInvalid
		}
		if _, err := hex.Decode(dst[:], id); err != nil {
			return idInvalid
		}
		return idOK
	case nsGAID, nsIDFA:
		var u [36]byte
		allZero, ok := normalizeUUID(&u, id, ns == nsIDFA)
		if !ok {
			return idInvalid
		}
		if allZero {
			return idOptedOut
		}
		*dst = sha256.Sum256(u[:])
		return idOK
	}
	return idInvalid
}

// normalizeUUID checks that id is a UUID in its canonical 8-4-4-4-12 form
// (surrounding ASCII space allowed; braces, URN prefixes and the 32-digit form
// without dashes are rejected) and writes it to u in lower or upper case.
// allZero reports the all-zero ID that means the user opted out of tracking.
//
// It works on the 36 bytes as four 8-byte words and one 4-byte word: a byte
// is a hex digit when it falls in 0–9, or in a–f with the 0x20 bit set
// (which lowercases A–F and leaves digits and '-' alone). FuzzNormalizeUUID
// holds it to the byte-at-a-time reference.
func normalizeUUID(u *[36]byte, id []byte, upper bool) (allZero, ok bool) {
	id = trimASCIISpace(id)
	if len(id) != 36 {
		return false, false
	}
	in := (*[36]byte)(id)
	var bad, nonZero uint64
	for k := 0; k < 36; k += 8 {
		// The last word holds bytes 32–35 only.
		x, dash, valid := uint64(binary.LittleEndian.Uint32(in[32:])), uint64(0), uint64(0xffffffff)
		if k < 32 {
			x, dash, valid = binary.LittleEndian.Uint64(in[k:]), uuidDashes[k/8], ^uint64(0)
		}
		lower := x | 0x2020202020202020
		// Digits are tested as they are: 0x10–0x19 would pass as digits
		// with the 0x20 bit set.
		hexd := byteInRange(x, '0', '9') | byteInRange(lower, 'a', 'f')
		// Digits where dash is 0, dashes where it is 0xff; no high bit.
		bad |= ((hexd^0x8080808080808080)&^dash&0x8080808080808080 | (x^0x2d2d2d2d2d2d2d2d)&dash | x&0x8080808080808080) & valid
		nonZero |= (x ^ 0x3030303030303030) &^ dash & valid
		out := lower
		if upper {
			// Letters (a–f) have the 0x40 bit; clear their 0x20 bit.
			out = lower &^ (lower & 0x4040404040404040 >> 1)
		}
		if k < 32 {
			binary.LittleEndian.PutUint64(u[k:], out)
		} else {
			binary.LittleEndian.PutUint32(u[32:], uint32(out))
		}
	}
	return bad == 0 && nonZero == 0, bad == 0
}

// uuidDashes marks (0xff) the dash bytes of the first four 8-byte words of
// a canonical UUID: positions 8, 13, 18 and 23.
var uuidDashes = [4]uint64{0, 0xff | 0xff<<40, 0xff<<16 | 0xff<<56, 0}

// byteInRange sets the high bit of each byte of x that lies in [lo, hi];
// every byte of x must be below 0x80 for the result to be exact (callers
// reject high bytes on their own).
func byteInRange(x uint64, lo, hi byte) uint64 {
	const ones = 0x0101010101010101
	return (x + ones*uint64(0x80-lo)) &^ (x + ones*uint64(0x7f-hi)) & 0x8080808080808080
}

// Email plausibility bounds (RFC 5321 path limits).
const (
	maxEmailLen    = 254
	maxEmailLocal  = 64
	maxEmailDomain = 253
)

// emailClass sorts the bytes of an address: 0 for bytes that may appear as
// they are, and the classes below.
var emailClass = func() (t [256]byte) {
	for c := 0; c <= ' '; c++ {
		t[c] = emailBad
	}
	t[0x7f] = emailBad
	for _, c := range []byte("\"(),:;<>[\\]") {
		t[c] = emailBad
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = emailUpper
	}
	t['@'] = emailAt
	for c := 0x80; c < 256; c++ {
		t[c] = emailHigh
	}
	return t
}()

// Classes of emailClass.
const (
	emailBad   = 1 // controls, space, DEL, RFC 5322 specials other than '@' and '.'
	emailUpper = 2 // A–Z
	emailAt    = 3 // '@'
	emailHigh  = 4 // non-ASCII
)

// emailFlags is emailClass as bits, so that one pass can OR them together.
var emailFlags = func() (t [256]byte) {
	for c := range t {
		if k := emailClass[c]; k != 0 {
			t[c] = 1 << (k - 1)
		}
	}
	return t
}()

// Bits of emailFlags.
const (
	emailFlagBad   = 1 << (emailBad - 1)
	emailFlagUpper = 1 << (emailUpper - 1)
	emailFlagHigh  = 1 << (emailHigh - 1)
)

// normalizeEmail trims surrounding white space, lowercases and checks that the
// result is a plausible address: one '@' after a local part of 1–64 bytes, a
// domain of at most 253 bytes with a dot, no empty label and no dot at either
// end, none of the emailBad bytes, and at most 254 bytes in all. Non-ASCII
// addresses must be valid UTF-8 and are trimmed and lowercased by Unicode
// rules. It appends the normalised address to dst.
//
// An ASCII address is checked in one branch-free pass that ORs the bytes'
// classes; anything else goes to normalizeEmailBytewise, which decides the
// same for ASCII (FuzzNormalizeEmail holds the two to that).
func normalizeEmail(dst, raw []byte) ([]byte, bool) {
	raw = trimASCIISpace(raw)
	flags := orEmailFlags(raw)
	switch {
	case flags&emailFlagHigh != 0:
		return normalizeEmailBytewise(dst, raw)
	case flags&emailFlagBad != 0:
		return dst, false
	}
	at := bytes.IndexByte(raw, '@')
	if at < 0 || bytes.IndexByte(raw[at+1:], '@') >= 0 {
		return dst, false
	}
	start := len(dst)
	dst = append(dst, raw...)
	e := dst[start:]
	if flags&emailFlagUpper != 0 {
		for i, c := range e {
			if 'A' <= c && c <= 'Z' {
				e[i] = c + 'a' - 'A'
			}
		}
	}
	return dst, plausibleParts(e, at)
}

// orEmailFlags ORs the emailFlags of every byte of b, eight bytes a step
// (one load, then the table) in two chains that do not wait on each other.
func orEmailFlags(b []byte) byte {
	var f0, f1 byte
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		f0 |= emailFlags[byte(x)] | emailFlags[byte(x>>8)] | emailFlags[byte(x>>16)] | emailFlags[byte(x>>24)]
		f1 |= emailFlags[byte(x>>32)] | emailFlags[byte(x>>40)] | emailFlags[byte(x>>48)] | emailFlags[byte(x>>56)]
	}
	for ; i < len(b); i++ {
		f0 |= emailFlags[b[i]]
	}
	return f0 | f1
}

// normalizeEmailBytewise is normalizeEmail a byte at a time, with the
// Unicode path for non-ASCII addresses.
func normalizeEmailBytewise(dst, raw []byte) ([]byte, bool) {
	raw = trimASCIISpace(raw)
	start := len(dst)
	dst = slices.Grow(dst, len(raw))[:start+len(raw)]
	e := dst[start:]
	at := -1
	for i, c := range raw {
		switch emailClass[c] {
		case 0:
		case emailUpper:
			c += 'a' - 'A'
		case emailAt:
			if at >= 0 {
				return dst, false
			}
			at = i
		case emailHigh:
			if !utf8.Valid(raw) {
				return dst, false
			}
			dst = append(dst[:start], bytes.ToLower(bytes.TrimSpace(raw))...)
			return dst, plausibleEmail(dst[start:])
		default:
			return dst, false
		}
		e[i] = c
	}
	return dst, plausibleParts(e, at)
}

// plausibleEmail is normalizeEmail's check for an address already lowercased.
func plausibleEmail(e []byte) bool {
	at := -1
	for i, c := range e {
		switch emailClass[c] {
		case emailBad:
			return false
		case emailAt:
			if at >= 0 {
				return false
			}
			at = i
		}
	}
	return plausibleParts(e, at)
}

// plausibleParts checks the lengths and the domain of an address whose only
// '@' is at index at (-1: none).
func plausibleParts(e []byte, at int) bool {
	if at < 1 || at > maxEmailLocal || len(e) > maxEmailLen {
		return false
	}
	domain := e[at+1:]
	if len(domain) < 3 || len(domain) > maxEmailDomain || domain[0] == '.' || domain[len(domain)-1] == '.' {
		return false
	}
	dot := false
	for i := 1; i < len(domain); i++ {
		if domain[i] == '.' {
			if domain[i-1] == '.' {
				return false
			}
			dot = true
		}
	}
	return dot
}

func trimASCIISpace(b []byte) []byte {
	for len(b) > 0 && isASCIISpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isASCIISpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isASCIISpace(c byte) bool {
	return c == ' ' || ('\t' <= c && c <= '\r')
}

// IsHash reports whether s is a SHA-256 hash as pinlist stores it:
// exactly 64 lowercase hexadecimal characters.
func IsHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	// Branch-free: hex digits are random, so a test per byte mispredicts.
	var bad byte
	for i := 0; i < 64; i++ {
		bad |= notLowerHex[s[i]]
	}
	return bad == 0
}

// notLowerHex is 1 for every byte but 0–9 and a–f.
var notLowerHex = func() (t [256]byte) {
	for c := range t {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			t[c] = 1
		}
	}
	return t
}()
