package awsshape

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/pinlist/pinlist/internal/retry"
)

// StreamsAPI is the part of *dynamodbstreams.Client the stream driver uses.
type StreamsAPI interface {
	DescribeStream(context.Context, *dynamodbstreams.DescribeStreamInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.DescribeStreamOutput, error)
	GetShardIterator(context.Context, *dynamodbstreams.GetShardIteratorInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetShardIteratorOutput, error)
	GetRecords(context.Context, *dynamodbstreams.GetRecordsInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error)
}

// StreamHandler is a function a DynamoDB stream event source invokes (the
// upload function's HandleStream).
type StreamHandler func(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error)

// Defaults of the stream driver.
const (
	// DefaultVirtualShards is how many shards the driver spreads one real
	// shard's records over. moto keeps one shard per table; a busy table's
	// stream has several (DynamoDB splits them with the partitions), each
	// with its own concurrent batches.
	DefaultVirtualShards = 4
	// DefaultStreamPollInterval is how often an idle shard is read again:
	// Lambda polls each shard four times a second.
	DefaultStreamPollInterval = 250 * time.Millisecond
	// DefaultStreamRetryDelay is the wait before a failed batch is retried.
	DefaultStreamRetryDelay = 100 * time.Millisecond
)

// StreamOptions configure a stream driver. Client, StreamARN, PartitionKey
// and Handler are required; Source and Function come from the template.
type StreamOptions struct {
	Client    StreamsAPI
	StreamARN string
	// PartitionKey is the table's hash key attribute: records with the
	// same value go to the same virtual shard, in stream order.
	PartitionKey string
	Source       StreamSource
	Function     Function
	Handler      StreamHandler
	// Shards is how many virtual shards (default DefaultVirtualShards);
	// each runs Source.ParallelizationFactor batches at once.
	Shards int
	// PollInterval: see DefaultStreamPollInterval.
	PollInterval time.Duration
	// RetryDelay: see DefaultStreamRetryDelay.
	RetryDelay time.Duration
	// OnFailure receives the records of a batch given up on (retries
	// exhausted, or older than Source.MaxRecordAge): the on-failure
	// destination. Nil only counts them.
	OnFailure func(records []events.DynamoDBEventRecord)
	// After starts a batching window's timer (time.After when nil).
	After func(time.Duration) <-chan time.Time
	// Now is the clock for record ages (time.Now when nil).
	Now func() time.Time
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// StreamStats counts what a stream driver did.
type StreamStats struct {
	// Read is how many records were read from the stream; Dropped how many
	// of them the filter dropped.
	Read, Dropped int64
	// Invocations and Delivered (records handed to the function, retries
	// counted again).
	Invocations, Delivered int64
	// Errors: invocations that returned an error or panicked;
	// PartialFailures: those that reported BatchItemFailures.
	Errors, PartialFailures int64
	// Bisected batches; Parked records (given up on).
	Bisected, Parked int64
}

// StreamDriver is a DynamoDB stream event source mapping over virtual
// shards: one reader reads the stream in order and hands each record that
// passes the filter to the virtual shard of its partition key; each
// virtual shard gathers batches of up to Source.BatchSize for at most
// Source.Window and invokes the handler with them one batch at a time, so
// one key's records reach the function in order. A failed batch is retried
// as Lambda retries it: from the lowest BatchItemFailures sequence number
// on, halved first when the function failed and Source.Bisect is set, up
// to Source.MaxRetries, then parked.
type StreamDriver struct {
	o       StreamOptions
	log     *slog.Logger
	workers []*worker

	outstanding atomic.Int64 // records read and passed, not yet done
	caughtUp    atomic.Bool  // the last read of every shard returned nothing
	held        atomic.Bool  // Hold: the reader reads nothing
	seq         atomic.Int64

	read, dropped, invocations, delivered, errs, partial, bisected, parked atomic.Int64
}

// worker is one virtual shard's batch lane.
type worker struct {
	mu     sync.Mutex
	queue  []events.DynamoDBEventRecord
	signal chan struct{}
}

func (w *worker) push(r events.DynamoDBEventRecord) {
	w.mu.Lock()
	w.queue = append(w.queue, r)
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

func (w *worker) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

func (w *worker) take(n int) []events.DynamoDBEventRecord {
	w.mu.Lock()
	defer w.mu.Unlock()
	n = min(n, len(w.queue))
	out := make([]events.DynamoDBEventRecord, n)
	copy(out, w.queue)
	w.queue = w.queue[n:]
	return out
}

// NewStream checks opts.
func NewStream(opts StreamOptions) (*StreamDriver, error) {
	switch {
	case opts.Client == nil:
		return nil, errors.New("new stream driver: Client is required")
	case opts.StreamARN == "":
		return nil, errors.New("new stream driver: StreamARN is required")
	case opts.PartitionKey == "":
		return nil, errors.New("new stream driver: PartitionKey is required")
	case opts.Handler == nil:
		return nil, errors.New("new stream driver: Handler is required")
	case opts.Source.BatchSize < 1:
		return nil, fmt.Errorf("new stream driver: Source.BatchSize %d is below 1", opts.Source.BatchSize)
	case opts.Source.ParallelizationFactor < 1:
		return nil, fmt.Errorf("new stream driver: Source.ParallelizationFactor %d is below 1", opts.Source.ParallelizationFactor)
	case opts.Function.Timeout <= 0:
		return nil, fmt.Errorf("new stream driver: Function.Timeout %s is not positive", opts.Function.Timeout)
	case opts.Shards < 0:
		return nil, fmt.Errorf("new stream driver: Shards %d is negative", opts.Shards)
	case opts.PollInterval < 0:
		return nil, fmt.Errorf("new stream driver: PollInterval %s is negative", opts.PollInterval)
	case opts.RetryDelay < 0:
		return nil, fmt.Errorf("new stream driver: RetryDelay %s is negative", opts.RetryDelay)
	}
	if opts.Source.StartingPosition != "TRIM_HORIZON" && opts.Source.StartingPosition != "LATEST" {
		return nil, fmt.Errorf("new stream driver: Source.StartingPosition %q is not TRIM_HORIZON or LATEST", opts.Source.StartingPosition)
	}
	d := &StreamDriver{o: opts, log: opts.Logger}
	if d.o.Shards == 0 {
		d.o.Shards = DefaultVirtualShards
	}
	if d.o.PollInterval == 0 {
		d.o.PollInterval = DefaultStreamPollInterval
	}
	if d.o.RetryDelay == 0 {
		d.o.RetryDelay = DefaultStreamRetryDelay
	}
	if d.o.After == nil {
		d.o.After = time.After
	}
	if d.o.Now == nil {
		d.o.Now = time.Now
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	d.workers = make([]*worker, d.o.Shards*d.o.Source.ParallelizationFactor)
	for i := range d.workers {
		d.workers[i] = &worker{signal: make(chan struct{}, 1)}
	}
	return d, nil
}

// Shards is how many virtual shards the driver runs.
func (d *StreamDriver) Shards() int { return d.o.Shards }

// Stats is a snapshot of the counters.
func (d *StreamDriver) Stats() StreamStats {
	return StreamStats{
		Read: d.read.Load(), Dropped: d.dropped.Load(),
		Invocations: d.invocations.Load(), Delivered: d.delivered.Load(),
		Errors: d.errs.Load(), PartialFailures: d.partial.Load(),
		Bisected: d.bisected.Load(), Parked: d.parked.Load(),
	}
}

// Hold stops (true) or resumes (false) reading the stream: records wait in
// the stream, as they do for a mapping that is disabled for a while. A
// benchmark holds the stream to let the ledger settle before any flush.
func (d *StreamDriver) Hold(held bool) {
	d.held.Store(held)
	if held {
		d.caughtUp.Store(false)
	}
}

// Idle reports that the reader has read everything the stream holds and
// every record it passed on is done (handled or parked).
func (d *StreamDriver) Idle() bool { return d.caughtUp.Load() && d.outstanding.Load() == 0 }

// Run reads the stream and runs the virtual shards until ctx ends; it
// returns nil then, or the error that stopped the reader.
func (d *StreamDriver) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, w := range d.workers {
		wg.Go(func() { d.work(ctx, w) })
	}
	err := d.readLoop(ctx)
	cancel()
	wg.Wait()
	if ctx.Err() != nil && err != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

var streamRetry = retry.Policy{Attempts: 5, Base: 50 * time.Millisecond, Max: time.Second}

// readLoop reads every shard of the stream, in order, until ctx ends.
func (d *StreamDriver) readLoop(ctx context.Context) error {
	iters := map[string]string{} // shard ID → next iterator
	done := map[string]bool{}    // closed shards read to their end
	for ctx.Err() == nil {
		if d.held.Load() {
			if err := retry.Sleep(ctx, d.o.PollInterval); err != nil {
				return nil
			}
			continue
		}
		var desc *dynamodbstreams.DescribeStreamOutput
		err := retry.Do(ctx, streamRetry, nil, func(ctx context.Context) error {
			var err error
			desc, err = d.o.Client.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(d.o.StreamARN)})
			return err
		}, nil)
		if err != nil {
			return ctxOr(ctx, fmt.Errorf("describe stream: %w", err))
		}
		got := 0
		for _, sh := range desc.StreamDescription.Shards {
			id := aws.ToString(sh.ShardId)
			if done[id] {
				continue
			}
			it, ok := iters[id]
			if !ok {
				if it, err = d.iterator(ctx, sh.ShardId); err != nil {
					return ctxOr(ctx, err)
				}
			}
			n, next, err := d.readShard(ctx, it)
			if err != nil {
				return ctxOr(ctx, fmt.Errorf("read shard %s: %w", id, err))
			}
			got += n
			if next == "" {
				done[id] = true
			}
			iters[id] = next
		}
		if got > 0 || d.held.Load() {
			d.caughtUp.Store(false)
			continue
		}
		d.caughtUp.Store(true)
		if err := retry.Sleep(ctx, d.o.PollInterval); err != nil {
			return nil
		}
	}
	return nil
}

func ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (d *StreamDriver) iterator(ctx context.Context, shard *string) (string, error) {
	var out *dynamodbstreams.GetShardIteratorOutput
	err := retry.Do(ctx, streamRetry, nil, func(ctx context.Context) error {
		var err error
		out, err = d.o.Client.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{
			StreamArn: aws.String(d.o.StreamARN), ShardId: shard,
			ShardIteratorType: types.ShardIteratorType(d.o.Source.StartingPosition),
		})
		return err
	}, nil)
	if err != nil {
		return "", fmt.Errorf("get the iterator of shard %s: %w", aws.ToString(shard), err)
	}
	return aws.ToString(out.ShardIterator), nil
}

