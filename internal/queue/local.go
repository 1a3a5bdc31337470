package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go
)

// Defaults and limits of the local queue. The limits are those of SQS FIFO, so
// what passes here also passes in production.
const (
	DefaultLocalVisibilityTimeout = 30 * time.Second
	DefaultLocalMaxReceive        = 5

	// MaxLocalBatch is the most messages one ReceiveGroupBatch delivers. It
	// is above SQS's MaxBatch on purpose: the local runner is not bound by
	// the Lambda event source, and a larger batch of one audience coalesces
	// into fewer Pinterest calls. Sends stay at MaxBatch per call.
	MaxLocalBatch = 1000

	// DefaultLocalBatchBytes bounds the bodies of one receive: the payload
	// limit of a synchronous Lambda invocation (6 MB), so a local batch is
	// never one a Lambda could not take, and a worker holds a bounded amount
	// however large the messages are (up to 1 MiB each).
	DefaultLocalBatchBytes = 6 << 20

	// localReadPage is how many rows a receive reads at a time.
	localReadPage = 16

	localDedupWindow = 5 * time.Minute // SQS FIFO deduplication interval
	localMaxBody     = 1 << 20         // SQS maximum message size
	localMaxID       = 128             // SQS limit for MessageGroupId and MessageDeduplicationId

	// localVacuumPages bounds the pages one Maintain returns to the file
	// system (64 MiB of 4 KiB pages), so it never holds the write lock long;
	// a larger backlog shrinks over the next calls.
	localVacuumPages = 16384

	// goqite queue names: a group's live messages and its dead letters.
	localLivePrefix = "group:"
	localDeadPrefix = "dead:"

	// localStampLayout is goqite's timestamp format (UTC, milliseconds, fixed
	// width), so timestamps compare correctly as text.
	localStampLayout = "2006-01-02T15:04:05.000Z07:00"
)

var (
	// ErrLocalConsumerLocked is returned by OpenLocal with Consumer set while
	// another Local (in this or another process) consumes the same file.
	ErrLocalConsumerLocked = errors.New("another process consumes this local queue")
	// ErrLocalNotConsumer is returned by the receive side of a Local opened
	// without LocalOptions.Consumer.
	ErrLocalNotConsumer = errors.New("local queue opened without Consumer")
)

// LocalOptions configure OpenLocal.
type LocalOptions struct {
	// Path is the SQLite database file, e.g. filepath.Join(dataDir,
	// "queue.db"). Its directory is created (0700) when missing and the file
	// is created 0600; SQLite gives the -wal and -shm files the same mode.
	Path string
	// VisibilityTimeout is how long a received message stays hidden (and its
	// group locked) before it is delivered again. Default 30 s.
	VisibilityTimeout time.Duration
	// MaxReceive is how many times a message is delivered; the next receive
	// moves it to the dead letters instead. Default 5.
	MaxReceive int
	// BatchSize is a full batch: how many messages the consumer receives at
	// a time. A group with BatchSize messages waiting is not held back by
	// BatchWindow. Default MaxBatch; at most MaxLocalBatch.
	BatchSize int
	// BatchBytes bounds the bodies of one receive (a first message larger
	// than that is delivered alone). Default DefaultLocalBatchBytes.
	BatchBytes int
	// BatchWindow holds a free group back until its head message (the
	// oldest waiting, in send order) is BatchWindow old, or BatchSize of its
	// messages wait, so that one batch collects what arrives meanwhile. Zero
	// delivers a free group at once, as SQS FIFO does. A message released
	// by the consumer keeps its send time, so a retry is not held again.
	BatchWindow time.Duration
	// Consumer marks the instance that receives: OpenLocal takes the file's
	// consumer lock (ErrLocalConsumerLocked if another instance holds it) and
	// returns every message a previous, now dead, consumer left in flight.
	// Without it the instance may send, read Stats and dead letters, and
	// redrive, but not receive.
	Consumer bool
	// Now is the clock; default time.Now. Tests inject one to move time.
	Now func() time.Time
}

var _ Sender = (*Local)(nil)

