package queue

import (
	"database/sql"
	"sync"
	"time"
)

// Local is the queue behind `pinlist serve`: it keeps SQS FIFO's semantics,
// durably, in one SQLite file (maragu.dev/goqite's schema on
// modernc.org/sqlite, no cgo). It is safe for concurrent use. A deployed
// stack now uses a standard queue: the ledger orders changes by event time
// and needs neither FIFO's order nor its deduplication, so they are kept
// here only because they do no harm.
//
// # Semantics kept from SQS FIFO
//
//   - Message groups (MessageGroupId = audience): a group's messages are
//     delivered in send order, one batch at a time: while any message of the
//     group is hidden (received and not yet deleted, or released with a
//     delay) nothing else of the group is delivered. Different groups are
//     delivered in parallel.
//   - Visibility timeout: a received message is hidden for
//     LocalOptions.VisibilityTimeout and then delivered again with its
//     receive count incremented.
//   - Dead letters: a message delivered MaxReceive times is, on its next
//     receive, moved to the dead letters instead (maxReceiveCount), and the
//     group goes on with its next message. Redrive moves dead letters back to
//     the tail of their groups.
//   - Deduplication: a DedupID sent within the last five minutes is accepted
//     and not enqueued again, also after the first copy was deleted (moto
//     gets this wrong; SQS does not).
//   - Limits: at most MaxBatch messages per send, group and dedup
//     ids of up to 128 letters, digits or punctuation, bodies of up to 1 MiB
//     of the characters SQS accepts. A SendBatch is one transaction.
//
// # Departures from SQS, for the local runner
//
//   - A receive takes up to MaxLocalBatch messages of a group, not 10: the
//     Lambda event source's limit does not bind the local runner, and a
//     larger batch records more changes in one ledger transaction.
//     LocalOptions.BatchBytes bounds its bodies (default 6 MiB, Lambda's
//     payload limit).
//   - LocalOptions.BatchWindow holds a free group back until its head
//     message is that old or LocalOptions.BatchSize messages wait, so a
//     batch collects what arrives in the meantime (SQS FIFO event sources
//     have no batching window). The group's ready time in
//     pinlist_queue_groups includes the window; ReceiveGroupBatch checks it
//     against the messages before delivering, as it checks the lock. Zero
//     keeps SQS's behaviour.
//
// # Storage: goqite's table, one goqite queue per group
//
// Messages live in goqite's own table, created from goqite's schema
// (schema_sqlite.sql, copied from the module and embedded). A group's live
// messages are the goqite queue "group:<GroupID>", its dead letters the queue
// "dead:<GroupID>" (a dead-letter store beside the live messages that keeps
// the body, the receive count and the group with no copying). Send order is a
// sequence number from a one-row table stored as priority = -seq: goqite
// orders by priority descending, then by created, and created has only
// millisecond resolution, so it cannot order sends within one millisecond;
// the sequence can. A plain goqite.Queue named "group:<GroupID>" therefore
// receives a group's messages in the same order (a test checks it).
//
// goqite's Go API is not used to receive: its Receive takes one message of
// one named queue with the wall clock, and knows nothing of groups, batches,
// locking or dead letters. Local issues its own statements against goqite's
// table instead, with an injectable clock, each operation in one immediate
// transaction. Beside goqite's table it keeps (goqite_schema.go):
//
//   - an index on goqite(queue, timeout). "Is any message of this group
//     hidden" is max(timeout) over the group, answered from that index alone.
//     goqite's rows put timeout after the body, so reading it from the table
//     would walk the overflow pages of every large body.
//   - pinlist_queue_groups(name, ready_at): the groups that have live
//     messages and when each may next be received from. It is a scheduling
//     hint kept in step in the same transactions; the truth is always the
//     messages' timeouts, which ReceiveGroupBatch checks before delivering.
//     Picking the group with the oldest ready_at serves groups round robin.
//   - pinlist_queue_dedup(id, expires): deduplication ids for five minutes;
//     Maintain forgets expired ones.
//
// The alternative, a table of our own instead of goqite's, would have made
// goqite a name only; one goqite queue per group keeps goqite's storage,
// indexes and tooling and needs only the small group list beside it.
//
// # Receipts
//
// A Received carries a Receipt ("<id>#<receive count>"), the handle for
// Delete and Release, as SQS has receipt handles: a handle from a delivery
// whose visibility timed out cannot delete or release the message once it has
// been delivered again.
//
// # Crashes and restarts
//
// Every state change is committed before the call returns (WAL,
// synchronous=NORMAL: a killed process loses nothing; an operating-system
// crash or power cut may lose the last commits). Nothing is held in memory: a
// group's lock is its messages' timeouts in the file. The receiving instance
// (LocalOptions.Consumer) holds an exclusive flock on "<path>.consumer.lock",
// which the kernel drops when the process dies, SIGKILL included. A new
// consumer that gets the lock knows no live process has anything in flight,
// so OpenLocal makes every hidden message visible at once: a kill and restart
// redelivers in-flight batches immediately (with their receive counts kept)
// instead of after the visibility timeout. Another instance on the same file
// (pinlist status) opens without Consumer and takes over nothing.
//
// # Disk
//
// SQLite does not shrink its file, and a WAL grows while readers starve
// checkpoints. The database is created with auto_vacuum=INCREMENTAL, Local
// uses one connection (SQLite has one writer anyway), and Maintain, which the
// runner calls on a timer, runs an incremental vacuum and
// wal_checkpoint(TRUNCATE); Close checkpoints too.
type Local struct {
	path       string
	db         *sql.DB
	unlock     func() error
	consumer   bool
	vt         time.Duration
	maxReceive int
	batchSize  int
	batchBytes int
	window     time.Duration
	now        func() time.Time

	closeOnce sync.Once
	closeErr  error
}
