package local

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/queue"
	"github.com/pinlist/pinlist/internal/retry"
	"github.com/pinlist/pinlist/internal/upload"
	"github.com/pinlist/pinlist/internal/wire"
	"github.com/pinlist/pinlist/internal/wire/wiretest"
)

// fakeQueue records what the workers delete and release.
type fakeQueue struct {
	mu       sync.Mutex
	batches  []queue.Batch
	staged   []string // deletes of the transaction in progress
	deleted  []string
	released map[time.Duration][]string
}

func (q *fakeQueue) ReceiveGroupBatch(ctx context.Context, max int) (queue.Batch, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.batches) == 0 {
		return queue.Batch{}, nil
	}
	b := q.batches[0]
	q.batches = q.batches[1:]
	return b, nil
}

// InTx runs fn; the deletes it stages take effect only when fn succeeds,
// as in a committed transaction.
func (q *fakeQueue) InTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	q.mu.Lock()
	q.staged = nil
	q.mu.Unlock()
	if err := fn(nil); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.deleted = append(q.deleted, q.staged...)
	return nil
}

func (q *fakeQueue) DeleteTx(ctx context.Context, tx *sql.Tx, receipts ...string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.staged = append(q.staged, receipts...)
	return nil
}

func (q *fakeQueue) Release(ctx context.Context, delay time.Duration, receipts ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.released == nil {
		q.released = map[time.Duration][]string{}
	}
	q.released[delay] = append(q.released[delay], receipts...)
	return nil
}

// fakeRecorder answers with the failures fail picks, and keeps the batches.
type fakeRecorder struct {
	fail    func(ctx context.Context, records []events.SQSMessage) []upload.Failure
	batches [][]events.SQSMessage
}

func (h *fakeRecorder) ApplyTo(ctx context.Context, rec upload.Recorder, records []events.SQSMessage) upload.Applied {
	h.batches = append(h.batches, records)
	return upload.Applied{Messages: len(records), Failed: h.fail(ctx, records)}
}

// noLedger is never called: fakeRecorder does not use its Recorder.
type noLedger struct{}

func (noLedger) ApplyTx(context.Context, *sql.Tx, []audience.Change) (ledger.Result, error) {
	return ledger.Result{}, errors.New("not used")
}

func (noLedger) SetNameTx(context.Context, *sql.Tx, audience.Ref, ledger.AudienceName) error {
	return errors.New("not used")
}

func (noLedger) EraseTx(context.Context, *sql.Tx, []ledger.Erasure) (ledger.Erased, error) {
	return ledger.Erased{}, errors.New("not used")
}

func (noLedger) RetireTx(context.Context, *sql.Tx, audience.Ref) ([]ledger.List, error) {
	return nil, errors.New("not used")
}

// failing reports ids as failed, permanently or not.
func failing(permanent bool, ids ...string) func(context.Context, []events.SQSMessage) []upload.Failure {
	return func(context.Context, []events.SQSMessage) []upload.Failure {
		var out []upload.Failure
		for _, id := range ids {
			out = append(out, upload.Failure{ID: id, Permanent: permanent, Err: errors.New("injected")})
		}
		return out
	}
}

// testBatch is a batch of n messages of group g, delivered for the
// receiveCount-th time, each with records changes.
func testBatch(g string, n, receiveCount, records int) queue.Batch {
	b := queue.Batch{GroupID: g}
	sent := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	for i := range n {
		changes := make([]audience.Change, records)
		for j := range changes {
			changes[j] = audience.Change{
				Audience: audience.Ref{Namespace: "ups", ID: g}, List: audience.ListEmail, Op: audience.OpAdd,
				Hash: strconv.Itoa(i) + strconv.Itoa(j) + "0000000000000000000000000000000000000000000000000000000000000000"[:62], EventTime: sent,
			}
		}
		body := []byte(`{"v":1,"kind":"audience","audience":{"ns":"ups","id":"` + g + `"},"name":"x"}`)
		if records > 0 {
			packed, err := wiretest.Pack(changes, 0)
			if err != nil {
				panic(err)
			}
			body = packed[0].Body
		}
		id := g + "-" + strconv.Itoa(i)
		b.Messages = append(b.Messages, queue.Received{
			ID: id, Receipt: id + "#" + strconv.Itoa(receiveCount), GroupID: g, Body: body,
			ReceiveCount: receiveCount, SentAt: sent.Add(time.Duration(i) * time.Millisecond),
		})
	}
	return b
}