// OpenLocal opens (creating when absent) the queue database at opts.Path.
func OpenLocal(ctx context.Context, opts LocalOptions) (*Local, error) {
	if opts.Path == "" || strings.ContainsRune(opts.Path, '?') {
		return nil, fmt.Errorf("open local queue: path %q is empty or contains '?'", opts.Path)
	}
	if opts.VisibilityTimeout < 0 || opts.MaxReceive < 0 || opts.BatchWindow < 0 {
		return nil, fmt.Errorf("open local queue: negative visibility timeout %v, max receive %d or batch window %v",
			opts.VisibilityTimeout, opts.MaxReceive, opts.BatchWindow)
	}
	if opts.BatchSize < 0 || opts.BatchSize > MaxLocalBatch || opts.BatchBytes < 0 {
		return nil, fmt.Errorf("open local queue: batch size %d: want 1 to %d, batch bytes %d: want at least 1",
			opts.BatchSize, MaxLocalBatch, opts.BatchBytes)
	}
	l := &Local{
		path:       opts.Path,
		consumer:   opts.Consumer,
		vt:         opts.VisibilityTimeout,
		maxReceive: opts.MaxReceive,
		batchSize:  opts.BatchSize,
		batchBytes: opts.BatchBytes,
		window:     opts.BatchWindow,
		now:        opts.Now,
		unlock:     func() error { return nil },
	}
	if l.batchSize == 0 {
		l.batchSize = MaxBatch
	}
	if l.batchBytes == 0 {
		l.batchBytes = DefaultLocalBatchBytes
	}
	if l.vt == 0 {
		l.vt = DefaultLocalVisibilityTimeout
	}
	if l.maxReceive == 0 {
		l.maxReceive = DefaultLocalMaxReceive
	}
	if l.now == nil {
		l.now = time.Now
	}

	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o700); err != nil {
		return nil, fmt.Errorf("open local queue: create directory: %w", err)
	}
	exclusive := false
	if opts.Consumer {
		unlock, excl, err := lockLocalConsumer(opts.Path + ".consumer.lock")
		if err != nil {
			return nil, fmt.Errorf("open local queue %s: %w", opts.Path, err)
		}
		l.unlock, exclusive = unlock, excl
	}
	if err := l.open(ctx, opts.Path, exclusive); err != nil {
		_ = l.unlock()
		return nil, fmt.Errorf("open local queue %s: %w", opts.Path, err)
	}
	return l, nil
}

func (l *Local) open(ctx context.Context, path string, exclusive bool) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("create database file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create database file: %w", err)
	}
	// auto_vacuum only takes on a new file (the driver applies it before
	// journal_mode); busy_timeout covers other processes (pinlist status);
	// _txlock=immediate takes the write lock at BEGIN, so no transaction has
	// to upgrade a read lock and fail with SQLITE_BUSY.
	dsn := path + "?_busy_timeout=10000&_auto_vacuum=INCREMENTAL&_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	// One connection: SQLite has one writer anyway, and Go's pool queues
	// waiters without the busy handler's sleeps; with no reader of our own the
	// WAL checkpoint is never starved either.
	db.SetMaxOpenConns(1)
	l.db = db
	err = l.inTx(ctx, "create schema", func(tx *sql.Tx) error {
		if err := createLocalSchema(ctx, tx); err != nil {
			return err
		}
		if exclusive {
			return l.takeOver(ctx, tx)
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return err
	}
	return nil
}

// takeOver makes every invisible live message visible now. It runs only in a
// consumer that holds the consumer lock, so no live process has anything in
// flight: whatever is hidden was leased by a consumer that died (or a retry
// delay it set, which is lost once, harmlessly). Redelivery after a restart is
// therefore immediate instead of waiting for the visibility timeout.
func (l *Local) takeOver(ctx context.Context, tx *sql.Tx) error {
	now := localStamp(l.now())
	lo, hi := localPrefixRange(localLivePrefix)
	if _, err := tx.ExecContext(ctx,
		`update goqite set timeout = ? where queue >= ? and queue < ? and timeout > ?`,
		now, lo, hi, now); err != nil {
		return fmt.Errorf("release messages left in flight: %w", err)
	}
	if _, err := tx.ExecContext(ctx,
		`update pinlist_queue_groups set ready_at = ? where ready_at > ?`, now, now); err != nil {
		return fmt.Errorf("unlock groups left in flight: %w", err)
	}
	return nil
}

// Close checkpoints the WAL into the database file, closes it and releases
// the consumer lock. Calls after the first return the first one's result.
func (l *Local) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.close() })
	return l.closeErr
}

func (l *Local) close() error {
	_, cerr := l.db.Exec(`pragma wal_checkpoint(TRUNCATE)`)
	if cerr != nil {
		cerr = fmt.Errorf("close local queue: checkpoint: %w", cerr)
	}
	err := l.db.Close()
	if err != nil {
		err = fmt.Errorf("close local queue: %w", err)
	}
	uerr := l.unlock()
	if uerr != nil {
		uerr = fmt.Errorf("close local queue: release consumer lock: %w", uerr)
	}
	return errors.Join(cerr, err, uerr)
}

