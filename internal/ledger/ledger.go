// Package ledger is pinlist's membership ledger: per (audience, list type,
// SHA-256 identifier) the desired state (in or out), the precedence of the
// change that set it (audience.Change.Precedence) and what Pinterest was last
// sent. It orders changes across requests, drops changes that flip nothing,
// keeps every flip pending until Pinterest has it (so calls can be filled
// per list across requests) and knows every list's exact size. The rules live
// here, once (Decide); the SQLite (local) and DynamoDB (AWS) stores both run
// them and are tested against the same table.
//
// Beyond Store: SQLite.ApplyTx applies inside the caller's transaction (the
// local queue deletes what it applied in the same one) and
// SQLite.ResetSent forgets what Pinterest was sent (the built-in simulator
// starts empty); Dynamo's table is described by DynamoTableInput and its
// Streams filter by DynamoStreamFilter. Both stores also implement Keeper
// (promises.go): erasure with a guard against late joins, a per-list reset
// (repair, resync) and the retirement of an audience's lists.
package ledger

import (
	"context"
	"time"

	"github.com/pinlist/pinlist/internal/audience"
)

// State is a row's membership state.
type State uint8

const (
	// Unknown: the ledger has never been told (a row that does not exist) or
	// never sent anything. A list may hold people from before the ledger, so
	// an unknown row is not "out": its first exit is sent.
	Unknown State = iota
	In
	Out
)

// List names one Pinterest customer list: an audience and a list type.
type List struct {
	Audience audience.Ref
	Type     audience.ListType
}

// Key is the list's stable string key ("ns:id/TYPE").
func (l List) Key() string { return l.Audience.Key() + "/" + string(l.Type) }

// Row is one ledger row.
type Row struct {
	List List
	Hash string
	// Want is the desired state (In or Out); Precedence is that of the
	// change that set it (audience.Precedence).
	Want       State
	Precedence string
	// Sent is what Pinterest was last sent successfully for this row
	// (Unknown when nothing was). The row is pending while Want != Sent.
	Sent State
}

// Result counts what Apply did with its changes.
type Result struct {
	// Flipped changes set a new desired state that differs from what
	// Pinterest was last sent: they become pending.
	Flipped int
	// NoOps were newer than the row but left its state as it was (their
	// precedence was still recorded).
	NoOps int
	// Reverted changes set the desired state back to what Pinterest was
	// last sent before it was sent otherwise (In sent, then Out, then In
	// again): the row is no longer pending.
	Reverted int
	// Stale were not newer than the row (or than another change to the same
	// row in the same call), or were for a retired list: dropped.
	Stale int
}

// Pending is one row waiting for Pinterest: its hash, the op that brings
// Pinterest to the desired state, and the precedence it was read with.
type Pending struct {
	Hash       string
	Op         audience.Op
	Precedence string
}

// Store is a ledger backend. Implementations are safe for concurrent use
// and idempotent under retries: applying the same changes twice, or marking
// the same rows sent twice, ends in the same rows and counts.
type Store interface {
	// Apply records changes (any order, duplicates allowed) under the
	// rules: a change applies only if its precedence is greater than the
	// row's; an applied change that leaves Want equal to Sent is not
	// pending; member counts change only on In<->not-In transitions of Want.
	Apply(ctx context.Context, changes []audience.Change) (Result, error)
	// PendingLists lists the lists with pending rows.
	PendingLists(ctx context.Context) ([]List, error)
	// Pending returns up to limit pending rows of list for op (oldest
	// precedence first is not required; any order is fine).
	Pending(ctx context.Context, list List, op audience.Op, limit int) ([]Pending, error)
	// MarkSent records that Pinterest now has rows in the state op brings
	// them to (Sent := that state), whatever changed since they were read:
	// a row whose desired state moved on meanwhile (an exit that came while
	// its join was sent, or a join back while its exit was sent) stays or
	// becomes pending, so its final state is sent next. Callers send one
	// list at a time (a per-list lock or lease), so Sent is what Pinterest
	// has.
	MarkSent(ctx context.Context, list List, op audience.Op, rows []Pending) error
	// Sending records that rows of list are about to be sent as op: from
	// then on Pinterest may have them in op's state, whatever the call
	// answers, so a row whose Sent is the other state becomes Unknown until
	// MarkSent (and pending, should its Want be that other state by now).
	// Without it, a change after a call whose answer was lost (an error, a
	// crash before MarkSent) would be taken for a revert to what was last
	// sent: after a lost ADD, an exit would find Sent Out and the person
	// would stay in the list; after a lost REMOVE, a join back would find
	// Sent In and the person would stay out of it.
	Sending(ctx context.Context, list List, op audience.Op, rows []Pending) error
	// Members counts the rows whose Want is In, per list (every list the
	// ledger has seen, also those down to zero).
	Members(ctx context.Context) (map[List]int64, error)
	// Get reads one row; ok is false when the ledger has none (the row is
	// Unknown). For tests and repairs, not for the hot path.
	Get(ctx context.Context, list List, hash string) (row Row, ok bool, err error)
}

// Applying is a store whose Apply writes a list's rows one by one, so that
// a flush can find a list half written (DynamoDB, where one apply
// invocation writes for seconds, for minutes on moto): each Apply marks the
// lists it writes until it has written them, and a flush keeps a list's
// partial calls pending while a mark is live (HoldPartial), so a batch
// goes out in full calls rather than in as many pieces as flushes came by
// while it was written. The end of an Apply wakes a flush of each list
// where a row flipped (DynamoDB: a stream record of the list item).
// SQLite applies a batch in one transaction, which no flush sees half
// done: it does not implement Applying.
type Applying interface {
	// HoldPartial reports whether a flush should keep list's partial calls
	// pending now: yes while an Apply is writing the list, but for no
	// longer than max from the first flush it held (applies that keep
	// overlapping must not starve a list). Answering no ends the hold.
	HoldPartial(ctx context.Context, list List, max time.Duration) (bool, error)
}

// Owning is what a store knows of the Pinterest lists pinlist created
// itself. Such a list (owned: its ID recorded with Own) holds nobody pinlist
// did not send, so a row it does not have yet starts out (absentRow): a
// person who joins and leaves before a flush costs no call. That holds
// because every ADD sent to the list is on its rows before it leaves
// (Store.Sending).
//
// Both stores implement it: SQLite on its lists table, DynamoDB on the list
// items (Apply reads its lists' owners once per call, returned by the write
// that marks the lists as being written, and again by the write that ends
// the mark, to catch a Disown in between: see Applying).
type Owning interface {
	// Own records that pinlist created list on Pinterest as the list with
	// ID id (and holds every member it sends there in a row).
	Own(ctx context.Context, list List, id string) error
	// Owner returns the ID recorded by Own ("" when none).
	Owner(ctx context.Context, list List) (string, error)
	// Disown forgets list's owner and what Pinterest was sent for its rows
	// (ResetList to Unknown; SQLite in one transaction, DynamoDB the owner
	// first): the list on Pinterest is not the one pinlist created, so it
	// may hold anybody. It returns how many rows are pending now.
	Disown(ctx context.Context, list List) (int64, error)
}
