package upload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/pinlist/pinlist/internal/emf"
	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/pinterest"
	"github.com/pinlist/pinlist/internal/token"
)

// This file holds the AWS shape's Lambda adapters (issue 11):
//
//	ingest -> SQS (standard) -> apply function: HandleApply (Handler.Apply)
//	ledger table -> DynamoDB Streams -> upload function: Flusher.HandleStream
//	EventBridge schedule (every minute) -> upload function: Flusher.HandleSchedule
//
// The upload function's invocations run at once (one per stream shard, and
// the sweep), so the Flusher takes a list's lease in the table around its
// flush (Leases): no two invocations flush one list at once.

// HandleApply is the apply Lambda function's entry point (standard SQS
// event source, ReportBatchItemFailures): it records the batch in the ledger
// and name store (Apply) and reports every message not recorded in
// BatchItemFailures, to be delivered again (a message that cannot be decoded
// fails on every delivery until the queue's redrive policy moves it to the
// dead-letter queue). It writes nothing to Pinterest: the rows it makes
// pending reach the upload function through the table's stream. It never
// returns an error.
func (h *Handler) HandleApply(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	a := h.Apply(ctx, ev.Records)
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	for _, f := range a.Failed {
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: f.ID})
	}
	return resp, nil
}

// Leases is what the Flusher takes around each list's flush
// (*ledger.DynamoLeases): Acquire holds list's lease until the given time or
// until release is called, and answers an error wrapping ledger.ErrLeaseHeld
// when another holder's lease runs.
type Leases interface {
	Acquire(ctx context.Context, list ledger.List, until time.Time) (release func(context.Context) error, err error)
}

// DefaultLeaseTTL is how long a list's lease holds when the flush's context
// has no deadline (a Lambda invocation's lease ends at its deadline).
const DefaultLeaseTTL = 15 * time.Minute

// leaseSlack is added to the invocation's deadline for the lease's end, for
// clock differences between the invocations' hosts.
const leaseSlack = 2 * time.Second

// FlusherOptions configures a Flusher. Handler and Leases are required.
type FlusherOptions struct {
	// Handler flushes (its Options say how); its Logger, Metrics and Now are
	// the Flusher's too.
	Handler *Handler
	// Leases keep two invocations from flushing one list at once.
	Leases Leases
	// LeaseTTL is how long a lease holds when the context has no deadline.
	// Default DefaultLeaseTTL.
	LeaseTTL time.Duration
}

// Flusher is the upload Lambda function: it flushes the lists named in
// DynamoDB stream records (HandleStream) and, on the schedule, every list
// with pending rows (HandleSchedule), each list under its lease.
type Flusher struct {
	h        *Handler
	leases   Leases
	leaseTTL time.Duration
}

// NewFlusher checks opts and fills in defaults.
func NewFlusher(opts FlusherOptions) (*Flusher, error) {
	switch {
	case opts.Handler == nil:
		return nil, errors.New("new upload flusher: FlusherOptions.Handler is required")
	case opts.Leases == nil:
		return nil, errors.New("new upload flusher: FlusherOptions.Leases is required")
	case opts.LeaseTTL < 0:
		return nil, fmt.Errorf("new upload flusher: FlusherOptions.LeaseTTL %s is negative", opts.LeaseTTL)
	}
	if opts.LeaseTTL == 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	return &Flusher{h: opts.Handler, leases: opts.Leases, leaseTTL: opts.LeaseTTL}, nil
}

// outcome is what became of one list in a leased flush.
type outcome uint8

const (
	flushedOK outcome = iota
	// leaseHeld: another invocation is flushing the list; the rows it does
	// not see stay pending for the next sweep.
	leaseHeld
	// failedRetryable: the list's flush failed for a reason that may pass
	// (429s or 5xx after the client's retries, network, DynamoDB, the
	// deadline): worth delivering its stream records again.
	failedRetryable
	// failedFinal: retrying soon changes nothing (a 400, a refused token);
	// the rows stay pending for the sweep once the cause is fixed.
	failedFinal
)

