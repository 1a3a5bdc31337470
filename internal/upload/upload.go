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

	"github.com/pinlist/pinlist/internal/config"
	"github.com/pinlist/pinlist/internal/emf"
	"github.com/pinlist/pinlist/internal/ledger"
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

// AccessTokenInvalidator drops a cached access token, so that the next call reads
// the token store again (token.AccessTokenSource does this).
type AccessTokenInvalidator interface {
	Invalidate()
}

// DefaultDeadlineMargin is how long before the invocation's deadline the
// flusher stops starting Pinterest calls.
const DefaultDeadlineMargin = 5 * time.Second

// Options configures a Handler. Client, Ledger and Names are required; a
// zero value of any other field takes its default.
type Options struct {
	// Client writes to Pinterest.
	Client Client
	// Ledger records membership changes and holds what Pinterest still has
	// to be sent.
	Ledger ledger.Store
	// Names holds the audiences' display names, for naming the lists the
	// flusher creates.
	Names ledger.Names
	// AccessToken is told to reload the access token when Pinterest answers 401.
	// Nil: a 401 fails the flush at once.
	AccessToken AccessTokenInvalidator
	// MaxRecordsPerRequest is the most records one customer list call
	// carries (PINLIST_MAX_RECORDS_PER_REQUEST). Default
	// config.DefaultMaxRecordsPerRequest.
	MaxRecordsPerRequest int
	// DeadlineMargin: no Pinterest call starts later than this before the
	// context's deadline (at most a quarter of the time the call has left);
	// calls running are cancelled at half the margin before it, which
	// leaves time to record what was sent and answer. Default
	// DefaultDeadlineMargin.
	DeadlineMargin time.Duration
	// Connection is the metrics' Connection dimension
	// (PINLIST_CONNECTION_NAME). Default config.DefaultConnectionName.
	ConnectionName string
	// Logger receives the log lines; nil means slog.Default().
	Logger *slog.Logger
	// Metrics receives the CloudWatch EMF lines. Default os.Stdout (where
	// Lambda's log capture picks them up); io.Discard drops them.
	Metrics io.Writer
	// Now is the clock that tells whether the deadline is near (time.Now
	// when nil).
	Now func() time.Time
}

// Handler records batches of queue messages in the membership ledger and
// flushes the ledger's pending rows to Pinterest customer lists. It caches
// the lists it has found or created for the life of the process (the Lambda
// container), and is safe for concurrent use.
type Handler struct {
	o Options
	// owning is o.Ledger when it knows the lists pinlist created (see
	// ledger.Owning), else nil.
	owning ledger.Owning
	// applying is o.Ledger when its Apply writes a list's rows one by one
	// (see ledger.Applying), else nil.
	applying ledger.Applying

	mu    sync.Mutex
	lists map[listKey]listInfo
	locks map[listKey]*sync.Mutex // one per list ever flushed: a few hundred bytes each
	// gone is the last ID of each list that answered 404 on an update;
	// repairs the vanished list's ID of each list repaired whose audience
	// is not settled yet, when gone had it. See keepaudience.go.
	gone, repairs map[listKey]string

	rounds rounds // FlushRound's memory
}

// roundRun is a FlushRound's state: backlog, whether the previous round
// sent a full call; full, whether this one did.
type roundRun struct {
	backlog, full bool
}

