package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Received is one delivered message.
type Received struct {
	ID           string    // the message id (goqite's), stable across deliveries
	Receipt      string    // the handle for Delete and Release, valid for this delivery only
	GroupID      string    // the message group (audience)
	Body         []byte    // what was sent
	ReceiveCount int       // 1 on the first delivery
	SentAt       time.Time // when it was sent (millisecond precision)
}

// Batch is what one receive returns: messages of a single group, in send
// order. It is empty (no GroupID, no Messages) when nothing can be delivered.
type Batch struct {
	GroupID  string
	Messages []Received
}

// ReceiveGroupBatch delivers up to max (1 to MaxLocalBatch) messages of one
// group that has nothing in flight, oldest first, of at most
// LocalOptions.BatchBytes together (but at least one), and hides them for the
// visibility timeout; the group stays locked until every one of them is
// deleted, released without delay, or timed out. With a BatchWindow, a free
// group is served only once its head message is BatchWindow old or
// BatchSize of its messages wait. Among the groups that can be served it
// picks the one that has waited longest. A message already delivered
// MaxReceive times is moved to the dead letters instead.
func (l *Local) ReceiveGroupBatch(ctx context.Context, max int) (Batch, error) {
	if !l.consumer {
		return Batch{}, fmt.Errorf("receive from local queue: %w", ErrLocalNotConsumer)
	}
	if max < 1 || max > MaxLocalBatch {
		return Batch{}, fmt.Errorf("receive %d messages from local queue: want 1 to %d", max, MaxLocalBatch)
	}
	now := l.now()
	var b Batch
	err := l.inTx(ctx, "receive from local queue", func(tx *sql.Tx) error {
		// Each pass either delivers, or drops the group from the list, or
		// moves its ready time past now, so the loop ends.
		for {
			var group string
			err := tx.QueryRowContext(ctx, `
				select name from pinlist_queue_groups where ready_at <= ? order by ready_at, name limit 1`,
				localStamp(now)).Scan(&group)
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("pick a group: %w", err)
			}
			msgs, err := l.takeGroup(ctx, tx, group, max, now)
			if err != nil {
				return err
			}
			if len(msgs) > 0 {
				b = Batch{GroupID: group, Messages: msgs}
				return nil
			}
		}
	})
	if err != nil {
		return Batch{}, err
	}
	return b, nil
}

