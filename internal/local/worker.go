package local

import (
	"bytes"
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/queue"
	"github.com/pinlist/pinlist/internal/retry"
	"github.com/pinlist/pinlist/internal/upload"
)

// recorder records one SQS batch in the ledger: upload.Handler.ApplyTo.
type recorder interface {
	ApplyTo(ctx context.Context, rec upload.Recorder, records []events.SQSMessage) upload.Applied
}

var _ recorder = (*upload.Handler)(nil)

// txLedger is what the workers write in the queue's transaction: the SQLite
// ledger and name store (ledgerTx).
type txLedger interface {
	ApplyTx(ctx context.Context, tx *sql.Tx, changes []audience.Change) (ledger.Result, error)
	SetNameTx(ctx context.Context, tx *sql.Tx, a audience.Ref, n ledger.AudienceName) error
	EraseTx(ctx context.Context, tx *sql.Tx, erasures []ledger.Erasure) (ledger.Erased, error)
	RetireTx(ctx context.Context, tx *sql.Tx, a audience.Ref) ([]ledger.List, error)
}

// batchQueue is the consumer side of queue.Local that the workers use.
type batchQueue interface {
	ReceiveGroupBatch(ctx context.Context, max int) (queue.Batch, error)
	InTx(ctx context.Context, fn func(tx *sql.Tx) error) error
	DeleteTx(ctx context.Context, tx *sql.Tx, receipts ...string) error
	Release(ctx context.Context, delay time.Duration, receipts ...string) error
}

var _ batchQueue = (*queue.Local)(nil)

// Identifiers the SQS event records carry, as the Lambda event source sets
// them (the region and account are placeholders: there is no AWS here).
const (
	localQueueARN  = "arn:aws:sqs:local:000000000000:pinlist-local.fifo"
	localRegion    = "local"
	sqsEventSource = "aws:sqs"
)

// settleTimeout bounds the delete or release after a batch; it runs even
// when the batch was cancelled by a shutdown.
const settleTimeout = 10 * time.Second

// workers runs the apply workers: each takes a batch at a time, records it
// in the ledger and deletes its messages in one transaction (or releases
// them), then wakes the flusher.
type workers struct {
	q            batchQueue
	h            recorder
	ledger       txLedger
	flush        func() // wakes the flusher: rows may be pending
	count        *counters
	changes      *changeHistory // what was applied, per list, for the status page
	wake         chan struct{}  // a send happened: an idle worker looks now
	poll         time.Duration
	batchSize    int // messages per receive: queue.Local's BatchSize
	batchTimeout time.Duration
	// retry shapes the release delay of a failed message by its receive
	// count (Attempts unused: the queue's MaxReceive bounds deliveries).
	retry retry.Policy
	log   *slog.Logger
}

// run is one worker. It receives until recv ends, and applies each batch
// with work, which ends later (a shutdown's grace period): a batch cut short
// returns its unapplied messages to the queue at once.
func (w *workers) run(recv, work context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for recv.Err() == nil {
		b, err := w.q.ReceiveGroupBatch(recv, w.batchSize)
		if err != nil && recv.Err() == nil {
			w.log.LogAttrs(recv, slog.LevelError, "receive from the local queue", slog.String("error", err.Error()))
		}
		if err != nil || len(b.Messages) == 0 {
			timer.Reset(w.poll)
			select {
			case <-recv.Done():
				return
			case <-w.wake:
				if !timer.Stop() {
					<-timer.C
				}
			case <-timer.C:
			}
			continue
		}
		// Another group may be waiting: let an idle worker look too.
		w.notify()
		w.apply(work, b)
	}
}

// notify wakes one idle worker, if one is waiting and none is woken yet.
func (w *workers) notify() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// errNotRecorded rolls back a batch's transaction when a store failed.
var errNotRecorded = errors.New("batch not recorded in the ledger")