func newTestWorkers(q batchQueue, h recorder) *workers {
	return &workers{
		q: q, h: h, ledger: noLedger{}, flush: func() {}, count: &counters{}, wake: make(chan struct{}, 1),
		poll: time.Millisecond, batchSize: DefaultBatchSize, batchTimeout: time.Minute,
		retry: retry.Policy{Base: time.Second, Max: 8 * time.Second},
		log:   slog.New(slog.DiscardHandler),
	}
}

// TestApplyDeletesWhatSucceededAndReleasesTheRest: the Lambda event source's
// partial batch response, locally: messages that can never be recorded are
// released with a backoff by receive count (until they are dead letters),
// the others deleted and counted in the recording transaction; a store
// failure rolls the whole batch back and releases it.
// wantReleased is keyed by the delay's ceiling: every message of one Release
// shares one jittered delay in [0, ceiling].
func TestApplyDeletesWhatSucceededAndReleasesTheRest(t *testing.T) {
	tests := []struct {
		name         string
		receiveCount int
		fail         func(ctx context.Context, records []events.SQSMessage) []upload.Failure
		cancelWork   bool
		wantDeleted  []string
		wantReleased map[time.Duration][]string
		wantApplied  int64
		wantRetried  int64
	}{
		{
			name:         "all applied",
			receiveCount: 1,
			fail:         failing(true),
			wantDeleted:  []string{"g-0#1", "g-1#1", "g-2#1"},
			wantApplied:  9,
		},
		{
			name:         "undecodable messages fail alone on the first delivery",
			receiveCount: 1,
			fail:         failing(true, "g-1", "g-2"),
			wantDeleted:  []string{"g-0#1"},
			wantReleased: map[time.Duration][]string{time.Second: {"g-1#1", "g-2#1"}},
			wantApplied:  3,
			wantRetried:  2,
		},
		{
			name:         "third delivery waits four times the base",
			receiveCount: 3,
			fail:         failing(true, "g-2"),
			wantDeleted:  []string{"g-0#3", "g-1#3"},
			wantReleased: map[time.Duration][]string{4 * time.Second: {"g-2#3"}},
			wantApplied:  6,
			wantRetried:  1,
		},
		{
			name:         "the delay stops at the maximum",
			receiveCount: 9,
			fail:         failing(true, "g-0", "g-1", "g-2"),
			wantReleased: map[time.Duration][]string{8 * time.Second: {"g-0#9", "g-1#9", "g-2#9"}},
			wantRetried:  3,
		},
		{
			name:         "a store failure rolls the whole batch back",
			receiveCount: 1,
			fail:         failing(false, "g-1"),
			wantReleased: map[time.Duration][]string{time.Second: {"g-0#1", "g-1#1", "g-2#1"}},
			wantRetried:  3,
		},
		{
			name:         "unknown failure ids are ignored",
			receiveCount: 1,
			fail:         failing(true, "other"),
			wantDeleted:  []string{"g-0#1", "g-1#1", "g-2#1"},
			wantApplied:  9,
		},
		{
			name:         "a shutdown returns the batch to the queue at once",
			receiveCount: 2,
			cancelWork:   true,
			fail: func(ctx context.Context, _ []events.SQSMessage) []upload.Failure {
				if ctx.Err() == nil {
					t.Error("the batch context was not cancelled")
				}
				return failing(false, "g-1", "g-2")(ctx, nil)
			},
			wantReleased: map[time.Duration][]string{0: {"g-0#2", "g-1#2", "g-2#2"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := &fakeQueue{}
			h := &fakeRecorder{fail: tc.fail}
			w := newTestWorkers(q, h)
			work, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancelWork {
				cancel()
			}
			w.apply(work, testBatch("g", 3, tc.receiveCount, 3))
			if diff := cmp.Diff(tc.wantDeleted, q.deleted); diff != "" {
				t.Errorf("deleted (-want +got):\n%s", diff)
			}
			if len(q.released) != len(tc.wantReleased) {
				t.Errorf("released %v, want %v (by ceiling)", q.released, tc.wantReleased)
			}
			for ceiling, want := range tc.wantReleased {
				found := false
				for d, got := range q.released {
					if cmp.Equal(got, want) {
						found = true
						if d < 0 || d > ceiling {
							t.Errorf("released %v after %s, want a delay in [0, %s]", got, d, ceiling)
						}
					}
				}
				if !found {
					t.Errorf("released %v, want %v released in one call", q.released, want)
				}
			}
			if got := w.count.applied.Load(); got != tc.wantApplied {
				t.Errorf("applied = %d, want %d", got, tc.wantApplied)
			}
			if got := w.count.retried.Load(); got != tc.wantRetried {
				t.Errorf("retried = %d, want %d", got, tc.wantRetried)
			}
		})
	}
}

// TestSQSEventIsWhatLambdaGets: the records carry what the Lambda SQS event
// source sets and upload reads.
func TestSQSEventIsWhatLambdaGets(t *testing.T) {
	b := testBatch("ups:aud", 2, 3, 1)
	ev := sqsEvent(b)
	if len(ev.Records) != 2 {
		t.Fatalf("%d records, want 2", len(ev.Records))
	}
	for i, r := range ev.Records {
		m := b.Messages[i]
		want := events.SQSMessage{
			MessageId: m.ID, ReceiptHandle: m.Receipt, Body: string(m.Body), Md5OfBody: r.Md5OfBody,
			Attributes: map[string]string{
				"MessageGroupId": "ups:aud", "ApproximateReceiveCount": "3",
				"SentTimestamp": strconv.FormatInt(m.SentAt.UnixMilli(), 10),
			},
			EventSource: "aws:sqs", EventSourceARN: localQueueARN, AWSRegion: localRegion,
		}
		if diff := cmp.Diff(want, r); diff != "" {
			t.Errorf("record %d (-want +got):\n%s", i, diff)
		}
		if len(r.Md5OfBody) != 32 {
			t.Errorf("record %d: Md5OfBody %q is not an MD5 hex digest", i, r.Md5OfBody)
		}
	}
}

// TestCountRecordsMatchesPack: the cheap count agrees with what the
// packer put in each message, and audience messages count none.
func TestCountRecordsMatchesPack(t *testing.T) {
	var changes []audience.Change
	for i := range 2500 {
		h := strconv.Itoa(100000 + i)
		changes = append(changes, audience.Change{
			Audience: audience.Ref{Namespace: "ups", ID: "a\"h\":\"" + strconv.Itoa(i%3)},
			List:     audience.ListTypes[i%3], Op: []audience.Op{audience.OpAdd, audience.OpRemove}[i%2],
			Hash: h + "0000000000000000000000000000000000000000000000000000000000000000"[len(h):], EventTime: t0,
		})
	}
	packed, err := wiretest.Pack(changes, 16<<10)
	if err != nil {
		t.Fatal(err)
	}
	if len(packed) < 4 {
		t.Fatalf("only %d messages: the test proves little", len(packed))
	}
	for i, p := range packed {
		if got := countRecords(p.Body); got != int64(p.Records) {
			t.Errorf("message %d: countRecords = %d, the packer says %d", i, got, p.Records)
		}
	}
	msg, err := wire.EncodeAudience(audience.Ref{Namespace: "ups", ID: "h"}, `"h":"name"`, `"h":"`)
	if err != nil {
		t.Fatal(err)
	}
	if got := countRecords(msg); got != 0 {
		t.Errorf("an audience message counts %d records, want 0", got)
	}
}

// TestWorkersRunUntilStopped: workers take batches until the receive
// context ends, and a send wakes an idle one.
func TestWorkersRunUntilStopped(t *testing.T) {
	q := &fakeQueue{batches: []queue.Batch{testBatch("a", 1, 1, 1), testBatch("b", 2, 1, 1)}}
	h := &fakeRecorder{fail: failing(true)}
	w := newTestWorkers(q, h)
	w.poll = time.Hour // only a wake-up makes an idle worker look again
	recv, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.run(recv, context.Background()); close(done) }()
	waitFor(t, "both batches applied", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return len(q.deleted) == 3
	})
	q.mu.Lock()
	q.batches = append(q.batches, testBatch("c", 1, 1, 1))
	q.mu.Unlock()
	w.notify()
	waitFor(t, "the batch sent after the wake-up applied", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return slices.Contains(q.deleted, "c-0#1")
	})
	stop()
	<-done
}