// takeGroup delivers up to max messages from the head of group, or nothing
// when the group turns out locked, held by the batch window, or empty (then
// its row is corrected).
func (l *Local) takeGroup(ctx context.Context, tx *sql.Tx, group string, max int, now time.Time) ([]Received, error) {
	queue := localLivePrefix + group
	stamp := localStamp(now)
	ready, err := l.groupReadyAt(ctx, tx, group, now)
	if err != nil {
		return nil, err
	}
	if !ready.Valid || ready.String > stamp {
		// The row's ready time was stale: correct it.
		_, err := l.settleGroup(ctx, tx, group, now)
		return nil, err
	}
	var out []Received
	after := int64(1) // priorities are -seq <= -1: continue below the last one seen
	size, full := 0, false
	for len(out) < max && !full {
		// Small pages: a page's bodies are all in memory at once.
		page, err := readLocalGroup(ctx, tx, queue, after, min(max-len(out), localReadPage))
		if err != nil {
			return nil, fmt.Errorf("read group %s: %w", group, err)
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].priority
		for _, m := range page {
			if m.received >= l.maxReceive {
				if _, err := tx.ExecContext(ctx, `update goqite set queue = ?, timeout = ? where id = ?`,
					localDeadPrefix+group, stamp, m.id); err != nil {
					return nil, fmt.Errorf("move message %s of group %s to the dead letters: %w", m.id, group, err)
				}
				continue
			}
			if len(out) > 0 && size+len(m.body) > l.batchBytes {
				full = true
				break
			}
			size += len(m.body)
			out = append(out, Received{
				ID: m.id, Receipt: localReceipt(m.id, m.received+1), GroupID: group,
				Body: m.body, ReceiveCount: m.received + 1, SentAt: m.created,
			})
		}
	}
	if len(out) == 0 {
		// Everything left was dead-lettered: the group is empty.
		_, err := l.settleGroup(ctx, tx, group, now)
		return nil, err
	}
	until := localStamp(now.Add(l.vt))
	for _, m := range out {
		if _, err := tx.ExecContext(ctx, `update goqite set timeout = ?, received = received + 1 where id = ?`,
			until, m.ID); err != nil {
			return nil, fmt.Errorf("hide message %s of group %s: %w", m.ID, group, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `update pinlist_queue_groups set ready_at = ? where name = ?`,
		until, group); err != nil {
		return nil, fmt.Errorf("lock group %s: %w", group, err)
	}
	return out, nil
}

type localRow struct {
	id       string
	body     []byte
	created  time.Time
	received int
	priority int64
}

// readLocalGroup reads the next n messages of a goqite queue in send order,
// starting after priority after.
func readLocalGroup(ctx context.Context, tx *sql.Tx, queue string, after int64, n int) ([]localRow, error) {
	rows, err := tx.QueryContext(ctx, `
		select id, body, created, received, priority from goqite
		where queue = ? and priority < ? order by priority desc limit ?`, queue, after, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var page []localRow
	for rows.Next() {
		var r localRow
		var created string
		if err := rows.Scan(&r.id, &r.body, &created, &r.received, &r.priority); err != nil {
			return nil, err
		}
		if r.created, err = parseLocalStamp(created); err != nil {
			return nil, err
		}
		page = append(page, r)
	}
	return page, rows.Err()
}

// settleGroup brings a group's row in line with its messages and reports
// whether the group can be served now. An empty group loses its row; any
// other gets the time groupReadyAt gives.
func (l *Local) settleGroup(ctx context.Context, tx *sql.Tx, group string, now time.Time) (ready bool, err error) {
	at, err := l.groupReadyAt(ctx, tx, group, now)
	if err != nil {
		return false, err
	}
	if !at.Valid {
		if _, err := tx.ExecContext(ctx, `delete from pinlist_queue_groups where name = ?`, group); err != nil {
			return false, fmt.Errorf("drop empty group %s: %w", group, err)
		}
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, `
		insert into pinlist_queue_groups (name, ready_at) values (?, ?)
		on conflict (name) do update set ready_at = excluded.ready_at`, group, at.String); err != nil {
		return false, fmt.Errorf("update group %s: %w", group, err)
	}
	return at.String <= localStamp(now), nil
}

// groupReadyAt is when group can next be served, from its messages: NULL
// when it has none; when its last hidden message shows again while it is
// locked; now when it is free and there is no batch window or a full batch
// waits; else when its head message (the next to deliver) is BatchWindow
// old. Each query is answered from an index.
func (l *Local) groupReadyAt(ctx context.Context, tx *sql.Tx, group string, now time.Time) (sql.NullString, error) {
	stamp := localStamp(now)
	latest, err := localGroupLatest(ctx, tx, group)
	if err != nil || !latest.Valid || latest.String > stamp {
		return latest, err
	}
	ready := sql.NullString{String: stamp, Valid: true}
	if l.window <= 0 {
		return ready, nil
	}
	queue := localLivePrefix + group
	var waiting int
	if err := tx.QueryRowContext(ctx, `select count(*) from (select 1 from goqite where queue = ? limit ?)`,
		queue, l.batchSize).Scan(&waiting); err != nil {
		return latest, fmt.Errorf("count messages of group %s: %w", group, err)
	}
	if waiting >= l.batchSize {
		return ready, nil
	}
	var head string
	if err := tx.QueryRowContext(ctx, `select created from goqite where queue = ? order by priority desc limit 1`,
		queue).Scan(&head); err != nil {
		return latest, fmt.Errorf("read head of group %s: %w", group, err)
	}
	sent, err := parseLocalStamp(head)
	if err != nil {
		return latest, fmt.Errorf("read head of group %s: %w", group, err)
	}
	if due := localStamp(sent.Add(l.window)); due > stamp {
		ready.String = due
	}
	return ready, nil
}

// localGroupLatest returns the latest visibility time of a group's live
// messages (NULL when it has none), from the (queue, timeout) index.
func localGroupLatest(ctx context.Context, tx *sql.Tx, group string) (sql.NullString, error) {
	var latest sql.NullString
	if err := tx.QueryRowContext(ctx, `select max(timeout) from goqite where queue = ?`,
		localLivePrefix+group).Scan(&latest); err != nil {
		return latest, fmt.Errorf("check group %s: %w", group, err)
	}
	return latest, nil
}

// Delete removes delivered messages, by their receipts. A receipt whose
// message has since been delivered again, dead-lettered or deleted is ignored:
// the message belongs to that later delivery. Deleting the last hidden
// message of a group unlocks it.
func (l *Local) Delete(ctx context.Context, receipts ...string) error {
	return l.settle(ctx, "delete from local queue", receipts, deleteStmt)
}

// deleteStmt deletes one delivered message (see settleTx).
const deleteStmt = `delete from goqite where id = ? and received = ? and queue >= ? and queue < ? returning queue`

// Release makes delivered messages visible again after delay (0: now), as
// SQS ChangeMessageVisibility does; the group stays locked until then, so a
// failed message is retried before anything sent after it. Stale receipts are
// ignored as in Delete.
func (l *Local) Release(ctx context.Context, delay time.Duration, receipts ...string) error {
	if delay < 0 {
		return fmt.Errorf("release local queue messages: negative delay %v", delay)
	}
	return l.settle(ctx, "release local queue messages", receipts, `
		update goqite set timeout = ?5 where id = ?1 and received = ?2 and queue >= ?3 and queue < ?4
		returning queue`, localStamp(l.now().Add(delay)))
}

// settle runs stmt for each receipt, then settles the groups touched. stmt
// takes the id, the receive count, the live queue range and then extra, and
// returns the message's queue.
func (l *Local) settle(ctx context.Context, what string, receipts []string, stmt string, extra ...any) error {
	if !l.consumer {
		return fmt.Errorf("%s: %w", what, ErrLocalNotConsumer)
	}
	handles, err := parseHandles(receipts)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if len(handles) == 0 {
		return nil
	}
	return l.inTx(ctx, what, func(tx *sql.Tx) error { return l.settleTx(ctx, tx, handles, stmt, extra...) })
}

// InTx runs fn in one transaction of the queue's database and commits it
// when fn returns nil. fn may call DeleteTx and write tables of its own (the
// membership ledger lives in the same database), so a batch is recorded and
// deleted at once or not at all.
func (l *Local) InTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return l.inTx(ctx, "local queue transaction", fn)
}

// DeleteTx is Delete inside a transaction from InTx.
func (l *Local) DeleteTx(ctx context.Context, tx *sql.Tx, receipts ...string) error {
	if !l.consumer {
		return fmt.Errorf("delete from local queue: %w", ErrLocalNotConsumer)
	}
	handles, err := parseHandles(receipts)
	if err != nil {
		return fmt.Errorf("delete from local queue: %w", err)
	}
	if err := l.settleTx(ctx, tx, handles, deleteStmt); err != nil {
		return fmt.Errorf("delete from local queue: %w", err)
	}
	return nil
}

// DB is the queue's database, for stores that share its file and its
// transactions (the membership ledger). It has one connection: a caller
// must not hold a transaction of its own while calling the queue.
func (l *Local) DB() *sql.DB { return l.db }

// handle is a parsed receipt: the message id and the receive count it was
// delivered with.
type handle struct {
	id    string
	count int
}

func parseHandles(receipts []string) ([]handle, error) {
	handles := make([]handle, 0, len(receipts))
	for _, r := range receipts {
		id, count, err := parseLocalReceipt(r)
		if err != nil {
			return nil, err
		}
		handles = append(handles, handle{id, count})
	}
	return handles, nil
}

// settleTx runs stmt for each handle in tx, then settles the groups touched.
func (l *Local) settleTx(ctx context.Context, tx *sql.Tx, handles []handle, stmt string, extra ...any) error {
	if len(handles) == 0 {
		return nil
	}
	now := l.now()
	lo, hi := localPrefixRange(localLivePrefix)
	groups := map[string]bool{}
	for _, h := range handles {
		var queue string
		args := append([]any{h.id, h.count, lo, hi}, extra...)
		err := tx.QueryRowContext(ctx, stmt, args...).Scan(&queue)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return fmt.Errorf("message %s: %w", h.id, err)
		}
		groups[strings.TrimPrefix(queue, localLivePrefix)] = true
	}
	for g := range groups {
		if _, err := l.settleGroup(ctx, tx, g, now); err != nil {
			return err
		}
	}
	return nil
}

// DeadLetter is a message that was delivered MaxReceive times without being
// deleted.
type DeadLetter struct {
	ID           string
	GroupID      string
	Body         []byte
	ReceiveCount int
	SentAt       time.Time
	DeadAt       time.Time // when it was moved to the dead letters
}

// DeadLetters lists the dead letters, oldest first.
func (l *Local) DeadLetters(ctx context.Context) ([]DeadLetter, error) {
	lo, hi := localPrefixRange(localDeadPrefix)
	var out []DeadLetter
	err := l.inTx(ctx, "list local dead letters", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `
			select id, queue, body, received, created, timeout from goqite
			where queue >= ? and queue < ? order by priority desc`, lo, hi)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d DeadLetter
			var queue, created, dead string
			if err := rows.Scan(&d.ID, &queue, &d.Body, &d.ReceiveCount, &created, &dead); err != nil {
				return err
			}
			d.GroupID = strings.TrimPrefix(queue, localDeadPrefix)
			if d.SentAt, err = parseLocalStamp(created); err != nil {
				return err
			}
			if d.DeadAt, err = parseLocalStamp(dead); err != nil {
				return err
			}
			out = append(out, d)
		}
		return rows.Err()
	})
	return out, err
}

