package upload

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/config"
	"github.com/pinlist/pinlist/internal/emf"
	"github.com/pinlist/pinlist/internal/pinterest"
	"github.com/pinlist/pinlist/internal/token"
)

// Client is the part of the Pinterest client that upload uses.
type Client interface {
	CustomerLists(ctx context.Context) iter.Seq2[*pinterest.CustomerList, error]
	CreateCustomerList(ctx context.Context, in pinterest.CustomerListCreate) (*pinterest.CustomerList, error)
	UpdateCustomerList(ctx context.Context, id string, op pinterest.Operation, records []string) (*pinterest.CustomerList, error)
	Audiences(ctx context.Context) iter.Seq2[*pinterest.Audience, error]
	CreateAudience(ctx context.Context, in pinterest.AudienceCreate) (*pinterest.Audience, error)
	Stats() pinterest.Stats
}

var _ Client = (*pinterest.Client)(nil)

// AccessTokenInvalidator drops a cached Pinterest OAuth access token, so that
// the next call reads the token store again (token.AccessTokenSource does
// this).
type AccessTokenInvalidator interface {
	Invalidate()
}

// DefaultDeadlineMargin is how long before the invocation's deadline the
// handler stops starting Pinterest calls.
const DefaultDeadlineMargin = 5 * time.Second

// Options configures a Handler. Client is required; the zero value of every
// other field means its default, and an invalid one is an error naming the
// field.
type Options struct {
	// Client writes to Pinterest (a *pinterest.Client).
	Client Client
	// AccessToken is told to reload the Pinterest access token when
	// Pinterest answers 401. Without it a 401 fails the items at once.
	AccessToken AccessTokenInvalidator
	// MaxRecordsPerRequest is the most records one customer list call
	// carries (PINLIST_MAX_RECORDS_PER_REQUEST; default
	// config.DefaultMaxRecordsPerRequest).
	MaxRecordsPerRequest int
	// DeadlineMargin is how long before the invocation's deadline no new
	// Pinterest call is started (default DefaultDeadlineMargin; at most a
	// quarter of the time the invocation has left). Calls already running
	// are cancelled at half the margin before the deadline, which leaves
	// time to answer with the batch item failures.
	DeadlineMargin time.Duration
	// ConnectionName is the value of the metrics' Connection dimension
	// (PINLIST_CONNECTION_NAME; default config.DefaultConnectionName).
	ConnectionName string
	// Logger receives the handler's log lines; nil means slog.Default().
	Logger *slog.Logger
	// Metrics is where the EMF metrics lines go (os.Stdout when nil, where
	// Lambda's log capture picks them up).
	Metrics io.Writer
	// Now is the clock that tells whether the deadline is near (time.Now
	// when nil).
	Now func() time.Time
}

// Handler applies SQS batches of audience messages to Pinterest customer
// lists. It caches the lists it has found or created for the life of the
// process (the Lambda container), and is safe for concurrent use.
type Handler struct {
	client      Client
	accessToken AccessTokenInvalidator
	maxRecords  int
	margin      time.Duration
	connection  string
	logger      *slog.Logger
	metrics     io.Writer
	now         func() time.Time

	mu    sync.Mutex
	lists map[listKey]listInfo
	names map[string]naming // by audience key
}