// flushed is what a leased flush did.
type flushed struct {
	Flushed
	held     int
	outcomes map[ledger.List]outcome
}

// HandleStream flushes the lists named in a batch of ledger stream records
// (the table's event source filter passes only rows just made pending and
// the ends of Applies that made some, whose sort key is their List.Key():
// see ledger.StreamList). Records of other items or with keys that do
// not parse are skipped with a warning (delivering them again cannot help).
// The records of a list whose flush failed for a retryable reason are
// reported in BatchItemFailures, so Lambda delivers them again; every other
// failure only leaves rows pending, which the schedule's sweep sends. It
// never returns an error.
func (f *Flusher) HandleStream(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	logger := f.logger(ctx)
	seqs := map[ledger.List][]string{}
	var lists []ledger.List
	for _, r := range ev.Records {
		l, err := ledger.StreamList(r.Change.Keys)
		if err != nil {
			logger.LogAttrs(ctx, slog.LevelWarn, "stream record skipped", slog.String("event_id", r.EventID), slog.String("error", err.Error()))
			continue
		}
		if _, ok := seqs[l]; !ok {
			lists = append(lists, l)
		}
		seqs[l] = append(seqs[l], r.Change.SequenceNumber)
	}
	res := f.flushLeased(ctx, logger, lists)
	resp := events.DynamoDBEventResponse{BatchItemFailures: []events.DynamoDBBatchItemFailure{}}
	for _, l := range lists {
		if res.outcomes[l] == failedRetryable {
			for _, s := range seqs[l] {
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.DynamoDBBatchItemFailure{ItemIdentifier: s})
			}
		}
	}
	logger.LogAttrs(ctx, slog.LevelInfo, "stream batch flushed",
		slog.Int("records", len(ev.Records)), slog.Int("lists", len(lists)),
		slog.Int("lists_lease_held", res.held), slog.Int("records_failed", len(resp.BatchItemFailures)))
	return resp, nil
}

// Sweep is what HandleSchedule did.
type Sweep struct {
	// Lists is how many lists had pending rows.
	Lists int `json:"lists"`
	// LeaseHeld is how many of them another invocation was flushing.
	LeaseHeld int `json:"lists_lease_held"`
	// RecordsSent counts the records sent to Pinterest.
	RecordsSent int64 `json:"records_sent"`
	// ListFailures counts the lists that failed or were not tried.
	ListFailures int `json:"list_failures"`
}

// HandleSchedule is the sweep (an EventBridge schedule, every minute): it
// flushes every list with pending rows, each under its lease. Rows keep
// "not yet sent" themselves, so the sweep sends what a failed flush, an
// expired or parked stream batch or a skipped lease left. It fails only when
// the lists cannot be listed (the function's Errors alarm); one list's
// failure is logged and counted and the next sweep tries again.
func (f *Flusher) HandleSchedule(ctx context.Context, _ events.EventBridgeEvent) (Sweep, error) {
	logger := f.logger(ctx)
	lists, err := f.h.o.Ledger.PendingLists(ctx)
	if err != nil {
		err = fmt.Errorf("sweep: list the lists with pending rows: %w", err)
		logger.LogAttrs(ctx, slog.LevelError, "sweep failed", slog.String("error", err.Error()))
		return Sweep{}, err
	}
	res := f.flushLeased(ctx, logger, lists)
	s := Sweep{Lists: len(lists), LeaseHeld: res.held, RecordsSent: res.RecordsSent, ListFailures: res.ListFailures + res.NotFlushed}
	logger.LogAttrs(ctx, slog.LevelInfo, "sweep done", slog.Int("lists", s.Lists), slog.Int("lists_lease_held", s.LeaseHeld),
		slog.Int64("records_sent", s.RecordsSent), slog.Int("list_failures", s.ListFailures))
	return s, nil
}

