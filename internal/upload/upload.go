package upload

import (
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

// TokenInvalidator drops a cached access token, so that the next call reads
// the token store again (token.Source does this).
type TokenInvalidator interface {
	Invalidate()
}

// DefaultDeadlineMargin is how long before the invocation's deadline the
// handler stops starting Pinterest calls.
const DefaultDeadlineMargin = 5 * time.Second

// Handler applies SQS batches of audience messages to Pinterest customer
// lists. It caches the lists it has found or created for the life of the
// process (the Lambda container), and is safe for concurrent use.
type Handler struct {
	client     Client
	tokens     TokenInvalidator
	maxRecords int
	margin     time.Duration
	connection string
	logger     *slog.Logger
	metrics    io.Writer
	now        func() time.Time

	mu    sync.Mutex
	lists map[listKey]listInfo
	names map[string]naming // by audience key
}

// Option configures a Handler.
type Option func(*Handler)

// WithTokenInvalidator sets what is told to reload the access token when
// Pinterest answers 401. Without it a 401 fails the items at once.
func WithTokenInvalidator(t TokenInvalidator) Option {
	return func(h *Handler) { h.tokens = t }
}

// WithMaxRecordsPerRequest sets the most records one customer list call
// carries (PINLIST_MAX_RECORDS_PER_REQUEST; default 5000). Values below 1
// keep the default.
func WithMaxRecordsPerRequest(n int) Option {
	return func(h *Handler) {
		if n >= 1 {
			h.maxRecords = n
		}
	}
}

// WithDeadlineMargin sets how long before the invocation's deadline no new
// Pinterest call is started (default DefaultDeadlineMargin; at most a
// quarter of the time the invocation has left). Calls already running are
// cancelled at half the margin before the deadline, which leaves time to
// answer with the batch item failures.
func WithDeadlineMargin(d time.Duration) Option {
	return func(h *Handler) {
		if d > 0 {
			h.margin = d
		}
	}
}

// WithConnectionName sets the value of the metrics' Connection dimension
// (PINLIST_CONNECTION_NAME; default "pinlist").
func WithConnectionName(name string) Option {
	return func(h *Handler) {
		if name != "" {
			h.connection = name
		}
	}
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(h *Handler) {
		if l != nil {
			h.logger = l
		}
	}
}

// WithMetricsOutput sets where the EMF metrics lines go (default os.Stdout,
// where Lambda's log capture picks them up).
func WithMetricsOutput(w io.Writer) Option {
	return func(h *Handler) {
		if w != nil {
			h.metrics = w
		}
	}
}

// WithClock sets the clock used to tell whether the deadline is near. For tests.
func WithClock(now func() time.Time) Option {
	return func(h *Handler) {
		if now != nil {
			h.now = now
		}
	}
}

// New returns a Handler that writes through client.
func New(client Client, opts ...Option) (*Handler, error) {
	if client == nil {
		return nil, errors.New("new upload handler: nil Pinterest client")
	}
	h := &Handler{
		client:     client,
		maxRecords: config.DefaultMaxRecordsPerRequest,
		margin:     DefaultDeadlineMargin,
		connection: config.DefaultConnectionName,
		logger:     slog.Default(),
		metrics:    os.Stdout,
		now:        time.Now,
		lists:      map[listKey]listInfo{},
		names:      map[string]naming{},
	}
	for _, opt := range opts {
		opt(h)
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
		if b.reloaded || b.h.tokens == nil {
			b.stop = errStillUnauthorized
			return errors.Join(errStillUnauthorized, err)
		}
		b.reloaded = true
		b.h.tokens.Invalidate()
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