// apply records b in the ledger as the Lambda apply function would, in one
// transaction with the deletion of the messages it recorded, and releases
// the rest: with a jittered backoff delay whose ceiling doubles with the
// receive count, or at once when work was cancelled (a shutdown: the
// messages are not at fault). A message that can never be recorded
// (undecodable) is released with the delay until it becomes a dead letter;
// a store failure rolls the whole batch back and releases it.
func (w *workers) apply(work context.Context, b queue.Batch) {
	ctx, cancel := context.WithTimeout(work, w.batchTimeout)
	ev := sqsEvent(b)
	failed := map[string]bool{}
	var done []string
	var doneBodies [][]byte
	var applied int64
	err := w.q.InTx(ctx, func(tx *sql.Tx) error {
		a := w.h.ApplyTo(ctx, upload.RecorderFuncs{
			ApplyFunc: func(ctx context.Context, cs []audience.Change) (ledger.Result, error) {
				return w.ledger.ApplyTx(ctx, tx, cs)
			},
			SetNameFunc: func(ctx context.Context, ref audience.Ref, n ledger.AudienceName) error {
				return w.ledger.SetNameTx(ctx, tx, ref, n)
			},
			EraseFunc: func(ctx context.Context, es []ledger.Erasure) (ledger.Erased, error) {
				return w.ledger.EraseTx(ctx, tx, es)
			},
			RetireFunc: func(ctx context.Context, ref audience.Ref) ([]ledger.List, error) {
				return w.ledger.RetireTx(ctx, tx, ref)
			},
		}, ev.Records)
		clear(failed)
		for _, f := range a.Failed {
			if !f.Permanent {
				return fmt.Errorf("%w: %w", errNotRecorded, f.Err)
			}
			failed[f.ID] = true
		}
		done, doneBodies, applied = done[:0], doneBodies[:0], 0
		for _, m := range b.Messages {
			if !failed[m.ID] {
				done = append(done, m.Receipt)
				doneBodies = append(doneBodies, m.Body)
				applied += countRecords(m.Body)
			}
		}
		return w.q.DeleteTx(ctx, tx, done...)
	})
	cancel()
	if err != nil {
		w.log.LogAttrs(work, slog.LevelError, "apply batch failed", slog.String("group", b.GroupID), slog.String("error", err.Error()))
		for _, m := range b.Messages {
			failed[m.ID] = true
		}
	} else if len(done) > 0 {
		w.count.applied.Add(applied)
		w.count.messagesApplied.Add(int64(len(done)))
		if w.changes != nil {
			w.changes.record(time.Now(), b.GroupID, doneBodies)
		}
		w.flush()
	}
	var retry []string
	firstFailed := 0
	for _, m := range b.Messages {
		if failed[m.ID] {
			if len(retry) == 0 {
				firstFailed = m.ReceiveCount
			}
			retry = append(retry, m.Receipt)
		}
	}
	if len(retry) == 0 {
		return
	}
	sctx, scancel := context.WithTimeout(context.WithoutCancel(work), settleTimeout)
	defer scancel()
	delay := w.retry.Delay(firstFailed, nil)
	if work.Err() != nil {
		delay = 0
	} else {
		w.count.retried.Add(int64(len(retry)))
	}
	if err := w.q.Release(sctx, delay, retry...); err != nil {
		w.log.LogAttrs(work, slog.LevelError, "release failed messages", slog.String("group", b.GroupID), slog.String("error", err.Error()))
	}
}

// sqsEvent is the event the Lambda SQS event source would deliver for b.
func sqsEvent(b queue.Batch) events.SQSEvent {
	ev := events.SQSEvent{Records: make([]events.SQSMessage, len(b.Messages))}
	for i, m := range b.Messages {
		sum := md5.Sum(m.Body)
		ev.Records[i] = events.SQSMessage{
			MessageId:     m.ID,
			ReceiptHandle: m.Receipt,
			Body:          string(m.Body),
			Md5OfBody:     hex.EncodeToString(sum[:]),
			Attributes: map[string]string{
				"MessageGroupId":          b.GroupID,
				"ApproximateReceiveCount": strconv.Itoa(m.ReceiveCount),
				"SentTimestamp":           strconv.FormatInt(m.SentAt.UnixMilli(), 10),
			},
			EventSource:    sqsEventSource,
			EventSourceARN: localQueueARN,
			AWSRegion:      localRegion,
		}
	}
	return ev
}

// recordKey occurs once per change record in a queue message body
// (wire.Message's records: {"l":…,"o":…,"h":"<hash>","t":…}) and nowhere
// else: no other field is named "h", and a quote inside a string value is
// escaped. Counting it counts changes without decoding the body.
var recordKey = []byte(`"h":"`)

// countRecords is the number of changes in a queue message body; 0 for an
// audience message.
func countRecords(body []byte) int64 { return int64(bytes.Count(body, recordKey)) }