// SendBatch enqueues up to MaxBatch messages in one transaction: all of them
// or none (then err is set and failed is nil). A message whose DedupID was
// sent in the last five minutes is accepted and dropped, as SQS does; an
// empty DedupID is never deduplicated. Messages get increasing sequence
// numbers in the order given, which is their delivery order within a group.
// With a BatchWindow, a group that now has a full batch waiting becomes
// ready at once.
func (l *Local) SendBatch(ctx context.Context, msgs []Outgoing) ([]int, error) {
	if len(msgs) > MaxBatch {
		return nil, fmt.Errorf("send %d messages to local queue: at most %d per batch", len(msgs), MaxBatch)
	}
	for i, m := range msgs {
		if err := validateLocalOutgoing(m); err != nil {
			return nil, fmt.Errorf("send message %d to local queue: %w", i, err)
		}
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	now := l.now()
	err := l.inTx(ctx, "send to local queue", func(tx *sql.Tx) error {
		seq, err := nextLocalSeq(ctx, tx)
		if err != nil {
			return err
		}
		sent := 0
		touched := map[string]bool{}
		for _, m := range msgs {
			if m.DedupID != "" {
				fresh, err := rememberLocalDedup(ctx, tx, m.DedupID, now)
				if err != nil {
					return err
				}
				if !fresh {
					continue
				}
			}
			if err := insertLocalMessage(ctx, tx, m.GroupID, m.Body, seq+int64(sent), now); err != nil {
				return err
			}
			touched[m.GroupID] = true
			sent++
		}
		if l.window > 0 {
			// The new rows were listed ready now; put each group's ready
			// time where the window (or a full batch) puts it.
			for g := range touched {
				if _, err := l.settleGroup(ctx, tx, g, now); err != nil {
					return err
				}
			}
		}
		return setLocalSeq(ctx, tx, seq+int64(sent))
	})
	if err != nil {
		return nil, err
	}
	return nil, nil
}

func validateLocalOutgoing(m Outgoing) error {
	if err := validateLocalID("group id", m.GroupID, true); err != nil {
		return err
	}
	if err := validateLocalID("dedup id", m.DedupID, false); err != nil {
		return err
	}
	if len(m.Body) == 0 || len(m.Body) > localMaxBody {
		return fmt.Errorf("body of %d bytes: want 1 to %d", len(m.Body), localMaxBody)
	}
	for i := 0; i < len(m.Body); {
		r, size := utf8.DecodeRune(m.Body[i:])
		if !localBodyRune(r, size) {
			return fmt.Errorf("body byte %d: not a character SQS accepts", i)
		}
		i += size
	}
	return nil
}

// localBodyRune reports whether SQS accepts r in a message body: #x9, #xA,
// #xD, #x20 to #xD7FF, #xE000 to #xFFFD, #x10000 to #x10FFFF.
func localBodyRune(r rune, size int) bool {
	if r == utf8.RuneError && size <= 1 {
		return false
	}
	return r == 0x9 || r == 0xA || r == 0xD || (r >= 0x20 && r <= 0xD7FF) ||
		(r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
}

// validateLocalID checks an SQS group or deduplication id: up to 128
// characters, letters, digits and punctuation.
func validateLocalID(what, id string, required bool) error {
	if id == "" {
		if required {
			return fmt.Errorf("%s is empty", what)
		}
		return nil
	}
	if len(id) > localMaxID {
		return fmt.Errorf("%s of %d characters: at most %d", what, len(id), localMaxID)
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7E {
			return fmt.Errorf("%s has a character other than letters, digits and punctuation at %d", what, i)
		}
	}
	return nil
}

func nextLocalSeq(ctx context.Context, tx *sql.Tx) (int64, error) {
	var seq int64
	if err := tx.QueryRowContext(ctx, `select next from pinlist_queue_seq where id = 1`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("read sequence: %w", err)
	}
	return seq, nil
}

func setLocalSeq(ctx context.Context, tx *sql.Tx, next int64) error {
	if _, err := tx.ExecContext(ctx, `update pinlist_queue_seq set next = ? where id = 1`, next); err != nil {
		return fmt.Errorf("store sequence: %w", err)
	}
	return nil
}

// rememberLocalDedup records id for the deduplication window and reports
// whether it is fresh (not seen within the window). A duplicate does not
// extend the window, as in SQS.
func rememberLocalDedup(ctx context.Context, tx *sql.Tx, id string, now time.Time) (bool, error) {
	res, err := tx.ExecContext(ctx, `
		insert into pinlist_queue_dedup (id, expires) values (?, ?)
		on conflict (id) do update set expires = excluded.expires where pinlist_queue_dedup.expires <= ?`,
		id, localStamp(now.Add(localDedupWindow)), localStamp(now))
	if err != nil {
		return false, fmt.Errorf("record dedup id %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("record dedup id %s: %w", id, err)
	}
	return n == 1, nil
}

// insertLocalMessage stores one message in goqite's table at the tail of its
// group (priority = -seq) and makes sure the group is listed.
func insertLocalMessage(ctx context.Context, tx *sql.Tx, group string, body []byte, seq int64, now time.Time) error {
	stamp := localStamp(now)
	if _, err := tx.ExecContext(ctx, `
		insert into goqite (queue, body, created, updated, timeout, priority) values (?, ?, ?, ?, ?, ?)`,
		localLivePrefix+group, body, stamp, stamp, stamp, -seq); err != nil {
		return fmt.Errorf("insert message of group %s: %w", group, err)
	}
	if _, err := tx.ExecContext(ctx, `
		insert into pinlist_queue_groups (name, ready_at) values (?, ?) on conflict (name) do nothing`,
		group, stamp); err != nil {
		return fmt.Errorf("list group %s: %w", group, err)
	}
	return nil
}

// Maintain does the periodic housekeeping the runner calls on a timer (every
// minute or so): forgets expired deduplication ids, returns up to 64 MiB of
// free pages to the file system (incremental vacuum) and truncates the WAL.
func (l *Local) Maintain(ctx context.Context) error {
	err := l.inTx(ctx, "maintain local queue", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `delete from pinlist_queue_dedup where expires <= ?`,
			localStamp(l.now())); err != nil {
			return fmt.Errorf("forget expired dedup ids: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if _, err := l.db.ExecContext(ctx, fmt.Sprintf(`pragma incremental_vacuum(%d)`, localVacuumPages)); err != nil {
		return fmt.Errorf("maintain local queue: incremental vacuum: %w", err)
	}
	if _, err := l.db.ExecContext(ctx, `pragma wal_checkpoint(TRUNCATE)`); err != nil {
		return fmt.Errorf("maintain local queue: checkpoint: %w", err)
	}
	return nil
}

// LocalStats is a snapshot of the local queue.
type LocalStats struct {
	Queued      int           // live messages that can be received now
	InFlight    int           // live messages hidden: received, or released with a delay
	DeadLetters int           // messages moved to the dead letters
	Groups      int           // groups with live messages
	OldestAge   time.Duration // age of the oldest live message; 0 when none
}

// Stats counts the queue's messages.
func (l *Local) Stats(ctx context.Context) (LocalStats, error) {
	var s LocalStats
	now := l.now()
	stamp := localStamp(now)
	lo, hi := localPrefixRange(localLivePrefix)
	dlo, dhi := localPrefixRange(localDeadPrefix)
	err := l.inTx(ctx, "read local queue stats", func(tx *sql.Tx) error {
		var oldest sql.NullString
		// Each query is answered from an index: (queue, timeout) or goqite's
		// (queue, priority, created).
		for _, q := range []struct {
			query string
			args  []any
			dest  any
		}{
			{`select count(*) from goqite where queue >= ? and queue < ? and timeout <= ?`, []any{lo, hi, stamp}, &s.Queued},
			{`select count(*) from goqite where queue >= ? and queue < ? and timeout > ?`, []any{lo, hi, stamp}, &s.InFlight},
			{`select count(*) from goqite where queue >= ? and queue < ?`, []any{dlo, dhi}, &s.DeadLetters},
			{`select count(*) from pinlist_queue_groups`, nil, &s.Groups},
			{`select min(created) from goqite where queue >= ? and queue < ?`, []any{lo, hi}, &oldest},
		} {
			if err := tx.QueryRowContext(ctx, q.query, q.args...).Scan(q.dest); err != nil {
				return err
			}
		}
		if oldest.Valid {
			t, err := parseLocalStamp(oldest.String)
			if err != nil {
				return err
			}
			s.OldestAge = max(now.Sub(t), 0)
		}
		return nil
	})
	return s, err
}

// inTx runs fn in one (immediate) transaction; what names the operation in
// the error.
func (l *Local) inTx(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", what, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: commit: %w", what, err)
	}
	return nil
}

func localStamp(t time.Time) string { return t.UTC().Format(localStampLayout) }

func parseLocalStamp(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse timestamp %q: %w", s, err)
	}
	return t, nil
}

// localPrefixRange returns [lo, hi) of the names that start with prefix, for
// index range scans (prefix ends in an ASCII character below 0x7F).
func localPrefixRange(prefix string) (lo, hi string) {
	return prefix, prefix[:len(prefix)-1] + string(prefix[len(prefix)-1]+1)
}

// localReceipt is the handle Delete and Release take: the message id and the
// receive count it was delivered with, so a handle from an earlier delivery
// cannot touch a later one.
func localReceipt(id string, count int) string { return id + "#" + strconv.Itoa(count) }

func parseLocalReceipt(r string) (id string, count int, err error) {
	i := strings.LastIndexByte(r, '#')
	if i <= 0 {
		return "", 0, fmt.Errorf("receipt %q is malformed", r)
	}
	count, err = strconv.Atoi(r[i+1:])
	if err != nil || count < 1 {
		return "", 0, fmt.Errorf("receipt %q is malformed", r)
	}
	return r[:i], count, nil
}