// New checks opts and fills in defaults: a zero field takes its default, a
// negative one is an error naming it.
func New(opts Options) (*Handler, error) {
	switch {
	case opts.Client == nil:
		return nil, errors.New("new upload handler: Options.Client is required")
	case opts.Ledger == nil:
		return nil, errors.New("new upload handler: Options.Ledger is required")
	case opts.Names == nil:
		return nil, errors.New("new upload handler: Options.Names is required")
	case opts.MaxRecordsPerRequest < 0:
		return nil, fmt.Errorf("new upload handler: Options.MaxRecordsPerRequest %d is negative", opts.MaxRecordsPerRequest)
	case opts.DeadlineMargin < 0:
		return nil, fmt.Errorf("new upload handler: Options.DeadlineMargin %s is negative", opts.DeadlineMargin)
	}
	if opts.MaxRecordsPerRequest == 0 {
		opts.MaxRecordsPerRequest = config.DefaultMaxRecordsPerRequest
	}
	if opts.DeadlineMargin == 0 {
		opts.DeadlineMargin = DefaultDeadlineMargin
	}
	if opts.ConnectionName == "" {
		opts.ConnectionName = config.DefaultConnectionName
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = os.Stdout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	owning, _ := opts.Ledger.(ledger.Owning)
	applying, _ := opts.Ledger.(ledger.Applying)
	return &Handler{
		o: opts, owning: owning, applying: applying, lists: map[listKey]listInfo{}, locks: map[listKey]*sync.Mutex{},
		gone: map[listKey]string{}, repairs: map[listKey]string{},
	}, nil
}

// errDeadlineNear stops a flush when the invocation is about to time out.
var errDeadlineNear = errors.New("invocation deadline is near: no new Pinterest call started")

// errStillUnauthorized stops a flush when Pinterest refuses the token even
// after it was reloaded from the store.
var errStillUnauthorized = errors.New("pinterest refuses the access token even after reloading it: refresh or reconnect needed")

// run is the state of one flush: its Pinterest calls share one deadline,
// one token reload and one stop.
type run struct {
	h *Handler
	// ctx is the caller's context: for ledger reads and writes, which must
	// still record what a call sent when the call ended near the deadline.
	ctx context.Context
	// callCtx is for Pinterest calls: it ends half a margin before the
	// deadline.
	callCtx context.Context
	stopAt  time.Time // no call starts after this; zero when ctx has no deadline
	// stop, once set, fails every call not yet started: the deadline is
	// near, or the token is refused for good.
	stop error
	// reloaded is true once the token was reloaded after a 401.
	reloaded bool
	// retired are the retired lists' keys (loadRetired); repaired the
	// lists repaired in this run (each at most once).
	retired, repaired map[string]bool
	// round is set in a FlushRound.
	round *roundRun
	// holds: whether each list's partial calls wait for an Apply (see
	// holdPartial), asked once per list and run.
	holds map[string]bool

	flushed Flushed
}

// newRun starts a run under ctx; the returned cancel releases its timer.
func (h *Handler) newRun(ctx context.Context) (*run, context.CancelFunc) {
	r := &run{h: h, ctx: ctx, callCtx: ctx}
	cancel := context.CancelFunc(func() {})
	if dl, ok := ctx.Deadline(); ok {
		// A short invocation gets a proportionally smaller margin, so that
		// it still gets work done.
		margin := max(0, min(h.o.DeadlineMargin, dl.Sub(h.o.Now())/4))
		r.stopAt = dl.Add(-margin)
		r.callCtx, cancel = context.WithDeadline(ctx, dl.Add(-margin/2))
	}
	return r, cancel
}

// call runs one Pinterest call (fn may page through a listing), unless the
// run was stopped or the deadline is near. On a 401 it reloads the token
// from the store once per run and tries again; a second 401 stops the run,
// since every later call would fail the same way.
func (r *run) call(fn func(ctx context.Context) error) error {
	for {
		if err := r.startable(); err != nil {
			return err
		}
		err := fn(r.callCtx)
		if errors.Is(err, token.ErrExpired) {
			// The store holds an expired token: every call would fail
			// alike until the refresh step stores a new one.
			r.stop = err
			return err
		}
		var unauthorized *pinterest.UnauthorizedError
		if !errors.As(err, &unauthorized) {
			return err
		}
		if r.reloaded || r.h.o.AccessToken == nil {
			r.stop = errStillUnauthorized
			return errors.Join(errStillUnauthorized, err)
		}
		r.reloaded = true
		r.h.o.AccessToken.Invalidate()
		r.h.o.Logger.LogAttrs(r.ctx, slog.LevelInfo, "pinterest answered 401; reloading the access token from the store")
	}
}

// startable reports why no new call may start, or nil.
func (r *run) startable() error {
	if r.stop != nil {
		return r.stop
	}
	if !r.stopAt.IsZero() && !r.h.o.Now().Before(r.stopAt) {
		r.stop = errDeadlineNear
		return r.stop
	}
	if err := r.callCtx.Err(); err != nil {
		r.stop = fmt.Errorf("invocation context ended: %w", err)
		return r.stop
	}
	return nil
}

// writeMetrics writes one EMF line; a failure is logged, not returned (the
// work it describes is done).
func (h *Handler) writeMetrics(ctx context.Context, logger *slog.Logger, metrics []emf.Metric) {
	if err := emf.Write(h.o.Metrics, h.o.Now(), h.o.ConnectionName, metrics); err != nil {
		logger.LogAttrs(ctx, slog.LevelWarn, "could not write the metrics", slog.String("error", err.Error()))
	}
}

// count is an EMF count metric.
func count(name string, v int64) emf.Metric {
	return emf.Metric{Name: name, Value: float64(v), Unit: "Count"}
}
