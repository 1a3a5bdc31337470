package ledger

import (
	"fmt"

	"github.com/pinlist/pinlist/internal/audience"
)

// Outcome is what one change did to its row.
type Outcome uint8

const (
	// Stale: the change was not newer than the row; the row is unchanged.
	Stale Outcome = iota
	// NoOp: newer, but Want stays as it was; only Precedence advances, so a
	// later-arriving older change cannot flip the row.
	NoOp
	// Flip: Want changed and differs from Sent: the row is pending.
	Flip
	// Revert: Want changed back to Sent before the flip was sent: the row
	// is no longer pending.
	Revert
)

func (o Outcome) String() string {
	switch o {
	case Stale:
		return "stale"
	case NoOp:
		return "no-op"
	case Flip:
		return "flip"
	case Revert:
		return "revert"
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// Decision is what Decide makes of one change.
type Decision struct {
	Outcome Outcome
	// Row is the row after the change (the row as it was when Stale).
	Row Row
	// Members is the change of the list's member count: -1, 0 or +1.
	Members int64
}

// Pending reports whether a row waits for Pinterest: Want differs from
// what Pinterest was last sent. A row that does not exist is not pending.
func (r Row) Pending() bool { return r.Precedence != "" && r.Want != r.Sent }

// absentRow is the row a change to a row that does not exist is decided
// against (Decide's cur). Nothing is known of it (Sent Unknown): a list may
// hold people from before the ledger, so its first exit is sent. But a list
// pinlist created itself (owned, see Owning) holds nobody pinlist did not
// send, and everybody pinlist sent has a row: there the row is known to be
// out (Sent Out), so a join and exit before any flush send nothing.
func absentRow(list List, hash string, owned bool) Row {
	r := Row{List: list, Hash: hash}
	if owned {
		r.Sent = Out
	}
	return r
}

// PendingOp is the op that brings Pinterest to the row's Want.
func (r Row) PendingOp() audience.Op { return opFor(r.Want) }

// Decide is the ledger's rules, the one place both stores take them from.
// cur is the row as stored; a row that does not exist is passed as its
// absentRow (Precedence "", Want Unknown).
//
//   - The change applies only if its precedence is greater than the row's
//     (audience.Change.Precedence, compared as strings); equal precedence is
//     a duplicate: Stale.
//   - An applied change that leaves Want as it was is a NoOp, but the row's
//     Precedence advances.
//   - An applied change that changes Want is a Flip when the new Want
//     differs from Sent (the row is pending), else a Revert.
//   - Members moves by one when Want enters or leaves In.
//
// c must be valid (see validate): Op is OpAdd or OpRemove.
func Decide(cur Row, c audience.Change) Decision {
	return decide(cur, c.Op, c.Precedence())
}

func decide(cur Row, op audience.Op, p string) Decision {
	if p <= cur.Precedence {
		return Decision{Outcome: Stale, Row: cur}
	}
	next := cur
	next.Want = stateFor(op)
	next.Precedence = p
	d := Decision{Row: next}
	switch {
	case next.Want == cur.Want:
		d.Outcome = NoOp
	case next.Want != cur.Sent:
		d.Outcome = Flip
	default:
		d.Outcome = Revert
	}
	switch {
	case cur.Want != In && next.Want == In:
		d.Members = 1
	case cur.Want == In && next.Want != In:
		d.Members = -1
	}
	return d
}

// count adds one outcome to r.
func (r *Result) count(o Outcome) {
	switch o {
	case Stale:
		r.Stale++
	case NoOp:
		r.NoOps++
	case Flip:
		r.Flipped++
	case Revert:
		r.Reverted++
	}
}

// stateFor is the state op brings a row to.
func stateFor(op audience.Op) State {
	if op == audience.OpAdd {
		return In
	}
	return Out
}

// otherState is the state op takes rows out of: Out for ADD, In for
// REMOVE.
func otherState(op audience.Op) State {
	if op == audience.OpAdd {
		return Out
	}
	return In
}

// opFor is the op that brings Pinterest to state s (REMOVE for anything
// but In).
func opFor(s State) audience.Op {
	if s == In {
		return audience.OpAdd
	}
	return audience.OpRemove
}

// item is one valid input change with its row's identity and precedence.
type item struct {
	list List
	hash string
	op   audience.Op
	p    string
	// until is an erasure's guard expiry (Unix seconds; DynamoDB only),
	// else 0.
	until int64
	// owned: the list has an owner (see Owning; DynamoDB only: set by
	// applyItems from the list items).
	owned bool
}

// rowKey identifies a row within one call.
type rowKey struct {
	list string
	hash string
}

// prepare validates changes and coalesces them per row: of several changes
// to the same row only the one with the greatest precedence is kept (the
// others could never apply after it) and counted as stale. The survivors
// keep the order of their rows' first appearance.
func prepare(changes []audience.Change) ([]item, int, error) {
	out := make([]item, 0, len(changes))
	at := make(map[rowKey]int, len(changes))
	stale := 0
	for i, c := range changes {
		if err := validate(c); err != nil {
			return nil, 0, fmt.Errorf("change %d: %w", i, err)
		}
		ch := item{
			list: List{Audience: c.Audience, Type: c.List},
			hash: c.Hash,
			op:   c.Op,
			p:    c.Precedence(),
		}
		k := rowKey{list: ch.list.Key(), hash: ch.hash}
		j, seen := at[k]
		if !seen {
			at[k] = len(out)
			out = append(out, ch)
			continue
		}
		stale++
		if ch.p > out[j].p {
			out[j] = ch
		}
	}
	return out, stale, nil
}

// validate checks what the stores rely on: a SHA-256 hash in lowercase hex
// (its first digits pick shards), a known op, a named list.
func validate(c audience.Change) error {
	if !isHash(c.Hash) {
		return fmt.Errorf("identifier hash is not 64 lowercase hex digits (length %d)", len(c.Hash))
	}
	if c.Op != audience.OpAdd && c.Op != audience.OpRemove {
		return fmt.Errorf("op %q is neither %s nor %s", c.Op, audience.OpAdd, audience.OpRemove)
	}
	if c.Audience.Namespace == "" || c.Audience.ID == "" || c.List == "" {
		return fmt.Errorf("audience %q or list type %q is empty", c.Audience.Key(), c.List)
	}
	return nil
}

// isHash reports whether s is 64 lowercase hex digits.
func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if (b < '0' || b > '9') && (b < 'a' || b > 'f') {
			return false
		}
	}
	return true
}

// checkOp validates the op argument of Pending and MarkSent.
func checkOp(op audience.Op) error {
	if op != audience.OpAdd && op != audience.OpRemove {
		return fmt.Errorf("op %q is neither %s nor %s", op, audience.OpAdd, audience.OpRemove)
	}
	return nil
}