// readShard reads one GetRecords page at it and dispatches its records; it
// returns how many it read and the next iterator ("" at a closed shard's
// end).
func (d *StreamDriver) readShard(ctx context.Context, it string) (int, string, error) {
	var out *dynamodbstreams.GetRecordsOutput
	err := retry.Do(ctx, streamRetry, nil, func(ctx context.Context) error {
		var err error
		out, err = d.o.Client.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: aws.String(it)})
		return err
	}, nil)
	if err != nil {
		return 0, it, err
	}
	for _, r := range out.Records {
		rec, err := lambdaRecord(r, d.o.StreamARN)
		if err != nil {
			return 0, it, err
		}
		d.read.Add(1)
		pass, err := d.o.Source.Filter.MatchDynamoDB(rec)
		if err != nil {
			return 0, it, err
		}
		if !pass {
			d.dropped.Add(1)
			continue
		}
		d.outstanding.Add(1)
		d.workers[d.workerOf(rec)].push(rec)
	}
	next := aws.ToString(out.NextShardIterator)
	if next == "" {
		return len(out.Records), "", nil
	}
	return len(out.Records), next, nil
}

// workerOf is the lane of a record: the hash of its partition key, so one
// key's records stay in one lane, in order.
func (d *StreamDriver) workerOf(r events.DynamoDBEventRecord) int {
	h := fnv.New32a()
	k := r.Change.Keys[d.o.PartitionKey]
	if k.DataType() == events.DataTypeString {
		h.Write([]byte(k.String()))
	} else {
		h.Write([]byte(fmt.Sprint(k)))
	}
	return int(h.Sum32() % uint32(len(d.workers)))
}

