package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/config"
)

// Erasure erases one identifier (GDPR art. 17) from every list of its type:
// its hash, its list type and the erasure's precedence
// (audience.Precedence of the erasure's time, an event time, op REMOVE).
type Erasure struct {
	Type       audience.ListType
	Hash       string
	Precedence string
}

// Erased is what Erase did: per row the outcome of a REMOVE at the
// erasure's precedence, and the lists where a row became pending (what a
// flush has to look at).
type Erased struct {
	Result
	Lists []List
}

// Keeper is what the ledger's promises need beyond Store: erasure,
// repair and resync of a list, and the retirement of an audience. Both
// stores implement it.
//
// Erasure: every list of the identifier's type that the ledger knows (it
// knows every list pinlist ever wrote to), retired lists aside, gets a
// REMOVE at the erasure's precedence, applied under Decide's rules: the
// row goes (or stays) out and is pending where Pinterest may still have
// the person. The erasure also leaves a guard per identifier (list type and
// hash, with the greatest erasure precedence), kept for the store's
// ErasureGuard (config.DefaultErasureGuard, PINLIST_ERASURE_GUARD) from the
// erasure; it costs one small item (SQLite: one row) per erased identifier
// for that time. While the guard is live, a change to a row that does not
// exist (a list the ledger first sees after the erasure, or a row deleted
// since) is decided by Decide against the virtual row {Want: Out,
// Precedence: the guard's, Sent: Out}: the erasure already removed the
// person from every list pinlist wrote to, and a list first seen later is
// new. So a change stamped at or before the erasure is stale in every list
// of the type, a later join flips (pending ADD), a later exit is a no-op.
// Rows that exist are decided as they are (they carry the erasure's
// REMOVE). When the guard runs out, it goes with the erased rows it stood
// over (out, sent and not taken over by a newer change), and the hash is
// gone from the store (SQLite: Purge; DynamoDB: the table's TTL); a change
// stamped before the erasure then applies again, as for any identifier
// the ledger does not know.
type Keeper interface {
	Erase(ctx context.Context, erasures []Erasure) (Erased, error)
	// ResetList forgets what Pinterest was sent for list's rows: Sent
	// becomes assume, so every row whose Want differs is pending again
	// (Out after a list was re-created empty; Unknown for a resync, which
	// re-sends every member and every known exit). It returns how many
	// rows are pending now.
	ResetList(ctx context.Context, list List, assume State) (int64, error)
	// Retire retires audience a: its lists (every list type) are
	// registered as retiring, and each of their rows that Pinterest may
	// have is pending REMOVE. Changes to a retired list are stale from
	// now on. It returns the audience's lists that the ledger knows.
	Retire(ctx context.Context, a audience.Ref) ([]List, error)
	// Retiring lists the retired lists not finished yet (FinishRetire).
	Retiring(ctx context.Context) ([]List, error)
	// Retired reports every retired list's key (finished or not): lists
	// never written to, created or adopted again.
	Retired(ctx context.Context) (map[string]bool, error)
	// FinishRetire drops list's rows and member count: Pinterest has the
	// removals. The list stays registered as retired.
	FinishRetire(ctx context.Context, list List) error
	// SentIn reports whether Pinterest was sent a member of list that is
	// still in (a row with Want and Sent In): the ledger expects the list
	// to exist on Pinterest.
	SentIn(ctx context.Context, list List) (bool, error)
	// PendingCount counts list's pending rows (resync progress).
	PendingCount(ctx context.Context, list List) (int64, error)
}

// guardRow is the virtual row an erasure guard at precedence p stands for
// in list (see Keeper): out at p, and Pinterest has it out.
func guardRow(list List, hash, p string) Row {
	return Row{List: list, Hash: hash, Want: Out, Precedence: p, Sent: Out}
}

// ErasurePrecedence is the precedence of an erasure made at t: that of a
// REMOVE stamped with t as its event time.
func ErasurePrecedence(t time.Time) string {
	return audience.Precedence(t, false, audience.OpRemove)
}

// guardOrDefault checks and defaults an ErasureGuard option.
func guardOrDefault(field string, d time.Duration) (time.Duration, error) {
	switch {
	case d < 0:
		return 0, fmt.Errorf("%s %v is negative", field, d)
	case d == 0:
		return config.DefaultErasureGuard, nil
	}
	return d, nil
}

// checkErasures validates erasures as validate does changes.
func checkErasures(erasures []Erasure) error {
	for i, e := range erasures {
		if !isHash(e.Hash) {
			return fmt.Errorf("erasure %d: identifier hash is not 64 lowercase hex digits (length %d)", i, len(e.Hash))
		}
		if e.Type == "" || len(e.Precedence) != audience.PrecedenceLen {
			return fmt.Errorf("erasure %d: list type %q or precedence %q is not valid", i, e.Type, e.Precedence)
		}
	}
	return nil
}
