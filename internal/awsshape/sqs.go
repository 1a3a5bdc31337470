package awsshape

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/pinlist/pinlist/internal/retry"
)

// SQSAPI is the part of *sqs.Client the SQS driver uses.
type SQSAPI interface {
	ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(context.Context, *sqs.DeleteMessageBatchInput, ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
	ChangeMessageVisibilityBatch(context.Context, *sqs.ChangeMessageVisibilityBatchInput, ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
}

// SQSHandler is a function an SQS event source invokes (the apply
// function's HandleApply).
type SQSHandler func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error)

// Defaults of the drivers.
const (
	// DefaultSQSConcurrency is how many batches an SQS event source has in
	// flight when neither ScalingConfig.MaximumConcurrency nor the
	// function's reserved concurrency bounds it: Lambda starts with five
	// pollers (and scales up with the backlog, which the driver does not).
	DefaultSQSConcurrency = 5
	// DefaultRedeliverAfter is how long a failed message stays invisible:
	// it stands in for the queue's visibility timeout (17 minutes in
	// template.yaml), shortened so a benchmark sees the redelivery.
	DefaultRedeliverAfter = time.Second
	// DefaultSQSPollInterval is the wait after an empty receive.
	DefaultSQSPollInterval = 50 * time.Millisecond
)

// SQSOptions configure an SQS driver. Client, QueueURL and Handler are
// required; Source and Function come from the template.
type SQSOptions struct {
	Client   SQSAPI
	QueueURL string
	// QueueARN is the records' eventSourceARN.
	QueueARN string
	Source   SQSSource
	Function Function
	Handler  SQSHandler
	// Concurrency is how many batches are gathered and invoked at once.
	// Default: Source.MaxConcurrency, else Function.ReservedConcurrency,
	// else DefaultSQSConcurrency.
	Concurrency int
	// RedeliverAfter is the visibility a failed message is given (see
	// DefaultRedeliverAfter).
	RedeliverAfter time.Duration
	// PollInterval is the wait after an empty receive.
	PollInterval time.Duration
	// After starts a batching window's timer (time.After when nil); tests
	// fire it by hand.
	After func(time.Duration) <-chan time.Time
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// SQSStats counts what an SQS driver did.
type SQSStats struct {
	// Received is how many messages the pollers received (redeliveries
	// counted again).
	Received    int64
	Invocations int64
	// Messages is how many messages were handed to the function in all
	// (redeliveries counted again).
	Messages int64
	// Deleted messages succeeded; Failed were reported in
	// BatchItemFailures (or failed with the whole batch) and made visible
	// again.
	Deleted, Failed int64
	// Errors is how many invocations returned an error (or panicked).
	Errors int64
}

// SQSDriver is an SQS event source mapping: pollers that gather batches of
// up to Source.BatchSize messages for at most Source.Window (from the
// first message), invoke the handler with the function's timeout, delete
// what succeeded and make the rest visible again.
type SQSDriver struct {
	o           SQSOptions
	concurrency int
	log         *slog.Logger

	busy                                                         atomic.Int64
	received, invocations, messages, deleted, failed, errorCount atomic.Int64
	seq                                                          atomic.Int64
}

// NewSQS checks opts.
func NewSQS(opts SQSOptions) (*SQSDriver, error) {
	switch {
	case opts.Client == nil:
		return nil, errors.New("new SQS driver: Client is required")
	case opts.QueueURL == "":
		return nil, errors.New("new SQS driver: QueueURL is required")
	case opts.Handler == nil:
		return nil, errors.New("new SQS driver: Handler is required")
	case opts.Source.BatchSize < 1:
		return nil, fmt.Errorf("new SQS driver: Source.BatchSize %d is below 1", opts.Source.BatchSize)
	case opts.Function.Timeout <= 0:
		return nil, fmt.Errorf("new SQS driver: Function.Timeout %s is not positive", opts.Function.Timeout)
	case opts.Concurrency < 0:
		return nil, fmt.Errorf("new SQS driver: Concurrency %d is negative", opts.Concurrency)
	case opts.RedeliverAfter < 0:
		return nil, fmt.Errorf("new SQS driver: RedeliverAfter %s is negative", opts.RedeliverAfter)
	case opts.PollInterval < 0:
		return nil, fmt.Errorf("new SQS driver: PollInterval %s is negative", opts.PollInterval)
	}
	d := &SQSDriver{o: opts, log: opts.Logger}
	d.concurrency = firstPositive(opts.Concurrency, opts.Source.MaxConcurrency, opts.Function.ReservedConcurrency, DefaultSQSConcurrency)
	if d.o.RedeliverAfter == 0 {
		d.o.RedeliverAfter = DefaultRedeliverAfter
	}
	if d.o.PollInterval == 0 {
		d.o.PollInterval = DefaultSQSPollInterval
	}
	if d.o.After == nil {
		d.o.After = time.After
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	return d, nil
}

func firstPositive(vs ...int) int {
	for _, v := range vs {
		if v > 0 {
			return v
		}
	}
	return 0
}

// Concurrency is how many pollers the driver runs.
func (d *SQSDriver) Concurrency() int { return d.concurrency }

// Stats is a snapshot of the counters.
func (d *SQSDriver) Stats() SQSStats {
	return SQSStats{
		Received: d.received.Load(), Invocations: d.invocations.Load(), Messages: d.messages.Load(),
		Deleted: d.deleted.Load(), Failed: d.failed.Load(), Errors: d.errorCount.Load(),
	}
}

// Idle reports that no poller holds a message (gathering or invoking).
func (d *SQSDriver) Idle() bool { return d.busy.Load() == 0 }

// Run runs the pollers until ctx ends, then returns nil; it returns an
// error only when SQS fails in a way a retry does not mend (ctx still
// running).
func (d *SQSDriver) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, d.concurrency)
	for i := range d.concurrency {
		wg.Go(func() {
			if err := d.poll(ctx); err != nil && ctx.Err() == nil {
				errs[i] = err
				cancel()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// sqsRetry bounds retries of SQS calls that fail (moto under load).
var sqsRetry = retry.Policy{Attempts: 5, Base: 50 * time.Millisecond, Max: time.Second}

func (d *SQSDriver) poll(ctx context.Context) error {
	for ctx.Err() == nil {
		batch, err := d.gather(ctx)
		if err != nil {
			d.release(batch)
			return err
		}
		if len(batch) == 0 {
			continue
		}
		if ctx.Err() != nil {
			d.release(batch)
			return nil
		}
		if err := d.invoke(ctx, batch); err != nil {
			return err
		}
	}
	return nil
}

// gather receives up to BatchSize messages: it returns when the batch is
// full, when the window (started at the first message) ends, or at once
// after the first receive when the window is zero.
func (d *SQSDriver) gather(ctx context.Context) ([]types.Message, error) {
	var batch []types.Message
	var window <-chan time.Time
	for len(batch) < d.o.Source.BatchSize {
		var out *sqs.ReceiveMessageOutput
		err := retry.Do(ctx, sqsRetry, nil, func(ctx context.Context) error {
			var err error
			out, err = d.o.Client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
				QueueUrl:                    aws.String(d.o.QueueURL),
				MaxNumberOfMessages:         int32(min(10, d.o.Source.BatchSize-len(batch))),
				MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
			})
			return err
		}, nil)
		if err != nil {
			if ctx.Err() != nil {
				return batch, nil
			}
			return batch, fmt.Errorf("receive from the queue: %w", err)
		}
		d.received.Add(int64(len(out.Messages)))
		if len(out.Messages) > 0 && len(batch) == 0 {
			d.busy.Add(1)
			if d.o.Source.Window == 0 {
				return out.Messages, nil
			}
			window = d.o.After(d.o.Source.Window)
		}
		batch = append(batch, out.Messages...)
		if len(batch) >= d.o.Source.BatchSize {
			break
		}
		if len(out.Messages) > 0 {
			// Keep receiving while messages come; check the window between.
			select {
			case <-window:
				return batch, nil
			default:
				continue
			}
		}
		select {
		case <-ctx.Done():
			return batch, nil
		case <-window: // nil before the first message: never fires
			return batch, nil
		case <-time.After(d.o.PollInterval):
		}
	}
	return batch, nil
}

// release makes the messages of a batch that was never invoked visible
// again (the driver is stopping).
func (d *SQSDriver) release(batch []types.Message) {
	if len(batch) == 0 {
		return
	}
	defer d.busy.Add(-1)
	_ = d.changeVisibility(context.Background(), batch, 0)
}

// invoke hands batch to the function and settles it.
func (d *SQSDriver) invoke(ctx context.Context, batch []types.Message) error {
	defer d.busy.Add(-1)
	ev := events.SQSEvent{Records: make([]events.SQSMessage, len(batch))}
	for i, m := range batch {
		ev.Records[i] = events.SQSMessage{
			MessageId:      aws.ToString(m.MessageId),
			ReceiptHandle:  aws.ToString(m.ReceiptHandle),
			Body:           aws.ToString(m.Body),
			Md5OfBody:      aws.ToString(m.MD5OfBody),
			Attributes:     m.Attributes,
			EventSource:    "aws:sqs",
			EventSourceARN: d.o.QueueARN,
			AWSRegion:      "us-east-1",
		}
	}
	d.invocations.Add(1)
	d.messages.Add(int64(len(batch)))
	resp, err := callSQS(ctx, d.o.Function, d.o.Handler, ev, "sqs-"+strconv.FormatInt(d.seq.Add(1), 10))
	failed := map[string]bool{}
	switch {
	case err != nil:
		d.errorCount.Add(1)
		d.log.Warn("SQS batch failed as a whole; every message is delivered again", "messages", len(batch), "error", err.Error())
		for _, m := range batch {
			failed[aws.ToString(m.MessageId)] = true
		}
	case d.o.Source.ReportBatchItemFailures:
		ids := map[string]bool{}
		for _, m := range batch {
			ids[aws.ToString(m.MessageId)] = true
		}
		for _, f := range resp.BatchItemFailures {
			if !ids[f.ItemIdentifier] {
				// Lambda treats an identifier it did not send as a failure
				// of the whole batch.
				d.log.Warn("SQS batch response names a message not in the batch; the whole batch fails", "messages", len(batch))
				for id := range ids {
					failed[id] = true
				}
				break
			}
			failed[f.ItemIdentifier] = true
		}
	}
	var ok, bad []types.Message
	for _, m := range batch {
		if failed[aws.ToString(m.MessageId)] {
			bad = append(bad, m)
		} else {
			ok = append(ok, m)
		}
	}
	settle := context.WithoutCancel(ctx)
	if err := d.delete(settle, ok); err != nil {
		return err
	}
	d.deleted.Add(int64(len(ok)))
	d.failed.Add(int64(len(bad)))
	return d.changeVisibility(settle, bad, d.o.RedeliverAfter)
}

// callSQS invokes h as Lambda would: with the function's timeout as the
// context's deadline and a Lambda context; a panic is a function error.
func callSQS(ctx context.Context, fn Function, h SQSHandler, ev events.SQSEvent, id string) (resp events.SQSEventResponse, err error) {
	ctx, cancel := lambdaContext(ctx, fn, id)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("function %s panicked: %v", fn.Name, r)
		}
	}()
	return h(ctx, ev)
}

func lambdaContext(ctx context.Context, fn Function, id string) (context.Context, context.CancelFunc) {
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{AwsRequestID: id})
	return context.WithTimeout(ctx, fn.Timeout)
}

func (d *SQSDriver) delete(ctx context.Context, msgs []types.Message) error {
	for start := 0; start < len(msgs); start += 10 {
		part := msgs[start:min(start+10, len(msgs))]
		entries := make([]types.DeleteMessageBatchRequestEntry, len(part))
		for i, m := range part {
			entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
		}
		err := retry.Do(ctx, sqsRetry, nil, func(ctx context.Context) error {
			out, err := d.o.Client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(d.o.QueueURL), Entries: entries})
			if err == nil && len(out.Failed) > 0 {
				err = fmt.Errorf("%d entries failed, the first: %s", len(out.Failed), aws.ToString(out.Failed[0].Message))
			}
			return err
		}, nil)
		if err != nil {
			return fmt.Errorf("delete %d handled messages: %w", len(part), err)
		}
	}
	return nil
}

func (d *SQSDriver) changeVisibility(ctx context.Context, msgs []types.Message, after time.Duration) error {
	for start := 0; start < len(msgs); start += 10 {
		part := msgs[start:min(start+10, len(msgs))]
		entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(part))
		for i, m := range part {
			entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{
				Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle,
				VisibilityTimeout: int32(after / time.Second),
			}
		}
		err := retry.Do(ctx, sqsRetry, nil, func(ctx context.Context) error {
			_, err := d.o.Client.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(d.o.QueueURL), Entries: entries})
			return err
		}, nil)
		if err != nil {
			return fmt.Errorf("make %d failed messages visible again: %w", len(part), err)
		}
	}
	return nil
}