// work runs one lane: gather a batch, process it, repeat.
func (d *StreamDriver) work(ctx context.Context, w *worker) {
	for {
		if w.len() == 0 {
			select {
			case <-ctx.Done():
				return
			case <-w.signal:
				continue
			}
		}
		if d.o.Source.Window > 0 && w.len() < d.o.Source.BatchSize {
			window := d.o.After(d.o.Source.Window)
		gather:
			for w.len() < d.o.Source.BatchSize {
				select {
				case <-ctx.Done():
					return
				case <-window:
					break gather
				case <-w.signal:
				}
			}
		}
		batch := w.take(d.o.Source.BatchSize)
		d.process(ctx, batch, 0)
	}
}

// process invokes the function with batch until it is done: retried from
// the first failed record, halved on a function error when Bisect is set,
// parked when retries run out or records grow too old.
func (d *StreamDriver) process(ctx context.Context, batch []events.DynamoDBEventRecord, retries int) {
	for len(batch) > 0 {
		if ctx.Err() != nil {
			d.outstanding.Add(-int64(len(batch)))
			return
		}
		batch = d.dropExpired(batch)
		if len(batch) == 0 {
			return
		}
		d.invocations.Add(1)
		d.delivered.Add(int64(len(batch)))
		resp, err := callStream(ctx, d.o.Function, d.o.Handler, events.DynamoDBEvent{Records: batch}, "stream-"+strconv.FormatInt(d.seq.Add(1), 10))
		from := len(batch) // index of the first record to retry
		if err != nil {
			d.errs.Add(1)
			d.log.Warn("stream batch failed", "records", len(batch), "retries", retries, "error", err.Error())
			from = 0
			if d.o.Source.Bisect && len(batch) > 1 && d.retriesLeft(retries) {
				d.bisected.Add(1)
				half := len(batch) / 2
				d.process(ctx, batch[:half], retries+1)
				d.process(ctx, batch[half:], retries+1)
				return
			}
		} else if d.o.Source.ReportBatchItemFailures && len(resp.BatchItemFailures) > 0 {
			d.partial.Add(1)
			from = firstFailed(batch, resp.BatchItemFailures)
		}
		d.outstanding.Add(-int64(from))
		batch = batch[from:]
		if len(batch) == 0 {
			return
		}
		if !d.retriesLeft(retries) {
			d.park(batch, "retries exhausted")
			return
		}
		retries++
		if retry.Sleep(ctx, d.o.RetryDelay) != nil {
			d.outstanding.Add(-int64(len(batch)))
			return
		}
	}
}