// Redrive moves up to max dead letters (all when max <= 0), oldest first, to
// the tail of their groups with a fresh receive count, and returns how many
// it moved.
func (l *Local) Redrive(ctx context.Context, max int) (int, error) {
	lo, hi := localPrefixRange(localDeadPrefix)
	limit := max
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	now := l.now()
	stamp := localStamp(now)
	moved := 0
	err := l.inTx(ctx, "redrive local dead letters", func(tx *sql.Tx) error {
		type dead struct{ id, group string }
		var ds []dead
		rows, err := tx.QueryContext(ctx, `
			select id, queue from goqite where queue >= ? and queue < ? order by priority desc limit ?`, lo, hi, limit)
		if err != nil {
			return err
		}
		for rows.Next() {
			var d dead
			if err := rows.Scan(&d.id, &d.group); err != nil {
				rows.Close()
				return err
			}
			d.group = strings.TrimPrefix(d.group, localDeadPrefix)
			ds = append(ds, d)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		seq, err := nextLocalSeq(ctx, tx)
		if err != nil {
			return err
		}
		for _, d := range ds {
			if _, err := tx.ExecContext(ctx, `
				update goqite set queue = ?, priority = ?, received = 0, timeout = ? where id = ?`,
				localLivePrefix+d.group, -seq, stamp, d.id); err != nil {
				return fmt.Errorf("move message %s back to group %s: %w", d.id, d.group, err)
			}
			if _, err := tx.ExecContext(ctx, `
				insert into pinlist_queue_groups (name, ready_at) values (?, ?) on conflict (name) do nothing`,
				d.group, stamp); err != nil {
				return fmt.Errorf("list group %s: %w", d.group, err)
			}
			seq++
			moved++
		}
		return setLocalSeq(ctx, tx, seq)
	})
	if err != nil {
		return 0, err
	}
	return moved, nil
}