// Handle is the upload function's one entry point: it tells a DynamoDB
// stream batch (Records from "aws:dynamodb") from a schedule event
// (EventBridge's "Scheduled Event") and hands it to HandleStream or
// HandleSchedule. Anything else is an error.
func (f *Flusher) Handle(ctx context.Context, payload json.RawMessage) (any, error) {
	var probe struct {
		Records []struct {
			EventSource string `json:"eventSource"`
		} `json:"Records"`
		DetailType string `json:"detail-type"`
		Source     string `json:"source"`
	}
	if err := json.Unmarshal(payload, &probe); err != nil {
		return nil, fmt.Errorf("upload: decode the event: %w", err)
	}
	switch {
	case len(probe.Records) > 0 && probe.Records[0].EventSource == "aws:dynamodb":
		var ev events.DynamoDBEvent
		if err := json.Unmarshal(payload, &ev); err != nil {
			return nil, fmt.Errorf("upload: decode the DynamoDB stream event: %w", err)
		}
		return f.HandleStream(ctx, ev)
	case probe.DetailType == "Scheduled Event":
		var ev events.EventBridgeEvent
		if err := json.Unmarshal(payload, &ev); err != nil {
			return nil, fmt.Errorf("upload: decode the schedule event: %w", err)
		}
		return f.HandleSchedule(ctx, ev)
	case len(probe.Records) > 0:
		return nil, fmt.Errorf("upload: records from %q, want a DynamoDB stream (aws:dynamodb)", probe.Records[0].EventSource)
	default:
		return nil, fmt.Errorf("upload: event is neither a DynamoDB stream batch nor a scheduled event (source %q, detail-type %q)", probe.Source, probe.DetailType)
	}
}

// logger is the Handler's logger with the invocation's request ID.
func (f *Flusher) logger(ctx context.Context) *slog.Logger {
	logger := f.h.o.Logger
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		logger = logger.With(slog.String("request_id", lc.AwsRequestID))
	}
	return logger
}

// flushLeased flushes lists one by one, each under its lease, and writes one
// EMF line for all of them (the flush metrics, RateLimited: the 429 replies
// Pinterest gave, and ListsLeaseHeld).
func (f *Flusher) flushLeased(ctx context.Context, logger *slog.Logger, lists []ledger.List) flushed {
	lists = slices.Clone(lists)
	slices.SortFunc(lists, func(x, y ledger.List) int { return strings.Compare(x.Key(), y.Key()) })
	lists = slices.Compact(lists)
	until := f.h.o.Now().Add(f.leaseTTL)
	if dl, ok := ctx.Deadline(); ok {
		until = dl.Add(leaseSlack)
	}
	before := f.h.o.Client.Stats()
	res := flushed{outcomes: make(map[ledger.List]outcome, len(lists))}
	var stopped outcome // set once a flush stopped: every list after it gets it
	stop := false
	for _, l := range lists {
		if stop {
			res.outcomes[l] = stopped
			res.NotFlushed++
			continue
		}
		release, err := f.leases.Acquire(ctx, l, until)
		if errors.Is(err, ledger.ErrLeaseHeld) {
			res.outcomes[l] = leaseHeld
			res.held++
			logger.LogAttrs(ctx, slog.LevelInfo, "list skipped: another invocation is flushing it; the sweep sends what it misses", slog.String("list", l.Key()))
			continue
		}
		if err != nil {
			res.outcomes[l] = failedRetryable
			res.ListFailures++
			logger.LogAttrs(ctx, slog.LevelWarn, "list not flushed; its rows stay pending", slog.String("list", l.Key()), slog.String("error", err.Error()))
			continue
		}
		fl, ferr := f.h.flush(ctx, logger, []ledger.List{l}, false)
		// Released even when ctx ended: otherwise the list waits out the lease.
		if rerr := release(context.WithoutCancel(ctx)); rerr != nil {
			logger.LogAttrs(ctx, slog.LevelWarn, "lease not released; it expires by itself", slog.String("list", l.Key()), slog.String("error", rerr.Error()))
		}
		res.add(fl)
		switch {
		case ferr == nil:
			res.outcomes[l] = flushedOK
		case fl.NotFlushed > 0:
			// The flush stopped (deadline near, token refused): the lists
			// after this one would meet the same stop.
			stop, stopped = true, classify(ferr)
			res.outcomes[l] = stopped
		default:
			res.outcomes[l] = classify(ferr)
		}
	}
	after := f.h.o.Client.Stats()
	res.APICalls, res.Retries = after.Calls-before.Calls, after.Retries-before.Retries
	metrics := setMetric(res.metrics(), count("RateLimited", after.RateLimited-before.RateLimited))
	f.h.writeMetrics(ctx, logger, append(metrics, count("ListsLeaseHeld", int64(res.held))))
	return res
}