func (d *StreamDriver) retriesLeft(retries int) bool {
	return d.o.Source.MaxRetries < 0 || retries < d.o.Source.MaxRetries
}

// firstFailed is the index of the lowest failed sequence number; an
// identifier that names no record of the batch fails the whole batch, as
// in Lambda.
func firstFailed(batch []events.DynamoDBEventRecord, failures []events.DynamoDBBatchItemFailure) int {
	at := make(map[string]int, len(batch))
	for i, r := range batch {
		at[r.Change.SequenceNumber] = i
	}
	first := len(batch)
	for _, f := range failures {
		i, ok := at[f.ItemIdentifier]
		if !ok {
			return 0
		}
		first = min(first, i)
	}
	return first
}

func (d *StreamDriver) dropExpired(batch []events.DynamoDBEventRecord) []events.DynamoDBEventRecord {
	if d.o.Source.MaxRecordAge <= 0 {
		return batch
	}
	now := d.o.Now()
	var old []events.DynamoDBEventRecord
	keep := batch[:0:0]
	for _, r := range batch {
		if t := r.Change.ApproximateCreationDateTime.Time; !t.IsZero() && now.Sub(t) > d.o.Source.MaxRecordAge {
			old = append(old, r)
			continue
		}
		keep = append(keep, r)
	}
	if len(old) > 0 {
		d.park(old, "older than MaximumRecordAgeInSeconds")
	}
	return keep
}

func (d *StreamDriver) park(records []events.DynamoDBEventRecord, why string) {
	d.log.Warn("stream records parked (the on-failure destination)", "records", len(records), "why", why)
	d.parked.Add(int64(len(records)))
	if d.o.OnFailure != nil {
		d.o.OnFailure(records)
	}
	d.outstanding.Add(-int64(len(records)))
}

