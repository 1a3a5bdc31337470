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
// the person, and a join stamped before the erasure that arrives later is
// stale. The row is the guard; it is kept for the store's ErasureGuard
// (config.DefaultErasureGuard, PINLIST_ERASURE_GUARD) once Pinterest has
// the removal, then deleted, and with it the hash (SQLite: Purge; DynamoDB:
// the table's TTL). The guard is per list: a list the ledger first sees
// after the erasure does not drop a join stamped before it.
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
