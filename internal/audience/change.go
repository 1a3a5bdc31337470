package audience

import (
	"strconv"
	"time"
)

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
// EventTime is the membership's lastQualificationTime, or the receive time
// when it had none (then Received is true); Seq is the arrival order within
// one coalescing run (later arrivals have larger Seq).
type Change struct {
	Audience  Ref
	List      ListType
	Hash      string
	Op        Op
	EventTime time.Time
	Seq       uint64
	Received  bool
}

// Precedence is the one order between changes to the same (audience, list
// type, identifier), shared by the coalescer and the membership ledger: of
// two changes, the one with the greater Precedence (compared as strings, so
// a database can compare it too) decides the state. A later event time wins;
// on equal times the exit (REMOVE) wins, so the outcome never depends on
// arrival order; a change whose time is only its receive time never outranks
// one that carried an event time. Equal precedences mean the same state.
func (c Change) Precedence() string { return Precedence(c.EventTime, c.Received, c.Op) }

// PrecedenceLen is the length of every Precedence string.
const PrecedenceLen = 22

// Precedence is Change.Precedence for its parts: one digit for whether the
// time is an event time, the Unix nanoseconds shifted to unsigned in 20
// digits, one digit for the op (REMOVE above ADD).
func Precedence(t time.Time, received bool, op Op) string {
	var b [PrecedenceLen]byte
	b[0] = '1'
	if received {
		b[0] = '0'
	}
	u := uint64(t.UnixNano()) ^ 1<<63 // order-preserving: signed to unsigned
	digits := strconv.AppendUint(b[1:1:21], u, 10)
	n := len(digits)
	copy(b[21-n:21], digits)
	for i := 1; i < 21-n; i++ {
		b[i] = '0'
	}
	b[21] = '0'
	if op == OpRemove {
		b[21] = '1'
	}
	return string(b[:])
}
