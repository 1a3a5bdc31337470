package audience

import "fmt"

// Limits bound one request; zero fields mean the documented defaults.
type Limits struct {
	MaxBodyBytes           int64 // default 10 MiB
	MaxProfiles            int   // per request, default 10_000
	MaxIdentitiesPerNS     int   // per profile per namespace key, default 100
	MaxAudiencesPerProfile int   // memberships per profile, default 1_000
	MaxFailures            int   // failures listed in the report (the counts are never capped), default 100
	MaxChanges             int   // changes per request (identities × memberships), default 1_000_000
}

// The defaults of Limits.
const (
	DefaultMaxBodyBytes           = 10 << 20
	DefaultMaxProfiles            = 10_000
	DefaultMaxIdentitiesPerNS     = 100
	DefaultMaxAudiencesPerProfile = 1_000
	DefaultMaxFailures            = 100
	DefaultMaxChanges             = 1_000_000
)

// withDefaults fills zero (or negative) fields with the defaults.
func (l Limits) withDefaults() Limits {
	l.MaxBodyBytes = orDefault(l.MaxBodyBytes, DefaultMaxBodyBytes)
	l.MaxProfiles = orDefault(l.MaxProfiles, DefaultMaxProfiles)
	l.MaxIdentitiesPerNS = orDefault(l.MaxIdentitiesPerNS, DefaultMaxIdentitiesPerNS)
	l.MaxAudiencesPerProfile = orDefault(l.MaxAudiencesPerProfile, DefaultMaxAudiencesPerProfile)
	l.MaxFailures = orDefault(l.MaxFailures, DefaultMaxFailures)
	l.MaxChanges = orDefault(l.MaxChanges, DefaultMaxChanges)
	return l
}

func orDefault[T int | int64](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Kinds of RequestError.
const (
	ErrMalformedJSON     = "malformed_json"      // not JSON, or trailing data after it
	ErrWrongType         = "wrong_type"          // a value of the wrong JSON type where the shape is fixed
	ErrAmbiguousBody     = "ambiguous_body"      // an object with both "profiles" and a profile's fields
	ErrDuplicateKey      = "duplicate_key"       // a key twice in one object the parser reads
	ErrTooDeep           = "too_deep"            // objects and arrays nested deeper than encoding/json allows (10,000)
	ErrTooLarge          = "too_large"           // body over Limits.MaxBodyBytes
	ErrTooManyProfiles   = "too_many_profiles"   // over Limits.MaxProfiles
	ErrTooManyIdentities = "too_many_identities" // one namespace of one profile over Limits.MaxIdentitiesPerNS
	ErrTooManyAudiences  = "too_many_audiences"  // one profile over Limits.MaxAudiencesPerProfile
	ErrTooManyChanges    = "too_many_changes"    // the request over Limits.MaxChanges
)

// RequestError is a problem with the whole request: nothing of it is mapped.
// Path is a JSON path into the body ("$", "$.profiles[3].identityMap.email");
// Message never quotes the body.
type RequestError struct {
	Kind    string
	Path    string
	Message string
}

func (e *RequestError) Error() string {
	return fmt.Sprintf("%s at %s: %s", e.Kind, e.Path, e.Message)
}

// Reasons an identity is excluded (skipped on purpose; AEP's "identities excluded").
const (
	ExcludedUnsupportedNamespace = "unsupported_namespace"
	ExcludedOptedOut             = "opted_out"
)

// Reasons an identity or a membership failed (AEP's "identities failed").
const (
	FailInvalidEmail      = "invalid_email"      // email not a plausible address
	FailInvalidEmailHash  = "invalid_email_hash" // email_lc_sha256 not 64 hex characters
	FailInvalidMAID       = "invalid_maid"       // gaid not a canonical UUID
	FailInvalidIDFA       = "invalid_idfa"       // idfa not a canonical UUID
	FailInvalidIdentity   = "invalid_identity"   // an identity entry that is not {"id": "<string>"}
	FailInvalidMembership = "invalid_membership" // a membership that is not an object
	FailInvalidAudience   = "invalid_audience"   // an audience namespace or ID that cannot name a list
	FailInvalidStatus     = "invalid_status"     // status missing or not realized/existing/exited
	FailInvalidTimestamp  = "invalid_timestamp"  // lastQualificationTime not a supported timestamp
)

// Report counts what happened to one request, like AEP's dataflow run counters.
// It never holds an identifier, only JSON paths.
type Report struct {
	Profiles          int            `json:"profiles"`
	Activated         int            `json:"identitiesActivated"` // identities mapped to a list type
	Excluded          map[string]int `json:"excluded"`            // by reason: Excluded* constants
	Failed            map[string]int `json:"failed"`              // by reason: Fail* constants
	Failures          []Failure      `json:"failures"`            // the first Limits.MaxFailures failures
	FailuresTruncated bool           `json:"failuresTruncated,omitempty"`
}

// Failure is one failed identity or membership: why, and where in the body.
// It never holds the identifier value.
type Failure struct {
	Reason string `json:"reason"`
	Path   string `json:"path"`
}

func newReport() Report {
	return Report{Excluded: map[string]int{}, Failed: map[string]int{}, Failures: []Failure{}}
}
