package audience

import "time"

// ListType is the Pinterest customer list type a hashed identifier belongs to.
// The values are Pinterest's UserListType enum values.
type ListType string

// The list types pinlist manages, one Pinterest customer list per audience each.
const (
	ListEmail ListType = "EMAIL"
	ListMAID  ListType = "MAID"
	ListIDFA  ListType = "IDFA"
)

// ListTypes is every list type in a stable order.
var ListTypes = []ListType{ListEmail, ListMAID, ListIDFA}

// Op is what a change does to a list; the values are Pinterest's
// UserListOperationType enum values.
type Op string

const (
	OpAdd    Op = "ADD"
	OpRemove Op = "REMOVE"
)

// Ref names an audience: the AEP audience namespace (e.g. "ups") and its ID.
type Ref struct {
	Namespace string `json:"ns"`
	ID        string `json:"id"`
}

// Key is the audience's stable string key, used as the SQS message group ID and
// in customer list names.
func (r Ref) Key() string { return r.Namespace + ":" + r.ID }

// Change is one membership change: identifier Hash (SHA-256, 64 lowercase hex)
// joins (OpAdd) or leaves (OpRemove) the Audience's list of type List.
// EventTime is the membership's lastQualificationTime (or the receive time when
// missing); Seq is the arrival order within one coalescing run (later arrivals
// have larger Seq) and breaks ties between equal event times.
type Change struct {
	Audience  Ref
	List      ListType
	Hash      string
	Op        Op
	EventTime time.Time
	Seq       uint64
}
