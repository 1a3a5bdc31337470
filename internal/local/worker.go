package local

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/pinlist/pinlist/internal/queue"
	"github.com/pinlist/pinlist/internal/retry"
	"github.com/pinlist/pinlist/internal/upload"
)

// batchHandler applies one SQS batch: upload.Handler.HandleSQS.
type batchHandler interface {
	HandleSQS(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error)
}

var _ batchHandler = (*upload.Handler)(nil)

// batchQueue is the consumer side of queue.Local that the workers use.
type batchQueue interface {
	ReceiveGroupBatch(ctx context.Context, max int) (queue.Batch, error)
	Delete(ctx context.Context, receipts ...string) error
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

// workers runs the upload workers: each takes a batch of one group at a
// time, applies it through the handler, and deletes or releases its
// messages.
type workers struct {
	q            batchQueue
	h            batchHandler
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

// apply hands b to the upload handler as the Lambda event source would,
// deletes what was applied and releases what failed: with a jittered backoff
// delay whose ceiling doubles with the receive count, or at once when work was cancelled
// (a shutdown: the messages are not at fault).
func (w *workers) apply(work context.Context, b queue.Batch) {
	ctx, cancel := context.WithTimeout(work, w.batchTimeout)
	resp, err := w.h.HandleSQS(ctx, sqsEvent(b))
	cancel()
	failed := make(map[string]bool, len(resp.BatchItemFailures))
	for _, f := range resp.BatchItemFailures {
		failed[f.ItemIdentifier] = true
	}
	if err != nil {
		// The Lambda runtime retries the whole batch on an error.
		w.log.LogAttrs(work, slog.LevelError, "upload batch failed", slog.String("group", b.GroupID), slog.String("error", err.Error()))
		for _, m := range b.Messages {
			failed[m.ID] = true
		}
	}
	var done, retry []string
	var doneBodies [][]byte
	var applied int64
	firstFailed := 0
	for _, m := range b.Messages {
		if failed[m.ID] {
			if len(retry) == 0 {
				firstFailed = m.ReceiveCount
			}
			retry = append(retry, m.Receipt)
			continue
		}
		done = append(done, m.Receipt)
		doneBodies = append(doneBodies, m.Body)
		applied += countRecords(m.Body)
	}

	sctx, scancel := context.WithTimeout(context.WithoutCancel(work), settleTimeout)
	defer scancel()
	if len(done) > 0 {
		if err := w.q.Delete(sctx, done...); err != nil {
			// They are delivered again after the visibility timeout and
			// applied again, which changes nothing.
			w.log.LogAttrs(work, slog.LevelError, "delete applied messages", slog.String("group", b.GroupID), slog.String("error", err.Error()))
		} else {
			w.count.applied.Add(applied)
			w.count.messagesApplied.Add(int64(len(done)))
			if w.changes != nil {
				w.changes.record(time.Now(), b.GroupID, doneBodies)
			}
		}
	}
	if len(retry) > 0 {
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
// (audience.Message's records: {"l":…,"o":…,"h":"<hash>","t":…}) and nowhere
// else: no other field is named "h", and a quote inside a string value is
// escaped. Counting it counts changes without decoding the body.
var recordKey = []byte(`"h":"`)

// countRecords is the number of changes in a queue message body; 0 for an
// audience message.
func countRecords(body []byte) int64 { return int64(bytes.Count(body, recordKey)) }