// setMetric sets m's value in ms, or appends it when ms has no metric of
// its name (one name per EMF line).
func setMetric(ms []emf.Metric, m emf.Metric) []emf.Metric {
	for i := range ms {
		if ms[i].Name == m.Name {
			ms[i] = m
			return ms
		}
	}
	return append(ms, m)
}

// add sums a flush's counts into res (API calls are counted over the whole
// leased flush).
func (res *flushed) add(f Flushed) {
	res.Lists += f.Lists
	res.RecordsSent += f.RecordsSent
	res.ListCalls += f.ListCalls
	res.ListsCreated += f.ListsCreated
	res.ListFailures += f.ListFailures
	res.NotFlushed += f.NotFlushed
	res.Held += f.Held
}

// classify tells a failure worth a redelivery of the list's stream records
// from one that only waits for the sweep.
func classify(err error) outcome {
	var apiErr *pinterest.APIError
	switch {
	case errors.Is(err, errStillUnauthorized), errors.Is(err, token.ErrExpired):
		return failedFinal
	case errors.Is(err, errDeadlineNear), errors.Is(err, context.DeadlineExceeded):
		return failedRetryable
	case errors.As(err, &apiErr):
		return outcomeOf(pinterest.IsRetryable(err))
	default:
		// The ledger (DynamoDB), the token store, the network.
		return failedRetryable
	}
}

func outcomeOf(retryable bool) outcome {
	if retryable {
		return failedRetryable
	}
	return failedFinal
}

// errApplyOnly is what every ApplyOnly call answers.
var errApplyOnly = errors.New("this handler only applies batches to the ledger (the apply function): it has no Pinterest client")

// ApplyOnly is the Client of a Handler that only applies (the apply
// function, which has neither Pinterest settings nor access to the token):
// every call fails with an error saying so, and Stats is zero. Such a
// Handler must only Apply or HandleApply, never flush.
type ApplyOnly struct{}

var _ Client = ApplyOnly{}

func (ApplyOnly) CustomerLists(context.Context) iter.Seq2[*pinterest.CustomerList, error] {
	return func(yield func(*pinterest.CustomerList, error) bool) { yield(nil, errApplyOnly) }
}

func (ApplyOnly) CreateCustomerList(context.Context, pinterest.CustomerListCreate) (*pinterest.CustomerList, error) {
	return nil, errApplyOnly
}

func (ApplyOnly) UpdateCustomerList(context.Context, string, pinterest.Operation, []string) (*pinterest.CustomerList, error) {
	return nil, errApplyOnly
}

func (ApplyOnly) Audiences(context.Context) iter.Seq2[*pinterest.Audience, error] {
	return func(yield func(*pinterest.Audience, error) bool) { yield(nil, errApplyOnly) }
}

func (ApplyOnly) CreateAudience(context.Context, pinterest.AudienceCreate) (*pinterest.Audience, error) {
	return nil, errApplyOnly
}

func (ApplyOnly) Stats() pinterest.Stats { return pinterest.Stats{} }
