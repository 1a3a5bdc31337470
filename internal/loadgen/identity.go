package loadgen

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode/utf8"
)

// List types, as Pinterest names them.
const (
	ListEmail = "EMAIL"
	ListMAID  = "MAID"
	ListIDFA  = "IDFA"
)

// Identity namespaces pinlist maps (matched without regard to ASCII case).
const (
	NSEmail     = "email"
	NSEmailHash = "email_lc_sha256"
	NSGAID      = "gaid"
	NSIDFA      = "idfa"
)

// Reasons, as the 202 answer's "excluded" and "failed" maps name them.
const (
	ExcludedUnsupportedNamespace = "unsupported_namespace"
	ExcludedOptedOut             = "opted_out"
	FailedInvalidEmail           = "invalid_email"
	FailedInvalidEmailHash       = "invalid_email_hash"
	FailedInvalidMAID            = "invalid_maid"
	FailedInvalidIDFA            = "invalid_idfa"
	FailedInvalidIdentity        = "invalid_identity"
	FailedInvalidMembership      = "invalid_membership"
	FailedInvalidAudience        = "invalid_audience"
	FailedInvalidStatus          = "invalid_status"
	FailedInvalidTimestamp       = "invalid_timestamp"
)

// mapped is what the rules make of one identity entry: the list type and the
// hash, or the reason it was excluded or failed.
type mapped struct {
	list     string // "" when not mapped
	hash     [32]byte
	excluded string
	failed   string
}

// mapIdentity applies ARCHITECTURE.md's identity rules to one identifier of
// namespace ns. It is written from the rules, not from internal/audience.
func mapIdentity(ns, id string) mapped {
	switch asciiLower(ns) {
	case NSEmail:
		e, ok := normalEmail(id)
		if !ok {
			return mapped{failed: FailedInvalidEmail}
		}
		return mapped{list: ListEmail, hash: sha256.Sum256([]byte(e))}
	case NSEmailHash:
		id = strings.TrimSpace(id)
		var m mapped
		if len(id) != 64 {
			return mapped{failed: FailedInvalidEmailHash}
		}
		if _, err := hex.Decode(m.hash[:], []byte(id)); err != nil {
			return mapped{failed: FailedInvalidEmailHash}
		}
		m.list = ListEmail
		return m
	case NSGAID, NSIDFA:
		list, reason := ListMAID, FailedInvalidMAID
		if asciiLower(ns) == NSIDFA {
			list, reason = ListIDFA, FailedInvalidIDFA
		}
		u, ok := canonicalUUID(id)
		if !ok {
			return mapped{failed: reason}
		}
		if u == "00000000-0000-0000-0000-000000000000" {
			return mapped{excluded: ExcludedOptedOut}
		}
		if list == ListIDFA {
			u = strings.ToUpper(u)
		}
		return mapped{list: list, hash: sha256.Sum256([]byte(u))}
	}
	return mapped{excluded: ExcludedUnsupportedNamespace}
}

// mappedNamespace reports whether identities of namespace ns are mapped to
// a list type (the others are excluded).
func mappedNamespace(ns string) bool {
	switch asciiLower(ns) {
	case NSEmail, NSEmailHash, NSGAID, NSIDFA:
		return true
	}
	return false
}

// asciiLower lowercases ASCII letters only: namespaces are matched without
// regard to ASCII case, and no other folding (the Kelvin sign is not a k).
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

// canonicalUUID checks the 8-4-4-4-12 hexadecimal form (surrounding white
// space allowed) and returns it lowercased.
func canonicalUUID(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if len(s) != 36 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", rune(c)) {
				return "", false
			}
		}
	}
	return strings.ToLower(s), true
}

// normalEmail trims and lowercases an address and checks that it is
// plausible: one '@', a local part of 1 to 64 bytes, a domain with a dot
// and no empty label, no white space, control character or RFC 5322
// special, at most 254 bytes.
func normalEmail(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) {
		return "", false
	}
	s = strings.ToLower(s)
	if len(s) > 254 || strings.ContainsFunc(s, func(r rune) bool {
		return r <= ' ' || r == 0x7f || strings.ContainsRune("\"(),:;<>[\\]", r)
	}) {
		return "", false
	}
	local, domain, ok := strings.Cut(s, "@")
	if !ok || strings.Contains(domain, "@") || len(local) < 1 || len(local) > 64 || len(domain) < 3 {
		return "", false
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return "", false
	}
	for _, l := range labels {
		if l == "" {
			return "", false
		}
	}
	return s, true
}

// validAudience reports whether an audience namespace and ID can name a
// customer list (ARCHITECTURE.md: the list name holds the audience key):
// printable ASCII without spaces, no ':' in the namespace, a key of at most
// 128 bytes.
func validAudience(ns, id string) bool {
	if ns == "" || id == "" || len(ns)+1+len(id) > 128 || strings.Contains(ns, ":") {
		return false
	}
	unprintable := func(r rune) bool { return r <= ' ' || r >= 0x7f }
	return !strings.ContainsFunc(ns, unprintable) && !strings.ContainsFunc(id, unprintable)
}

// HashEmail is the hash the rules give a plain email address (for tests
// and markers); ok is false when the address is not plausible.
func HashEmail(addr string) (hash string, ok bool) {
	m := mapIdentity(NSEmail, addr)
	if m.list == "" {
		return "", false
	}
	return hex.EncodeToString(m.hash[:]), true
}

// HashAdvertisingID is the hash the rules give a GAID (namespace gaid) or an
// IDFA (namespace idfa); ok is false when id is not a UUID or is the
// opt-out ID.
func HashAdvertisingID(ns, id string) (hash string, ok bool) {
	m := mapIdentity(ns, id)
	if m.list == "" {
		return "", false
	}
	return hex.EncodeToString(m.hash[:]), true
}