// New returns a Handler that writes through opts.Client.
func New(opts Options) (*Handler, error) {
	switch {
	case opts.Client == nil:
		return nil, errors.New("new upload handler: Options.Client is required")
	case opts.MaxRecordsPerRequest < 0:
		return nil, fmt.Errorf("new upload handler: Options.MaxRecordsPerRequest is negative (%d)", opts.MaxRecordsPerRequest)
	case opts.DeadlineMargin < 0:
		return nil, fmt.Errorf("new upload handler: Options.DeadlineMargin is negative (%s)", opts.DeadlineMargin)
	}
	h := &Handler{
		client:      opts.Client,
		accessToken: opts.AccessToken,
		maxRecords:  cmp.Or(opts.MaxRecordsPerRequest, config.DefaultMaxRecordsPerRequest),
		margin:      cmp.Or(opts.DeadlineMargin, DefaultDeadlineMargin),
		connection:  cmp.Or(opts.ConnectionName, config.DefaultConnectionName),
		logger:      opts.Logger,
		metrics:     opts.Metrics,
		now:         opts.Now,
		lists:       map[listKey]listInfo{},
		names:       map[string]naming{},
	}
	if h.logger == nil {
		h.logger = slog.Default()
	}
	if h.metrics == nil {
		h.metrics = os.Stdout
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h, nil
}

// errDeadlineNear stops a batch when the invocation is about to time out.
var errDeadlineNear = errors.New("invocation deadline is near: no new Pinterest call started")

// errStillUnauthorized stops a batch when Pinterest refuses the token even
// after it was reloaded from the store.
var errStillUnauthorized = errors.New("pinterest refuses the access token even after reloading it: refresh or reconnect needed")

// batch is the state of one HandleSQS call.
type batch struct {
	h      *Handler
	ctx    context.Context // for Pinterest calls: ends half a margin before the deadline
	stopAt time.Time       // no call starts after this; zero when ctx has no deadline
	// stop, once set, fails every call not yet started.
	stop error
	// reloaded is true once the token was reloaded after a 401.
	reloaded bool

	changesApplied int
	listsCreated   int
}

// call runs one Pinterest call (fn may page through a listing), unless the
// batch was stopped or the deadline is near. On a 401 it reloads the token
// from the store once per batch and tries again; a second 401 stops the
// batch, since every later call would fail the same way.
func (b *batch) call(fn func(ctx context.Context) error) error {
	for {
		if err := b.startable(); err != nil {
			return err
		}
		err := fn(b.ctx)
		if errors.Is(err, token.ErrExpired) {
			// The store holds an expired token: every call would fail
			// alike until the refresh step stores a new one.
			b.stop = err
			return err
		}
		var unauthorized *pinterest.UnauthorizedError
		if !errors.As(err, &unauthorized) {
			return err
		}
		if b.reloaded || b.h.accessToken == nil {
			b.stop = errStillUnauthorized
			return errors.Join(errStillUnauthorized, err)
		}
		b.reloaded = true
		b.h.accessToken.Invalidate()
		b.h.logger.LogAttrs(b.ctx, slog.LevelInfo, "pinterest answered 401; reloading the access token from the store")
	}
}

// startable reports why no new call may start, or nil.
func (b *batch) startable() error {
	if b.stop != nil {
		return b.stop
	}
	if !b.stopAt.IsZero() && !b.h.now().Before(b.stopAt) {
		b.stop = errDeadlineNear
		return b.stop
	}
	if err := b.ctx.Err(); err != nil {
		b.stop = fmt.Errorf("invocation context ended: %w", err)
		return b.stop
	}
	return nil
}

// HandleSQS applies a batch of SQS messages (FIFO, message group = audience)
// to Pinterest. It is the Lambda entry point and the local runner's too.
// It never returns an error: a message that was not applied, and every later
// message of its group, is reported in BatchItemFailures so SQS delivers it
// again; every other message was applied and may be deleted.
//
// It reads each record's MessageId, Body and the attributes MessageGroupId
// (the ordering group; when missing, the audience key in the body) and
// ApproximateReceiveCount (logged for messages that fail).
func (h *Handler) HandleSQS(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	start := h.now()
	statsBefore := h.client.Stats()
	b := &batch{h: h, ctx: ctx}
	if dl, ok := ctx.Deadline(); ok {
		// A short invocation gets a proportionally smaller margin, so that
		// it still gets work done.
		margin := max(0, min(h.margin, dl.Sub(start)/4))
		b.stopAt = dl.Add(-margin)
		var cancel context.CancelFunc
		b.ctx, cancel = context.WithDeadline(ctx, dl.Add(-margin/2))
		defer cancel()
	}
	logger := h.logger
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		logger = logger.With(slog.String("request_id", lc.AwsRequestID))
	}

	groups := groupMessages(ev.Records)
	var resp events.SQSEventResponse
	resp.BatchItemFailures = []events.SQSBatchItemFailure{}
	failed := 0
	for _, g := range groups {
		from, err := b.applyGroup(g)
		if from >= len(g.msgs) {
			continue
		}
		failed += len(g.msgs) - from
		for _, m := range g.msgs[from:] {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.id})
		}
		logger.LogAttrs(ctx, slog.LevelWarn, "messages not applied; SQS will deliver them again",
			slog.String("group", g.key),
			slog.Int("failed_messages", len(g.msgs)-from),
			slog.Int("group_messages", len(g.msgs)),
			slog.String("receive_count", g.msgs[from].receiveCount),
			slog.String("error", err.Error()))
	}

	stats := h.client.Stats()
	calls, retries := stats.Calls-statsBefore.Calls, stats.Retries-statsBefore.Retries
	logger.LogAttrs(ctx, slog.LevelInfo, "upload batch done",
		slog.Int("messages", len(ev.Records)),
		slog.Int("groups", len(groups)),
		slog.Int("failed_messages", failed),
		slog.Int("changes_applied", b.changesApplied),
		slog.Int("lists_created", b.listsCreated),
		slog.Int64("api_calls", calls),
		slog.Int64("retries", retries),
		slog.Duration("duration", h.now().Sub(start)))
	err := emf.Write(h.metrics, h.now(), h.connection, []emf.Metric{
		{Name: "ChangesApplied", Value: float64(b.changesApplied), Unit: "Count"},
		{Name: "ListsCreated", Value: float64(b.listsCreated), Unit: "Count"},
		{Name: "APICalls", Value: float64(calls), Unit: "Count"},
		{Name: "Retries", Value: float64(retries), Unit: "Count"},
		{Name: "Failures", Value: float64(failed), Unit: "Count"},
	})
	if err != nil {
		logger.LogAttrs(ctx, slog.LevelWarn, "could not write the batch metrics", slog.String("error", err.Error()))
	}
	return resp, nil
}

// message is one SQS record of a batch, decoded.
type message struct {
	id           string
	receiveCount string
	msg          audience.Message
	err          error // why the body could not be decoded; such a message never succeeds
}

// group is the messages of one message group, in delivery order.
type group struct {
	key  string
	msgs []*message
}

// groupMessages decodes the records and groups them by message group, groups
// in order of first appearance, messages in delivery order (which SQS FIFO
// keeps within a group).
func groupMessages(records []events.SQSMessage) []*group {
	var groups []*group
	byKey := map[string]*group{}
	for i := range records {
		r := &records[i]
		m := &message{id: r.MessageId, receiveCount: r.Attributes["ApproximateReceiveCount"]}
		m.msg, m.err = audience.DecodeMessage([]byte(r.Body))
		key := r.Attributes["MessageGroupId"]
		switch {
		case key != "":
		case m.err == nil:
			key = m.msg.Audience.Key()
		default:
			// No group and no audience: it orders nothing but itself.
			key = "message " + r.MessageId
		}
		g := byKey[key]
		if g == nil {
			g = &group{key: key}
			byKey[key] = g
			groups = append(groups, g)
		}
		g.msgs = append(g.msgs, m)
	}
	return groups
}