// callStream invokes h as Lambda would (see callSQS).
func callStream(ctx context.Context, fn Function, h StreamHandler, ev events.DynamoDBEvent, id string) (resp events.DynamoDBEventResponse, err error) {
	ctx, cancel := lambdaContext(ctx, fn, id)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("function %s panicked: %v", fn.Name, r)
		}
	}()
	return h(ctx, ev)
}

// lambdaRecord converts a stream record to Lambda's event shape.
func lambdaRecord(r types.Record, arn string) (events.DynamoDBEventRecord, error) {
	c := r.Dynamodb
	if c == nil {
		return events.DynamoDBEventRecord{}, errors.New("stream record without its dynamodb part")
	}
	keys, err := lambdaAttrs(c.Keys)
	if err != nil {
		return events.DynamoDBEventRecord{}, fmt.Errorf("stream record keys: %w", err)
	}
	newImage, err := lambdaAttrs(c.NewImage)
	if err != nil {
		return events.DynamoDBEventRecord{}, fmt.Errorf("stream record new image: %w", err)
	}
	oldImage, err := lambdaAttrs(c.OldImage)
	if err != nil {
		return events.DynamoDBEventRecord{}, fmt.Errorf("stream record old image: %w", err)
	}
	rec := events.DynamoDBEventRecord{
		AWSRegion:      aws.ToString(r.AwsRegion),
		EventID:        aws.ToString(r.EventID),
		EventName:      string(r.EventName),
		EventSource:    "aws:dynamodb",
		EventVersion:   aws.ToString(r.EventVersion),
		EventSourceArn: arn,
		Change: events.DynamoDBStreamRecord{
			Keys: keys, NewImage: newImage, OldImage: oldImage,
			SequenceNumber: aws.ToString(c.SequenceNumber),
			SizeBytes:      aws.ToInt64(c.SizeBytes),
			StreamViewType: string(c.StreamViewType),
		},
	}
	if c.ApproximateCreationDateTime != nil {
		rec.Change.ApproximateCreationDateTime = events.SecondsEpochTime{Time: *c.ApproximateCreationDateTime}
	}
	return rec, nil
}

func lambdaAttrs(in map[string]types.AttributeValue) (map[string]events.DynamoDBAttributeValue, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make(map[string]events.DynamoDBAttributeValue, len(in))
	for k, v := range in {
		a, err := lambdaAttr(v)
		if err != nil {
			return nil, fmt.Errorf("attribute %s: %w", k, err)
		}
		out[k] = a
	}
	return out, nil
}

func lambdaAttr(v types.AttributeValue) (events.DynamoDBAttributeValue, error) {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return events.NewStringAttribute(v.Value), nil
	case *types.AttributeValueMemberN:
		return events.NewNumberAttribute(v.Value), nil
	case *types.AttributeValueMemberB:
		return events.NewBinaryAttribute(v.Value), nil
	case *types.AttributeValueMemberBOOL:
		return events.NewBooleanAttribute(v.Value), nil
	case *types.AttributeValueMemberNULL:
		return events.NewNullAttribute(), nil
	case *types.AttributeValueMemberSS:
		return events.NewStringSetAttribute(v.Value), nil
	case *types.AttributeValueMemberNS:
		return events.NewNumberSetAttribute(v.Value), nil
	case *types.AttributeValueMemberBS:
		return events.NewBinarySetAttribute(v.Value), nil
	case *types.AttributeValueMemberL:
		l := make([]events.DynamoDBAttributeValue, len(v.Value))
		for i, x := range v.Value {
			a, err := lambdaAttr(x)
			if err != nil {
				return events.DynamoDBAttributeValue{}, err
			}
			l[i] = a
		}
		return events.NewListAttribute(l), nil
	case *types.AttributeValueMemberM:
		m, err := lambdaAttrs(v.Value)
		if err != nil {
			return events.DynamoDBAttributeValue{}, err
		}
		return events.NewMapAttribute(m), nil
	default:
		return events.DynamoDBAttributeValue{}, fmt.Errorf("attribute type %T is not supported", v)
	}
}
