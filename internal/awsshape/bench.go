package awsshape

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dyntypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/awstest"
	"github.com/pinlist/pinlist/internal/ingest"
	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/pinterest"
	"github.com/pinlist/pinlist/internal/pinterestsim"
	"github.com/pinlist/pinlist/internal/queue"
	"github.com/pinlist/pinlist/internal/retry"
	"github.com/pinlist/pinlist/internal/token"
	"github.com/pinlist/pinlist/internal/upload"
)

// The template's logical IDs the benchmark wires.
const (
	IngestFunction = "IngestFunction"
	ApplyFunction  = "ApplyFunction"
	UploadFunction = "UploadFunction"
)

// DefaultCallsFactor is the goal: Pinterest write calls at most this many
// times the lower bound.
const DefaultCallsFactor = 1.25

// BenchOptions configure RunBench.
type BenchOptions struct {
	// Template is the path of template.yaml, required.
	Template string
	// Moto is the moto_server to use; nil starts one (and stops it).
	Moto    *awstest.Moto
	Traffic TrafficOptions
	// Shards is how many virtual stream shards (default
	// DefaultVirtualShards).
	Shards int
	// SweepEvery replaces the template's sweep rate when not zero (the
	// report says so).
	SweepEvery time.Duration
	// WriteLimit is the simulator's ads_write budget, write calls a minute
	// (0: pinterestsim.PinterestWriteLimit, Pinterest's; negative: none).
	WriteLimit int
	// IngestConcurrency is how many ingest requests run at once (default 4).
	IngestConcurrency int
	// HoldFlush holds the ledger's stream and the sweep until each phase's
	// traffic is recorded in the ledger (the queue empty, apply idle), so
	// the first flushes see every flip of the phase: what the upload side
	// costs apart from how long apply takes (moto's DynamoDB is far slower
	// than DynamoDB, so without it flushes start on partly written batches
	// far more often than in AWS).
	HoldFlush bool
	// PhaseTimeout bounds the wait for one phase to settle (default 10m).
	PhaseTimeout time.Duration
	// Progress receives a line per phase; nil is silent.
	Progress io.Writer
	// Logger receives the handlers' logs; nil discards them.
	Logger *slog.Logger
}

// PhaseResult is what one phase of traffic cost and how fresh it was.
type PhaseResult struct {
	Name     string
	Requests int
	Changes  int
	// Flips is how many record state flips the traffic makes; LowerBound
	// the fewest customer list calls that carry them.
	Flips, LowerBound int
	// WriteCalls are the customer list creates and updates Pinterest
	// accepted (audience creates apart: AudienceCreates); Rejected those
	// it did not (429s and errors).
	WriteCalls, AudienceCreates, Rejected int
	// Ledger is what the apply function's ledger made of the changes.
	Ledger ledger.Result
	// Freshness of the flips: from the ingest answer (202) of the first
	// request carrying a flip until the simulator accepted the call with
	// it. Missing counts flips the simulator never got.
	FreshP50, FreshP99, FreshMax time.Duration
	Missing                      int
	// Extra counts records the simulator got that the phase did not flip.
	Extra    int
	Duration time.Duration
	// ApplyInvocations, StreamInvocations and Sweeps ran in the phase;
	// LeaseHeld counts flushes skipped because another invocation held the
	// list's lease.
	ApplyInvocations, StreamInvocations, Sweeps, LeaseHeld int64
}

// BenchConfig is the configuration a run used, as read from the template.
type BenchConfig struct {
	ApplyBatchSize, StreamBatchSize      int
	ApplyWindow, StreamWindow            time.Duration
	ApplyConcurrency, Shards             int
	StreamFilter                         string
	SweepEvery                           time.Duration
	SweepFromTemplate                    bool
	HoldFlush                            bool
	MaxRecordsPerRequest                 int
	WriteLimit                           int
	Profiles, Audiences, BodyProfiles    int
	StreamBisect, StreamReportFailures   bool
	ApplyReportFailures                  bool
	ApplyTimeout, UploadTimeout          time.Duration
	StreamParallelization, StreamRetries int
}

// BenchResult is a run's outcome.
type BenchResult struct {
	Config BenchConfig
	Phases []PhaseResult // qualify, update, replay
}

// Flips, LowerBound and WriteCalls sum the phases that change state
// (qualify and update).
func (r BenchResult) Flips() (flips, bound, calls int) {
	for _, p := range r.Phases {
		if p.Name == "replay" {
			continue
		}
		flips += p.Flips
		bound += p.LowerBound
		calls += p.WriteCalls
	}
	return flips, bound, calls
}

// ReplayWrites is how many write calls the replay made (the goal is zero).
func (r BenchResult) ReplayWrites() int {
	for _, p := range r.Phases {
		if p.Name == "replay" {
			return p.WriteCalls + p.Rejected
		}
	}
	return -1
}

// Goal is one checked goal.
type Goal struct {
	Name, Target, Got string
	Met               bool
}

// Goals checks the run: write calls at most factor × the lower bound, and
// a replay that writes nothing.
func (r BenchResult) Goals(factor float64) []Goal {
	_, bound, calls := r.Flips()
	replay := r.ReplayWrites()
	return []Goal{
		{
			Name:   "Pinterest write calls against the lower bound",
			Target: fmt.Sprintf("≤ %.2f × %d = %.0f", factor, bound, factor*float64(bound)),
			Got:    fmt.Sprintf("%d (%.2f ×)", calls, float64(calls)/float64(max(bound, 1))),
			Met:    float64(calls) <= factor*float64(bound),
		},
		{
			Name:   "second pass of the same traffic",
			Target: "0 write calls",
			Got:    fmt.Sprintf("%d write calls", replay),
			Met:    replay == 0,
		},
	}
}

// WriteText prints r and its goals.
func WriteText(w io.Writer, r BenchResult, factor float64) {
	c := r.Config
	sweep := "template's rate"
	if !c.SweepFromTemplate {
		sweep = "overridden"
	}
	fmt.Fprintf(w, "AWS shape (template.yaml): apply batch %d, window %s, %d pollers, ReportBatchItemFailures %v, timeout %s\n",
		c.ApplyBatchSize, c.ApplyWindow, c.ApplyConcurrency, c.ApplyReportFailures, c.ApplyTimeout)
	fmt.Fprintf(w, "  stream batch %d, window %s, %d virtual shards x parallelization %d, bisect %v, retries %d, ReportBatchItemFailures %v, timeout %s\n",
		c.StreamBatchSize, c.StreamWindow, c.Shards, c.StreamParallelization, c.StreamBisect, c.StreamRetries, c.StreamReportFailures, c.UploadTimeout)
	limit := "no limit"
	if c.WriteLimit > 0 {
		limit = fmt.Sprintf("%d write calls a minute", c.WriteLimit)
	}
	fmt.Fprintf(w, "  stream filter %s; sweep every %s (%s); %d records per call; simulator budget %s\n", c.StreamFilter, c.SweepEvery, sweep, c.MaxRecordsPerRequest, limit)
	if c.HoldFlush {
		fmt.Fprintf(w, "  flushes held until each phase is recorded in the ledger (--hold-flush): freshness includes the hold\n")
	}
	fmt.Fprintf(w, "traffic: %d profiles, %d audiences, %d profiles a request, every membership re-sent\n", c.Profiles, c.Audiences, c.BodyProfiles)
	fmt.Fprintf(w, "%-8s %8s %8s %7s %6s %6s %8s %7s %6s %6s %9s %9s %9s %7s %6s %6s %6s %6s %8s\n",
		"phase", "requests", "changes", "flipped", "no-op", "stale", "flips", "bound", "writes", "calls/", "fresh p50", "fresh p99", "fresh max", "missing", "apply", "stream", "sweeps", "leased", "duration")
	for _, p := range r.Phases {
		perFlip := "-"
		if p.Flips > 0 {
			perFlip = fmt.Sprintf("%.4f", float64(p.WriteCalls)/float64(p.Flips))
		}
		fmt.Fprintf(w, "%-8s %8d %8d %7d %6d %6d %8d %7d %6d %6s %9s %9s %9s %7d %6d %6d %6d %6d %8s\n",
			p.Name, p.Requests, p.Changes, p.Ledger.Flipped, p.Ledger.NoOps, p.Ledger.Stale, p.Flips, p.LowerBound, p.WriteCalls, perFlip,
			round(p.FreshP50), round(p.FreshP99), round(p.FreshMax), p.Missing, p.ApplyInvocations, p.StreamInvocations, p.Sweeps, p.LeaseHeld, round(p.Duration))
	}
	flips, bound, calls := r.Flips()
	fmt.Fprintf(w, "write calls per flip %.4f (%d calls for %d flips; lower bound %d calls)\n", float64(calls)/float64(max(flips, 1)), calls, flips, bound)
	for _, g := range r.Goals(factor) {
		verdict := "MISSED"
		if g.Met {
			verdict = "MET"
		}
		fmt.Fprintf(w, "goal %-48s %-24s got %-20s %s\n", g.Name, g.Target, g.Got, verdict)
	}
}

func round(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return d.Round(time.Millisecond).String()
}

// RunBench runs the traffic through the AWS shape: ingest (in process, API
// Gateway events) -> moto SQS -> SQSDriver -> apply (HandleApply) -> moto
// DynamoDB ledger -> its stream -> StreamDriver -> upload (Flusher) ->
// the Pinterest simulator, plus the template's sweep. Each phase runs until
// the ledger has nothing pending and every driver is idle.
func RunBench(ctx context.Context, o BenchOptions) (BenchResult, error) {
	b, err := newBench(ctx, o)
	if err != nil {
		return BenchResult{}, err
	}
	defer b.close()
	tr, err := NewTraffic(o.Traffic)
	if err != nil {
		return BenchResult{}, err
	}
	o.Traffic.defaults()
	b.cfg.Profiles, b.cfg.Audiences, b.cfg.BodyProfiles = o.Traffic.Profiles, o.Traffic.Audiences, o.Traffic.BodyProfiles

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 3)
	var wg sync.WaitGroup
	wg.Go(func() { errc <- wrapErr("SQS driver", b.sqs.Run(runCtx)) })
	wg.Go(func() { errc <- wrapErr("stream driver", b.stream.Run(runCtx)) })
	wg.Go(func() { b.sweep.Run(runCtx); errc <- nil })
	defer func() { cancel(); wg.Wait() }()

	res := BenchResult{Config: b.cfg}
	for _, ph := range []Phase{tr.Qualify, tr.Update, tr.Replay} {
		pr, err := b.runPhase(runCtx, ph, errc)
		if err != nil {
			return res, fmt.Errorf("phase %s: %w", ph.Name, err)
		}
		res.Phases = append(res.Phases, pr)
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "phase %s: %d requests, %d flips, %d write calls (bound %d), fresh p50 %s, %s\n",
				pr.Name, pr.Requests, pr.Flips, pr.WriteCalls, pr.LowerBound, round(pr.FreshP50), round(pr.Duration))
		}
	}
	return res, nil
}

func wrapErr(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// bench is one wired AWS shape.
type bench struct {
	o       BenchOptions
	cfg     BenchConfig
	moto    *awstest.Moto
	ownMoto bool
	srv     *httptest.Server
	sim     *pinterestsim.Server
	writes  *writeLog
	ingest  *ingest.Handler
	applied *countingStore
	leases  *countingLeases
	store   *ledger.Dynamo
	sqs     *SQSDriver
	stream  *StreamDriver
	sweep   *ScheduleDriver
	sqsAPI  *sqs.Client
	queue   string
}

const (
	benchAdAccount    = "549755885175"
	benchClientID     = "1484362"
	benchClientSecret = "bench-secret"
	benchIngestToken  = "bench-ingest-token"
)

func newBench(ctx context.Context, o BenchOptions) (*bench, error) {
	if o.Template == "" {
		return nil, errors.New("AWS shape benchmark: Template is required")
	}
	if o.IngestConcurrency < 0 || o.Shards < 0 || o.SweepEvery < 0 || o.PhaseTimeout < 0 {
		return nil, fmt.Errorf("AWS shape benchmark: negative option in %+v", o)
	}
	if o.IngestConcurrency == 0 {
		o.IngestConcurrency = 4
	}
	switch {
	case o.WriteLimit == 0:
		o.WriteLimit = pinterestsim.PinterestWriteLimit
	case o.WriteLimit < 0:
		o.WriteLimit = 0 // the simulator's "no limit"
	}
	if o.PhaseTimeout == 0 {
		o.PhaseTimeout = 10 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	tpl, err := LoadTemplate(o.Template)
	if err != nil {
		return nil, err
	}
	applyFn, err := tpl.Function(ApplyFunction)
	if err != nil {
		return nil, err
	}
	uploadFn, err := tpl.Function(UploadFunction)
	if err != nil {
		return nil, err
	}
	if len(applyFn.SQS) != 1 || len(uploadFn.Streams) != 1 || len(uploadFn.Schedules) != 1 {
		return nil, fmt.Errorf("AWS shape benchmark: want one SQS source on %s and one stream and one schedule on %s; the template has %d, %d and %d",
			ApplyFunction, UploadFunction, len(applyFn.SQS), len(uploadFn.Streams), len(uploadFn.Schedules))
	}
	maxRecords, err := strconv.Atoi(uploadFn.Env["PINLIST_MAX_RECORDS_PER_REQUEST"])
	if err != nil || maxRecords < 1 {
		return nil, fmt.Errorf("AWS shape benchmark: %s's PINLIST_MAX_RECORDS_PER_REQUEST %q is no positive number", UploadFunction, uploadFn.Env["PINLIST_MAX_RECORDS_PER_REQUEST"])
	}

	b := &bench{o: o, moto: o.Moto}
	ok := false
	defer func() {
		if !ok {
			b.close()
		}
	}()
	if b.moto == nil {
		if b.moto, err = awstest.Start(); err != nil {
			return nil, err
		}
		b.ownMoto = true
	}

	// The queue and the ledger table, as the template has them.
	b.sqsAPI = b.moto.SQS()
	visibility, err := tpl.QueueVisibilityTimeout(applyFn.SQS[0].Queue)
	if err != nil {
		return nil, err
	}
	q, err := b.sqsAPI.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName:  aws.String(b.moto.UniqueName("pinlist-changes")),
		Attributes: map[string]string{string(sqstypes.QueueAttributeNameVisibilityTimeout): strconv.Itoa(int(visibility / time.Second))},
	})
	if err != nil {
		return nil, fmt.Errorf("create the changes queue: %w", err)
	}
	b.queue = aws.ToString(q.QueueUrl)
	qa, err := b.sqsAPI.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return nil, fmt.Errorf("read the changes queue's ARN: %w", err)
	}
	table := b.moto.UniqueName("pinlist-ledger")
	dyn := b.moto.DynamoDB()
	if err := ledger.CreateDynamoTable(ctx, dyn, table); err != nil {
		return nil, err
	}
	desc, err := dyn.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		return nil, fmt.Errorf("describe the ledger table: %w", err)
	}
	var hashKey string
	for _, k := range desc.Table.KeySchema {
		if k.KeyType == dyntypes.KeyTypeHash {
			hashKey = aws.ToString(k.AttributeName)
		}
	}

	// Pinterest: the simulator, in process, on loopback.
	b.sim, err = pinterestsim.New(pinterestsim.Options{
		AdAccounts: []string{benchAdAccount}, Clients: map[string]string{benchClientID: benchClientSecret},
		MaxRecordsPerRequest: maxRecords, Seed: 1, WriteLimit: o.WriteLimit,
	})
	if err != nil {
		return nil, fmt.Errorf("start the Pinterest simulator: %w", err)
	}
	b.writes = newWriteLog(b.sim)
	b.srv = httptest.NewServer(b.writes.wrap(b.sim))
	access, refresh := b.sim.IssueToken(benchClientID, []string{"ads:read", "ads:write"})
	tokens := &memTokens{tok: token.Token{
		ClientID: benchClientID, ClientSecret: benchClientSecret, AccessToken: access, RefreshToken: refresh,
		AccessTokenExpiresAt: time.Now().Add(24 * time.Hour), RefreshTokenExpiresAt: time.Now().Add(48 * time.Hour),
		Scope: "ads:read,ads:write",
	}}
	accessToken := token.NewAccessTokenSource(tokens)
	client, err := pinterest.New(pinterest.Options{AdAccountID: benchAdAccount, BaseURL: b.srv.URL + "/v5",
		TokenSource: accessToken, HTTPClient: b.srv.Client(), Logger: o.Logger})
	if err != nil {
		return nil, fmt.Errorf("new Pinterest client: %w", err)
	}

	// The three functions, as their mains wire them.
	locked := newItemLocks(dyn)
	dopts := ledger.DynamoOptions{Client: locked, Table: table, Logger: o.Logger}
	if b.store, err = ledger.NewDynamo(dopts); err != nil {
		return nil, err
	}
	names, err := ledger.NewDynamoNames(dopts)
	if err != nil {
		return nil, err
	}
	dynLeases, err := ledger.NewDynamoLeases(dopts)
	if err != nil {
		return nil, err
	}
	b.leases = &countingLeases{Leases: dynLeases}
	b.applied = &countingStore{Store: b.store}
	applyH, err := upload.New(upload.Options{Client: upload.ApplyOnly{}, Ledger: b.applied, Names: names, Logger: o.Logger, Metrics: io.Discard})
	if err != nil {
		return nil, err
	}
	uploadH, err := upload.New(upload.Options{Client: client, Ledger: b.store, Names: names, AccessToken: accessToken,
		MaxRecordsPerRequest: maxRecords, Logger: o.Logger, Metrics: io.Discard})
	if err != nil {
		return nil, err
	}
	flusher, err := upload.NewFlusher(upload.FlusherOptions{Handler: uploadH, Leases: b.leases})
	if err != nil {
		return nil, err
	}
	b.ingest, err = ingest.New(ingest.Options{Sender: queue.NewSQS(b.sqsAPI, b.queue), IngestToken: ingest.StaticIngestToken(benchIngestToken), Logger: o.Logger})
	if err != nil {
		return nil, err
	}

	// The event sources, from the template.
	src := applyFn.SQS[0]
	if b.sqs, err = NewSQS(SQSOptions{
		Client: b.sqsAPI, QueueURL: b.queue, QueueARN: qa.Attributes[string(sqstypes.QueueAttributeNameQueueArn)],
		Source: src, Function: applyFn, Handler: applyH.HandleApply, Logger: o.Logger,
	}); err != nil {
		return nil, err
	}
	st := uploadFn.Streams[0]
	if b.stream, err = NewStream(StreamOptions{
		Client: dynamodbstreams.NewFromConfig(b.moto.Config()), StreamARN: aws.ToString(desc.Table.LatestStreamArn), PartitionKey: hashKey,
		Source: st, Function: uploadFn, Handler: flusher.HandleStream, Shards: o.Shards, Logger: o.Logger,
	}); err != nil {
		return nil, err
	}
	sw := uploadFn.Schedules[0]
	if b.sweep, err = NewSchedule(sw, uploadFn, o.SweepEvery, func(ctx context.Context) error {
		_, err := flusher.HandleSchedule(ctx, events.EventBridgeEvent{DetailType: "Scheduled Event", Source: "aws.events"})
		return err
	}, o.Logger); err != nil {
		return nil, err
	}
	b.cfg = BenchConfig{
		ApplyBatchSize: src.BatchSize, ApplyWindow: src.Window, ApplyConcurrency: b.sqs.Concurrency(), ApplyReportFailures: src.ReportBatchItemFailures,
		StreamBatchSize: st.BatchSize, StreamWindow: st.Window, Shards: b.stream.Shards(), StreamFilter: st.Filter.String(),
		StreamBisect: st.Bisect, StreamReportFailures: st.ReportBatchItemFailures, StreamParallelization: st.ParallelizationFactor, StreamRetries: st.MaxRetries,
		SweepEvery: b.sweep.Every(), SweepFromTemplate: o.SweepEvery == 0, MaxRecordsPerRequest: maxRecords, WriteLimit: o.WriteLimit, HoldFlush: o.HoldFlush,
		ApplyTimeout: applyFn.Timeout, UploadTimeout: uploadFn.Timeout,
	}
	ok = true
	return b, nil
}

func (b *bench) close() {
	if b.srv != nil {
		b.srv.Close()
	}
	if b.ownMoto && b.moto != nil {
		_ = b.moto.Close()
	}
}

// runPhase posts ph's bodies and waits until everything settled.
func (b *bench) runPhase(ctx context.Context, ph Phase, errc <-chan error) (PhaseResult, error) {
	pr := PhaseResult{Name: ph.Name, Requests: len(ph.Bodies), Changes: ph.Changes, Flips: len(ph.Flips), LowerBound: ph.LowerBound(b.cfg.MaxRecordsPerRequest)}
	start := time.Now()
	b.writes.reset()
	ledgerBefore := b.applied.result()
	sqsBefore, streamBefore, sweepsBefore, heldBefore := b.sqs.Stats(), b.stream.Stats(), b.sweep.Runs(), b.leases.held.Load()

	if b.o.HoldFlush {
		b.stream.Hold(true)
		b.sweep.Hold(true)
	}
	accepted := make([]time.Time, len(ph.Bodies))
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, b.o.IngestConcurrency)
	for w := range b.o.IngestConcurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ph.Bodies) || ctx.Err() != nil {
					return
				}
				at, err := b.post(ctx, ph.Bodies[i])
				if err != nil {
					errs[w] = fmt.Errorf("request %d: %w", i, err)
					return
				}
				accepted[i] = at
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return pr, err
	}
	if b.o.HoldFlush {
		if err := b.settleWith(ctx, errc, b.applyQuiet); err != nil {
			return pr, err
		}
		b.stream.Hold(false)
		b.sweep.Hold(false)
	}
	if err := b.settle(ctx, errc); err != nil {
		return pr, err
	}
	pr.Duration = time.Since(start)

	got := b.writes.snapshot()
	pr.WriteCalls, pr.AudienceCreates, pr.Rejected = got.listWrites, got.audienceCreates, got.rejected
	var fresh []time.Duration
	for k, body := range ph.Flips {
		at, ok := got.arrived[k]
		if !ok {
			pr.Missing++
			continue
		}
		fresh = append(fresh, max(0, at.Sub(accepted[body])))
	}
	for k := range got.arrived {
		if _, ok := ph.Flips[k]; !ok {
			pr.Extra++
		}
	}
	slices.Sort(fresh)
	pr.FreshP50, pr.FreshP99 = quantile(fresh, 0.50), quantile(fresh, 0.99)
	if len(fresh) > 0 {
		pr.FreshMax = fresh[len(fresh)-1]
	}
	after := b.applied.result()
	pr.Ledger = ledger.Result{Flipped: after.Flipped - ledgerBefore.Flipped, NoOps: after.NoOps - ledgerBefore.NoOps,
		Reverted: after.Reverted - ledgerBefore.Reverted, Stale: after.Stale - ledgerBefore.Stale}
	pr.ApplyInvocations = b.sqs.Stats().Invocations - sqsBefore.Invocations
	pr.StreamInvocations = b.stream.Stats().Invocations - streamBefore.Invocations
	pr.Sweeps = b.sweep.Runs() - sweepsBefore
	pr.LeaseHeld = b.leases.held.Load() - heldBefore
	return pr, nil
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// post sends one body as API Gateway would and returns when it was
// accepted (202).
func (b *bench) post(ctx context.Context, body []byte) (time.Time, error) {
	ev := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: "POST " + ingest.PathProfiles, RawPath: ingest.PathProfiles,
		Headers: map[string]string{"authorization": "Bearer " + benchIngestToken, "content-type": "application/json"},
		Body:    string(body),
	}
	ev.RequestContext.HTTP.Method = http.MethodPost
	ev.RequestContext.HTTP.Path = ingest.PathProfiles
	ev.RequestContext.Stage = "$default"
	for attempt := 1; ; attempt++ {
		resp, err := b.ingest.HandleAPIGateway(ctx, ev)
		if err != nil {
			return time.Time{}, fmt.Errorf("ingest: %w", err)
		}
		if resp.StatusCode == http.StatusAccepted {
			return time.Now(), nil
		}
		if resp.StatusCode != http.StatusServiceUnavailable || attempt == 5 {
			return time.Time{}, fmt.Errorf("ingest answered %d: %s", resp.StatusCode, resp.Body)
		}
		if err := retry.Sleep(ctx, time.Second); err != nil {
			return time.Time{}, err
		}
	}
}

// settle waits until the queue is empty, the drivers are idle and the
// ledger has nothing pending, twice in a row.
func (b *bench) settle(ctx context.Context, errc <-chan error) error {
	return b.settleWith(ctx, errc, b.quiet)
}

func (b *bench) settleWith(ctx context.Context, errc <-chan error, quietFn func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, b.o.PhaseTimeout)
	defer cancel()
	calm := 0
	for calm < 2 {
		select {
		case err := <-errc:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return fmt.Errorf("not settled within %s: %w", b.o.PhaseTimeout, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
		quiet, err := quietFn(ctx)
		if err != nil {
			return err
		}
		if quiet {
			calm++
		} else {
			calm = 0
		}
	}
	return nil
}

// quiet checks the drivers first (free), then the queue, then the ledger
// (a query per list, op and index shard: only once the rest is quiet, so
// the check does not crowd moto).
func (b *bench) quiet(ctx context.Context) (bool, error) {
	if !b.stream.Idle() {
		return false, nil
	}
	if q, err := b.applyQuiet(ctx); !q || err != nil {
		return q, err
	}
	lists, err := b.store.PendingLists(ctx)
	if err != nil {
		return false, err
	}
	return len(lists) == 0, nil
}

// applyQuiet: the queue is empty and no apply batch is being gathered or
// run.
func (b *bench) applyQuiet(ctx context.Context) (bool, error) {
	if !b.sqs.Idle() {
		return false, nil
	}
	out, err := b.sqsAPI.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(b.queue), AttributeNames: []sqstypes.QueueAttributeName{
		sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
	}})
	if err != nil {
		return false, fmt.Errorf("read the queue's depth: %w", err)
	}
	for _, v := range out.Attributes {
		if v != "0" {
			return false, nil
		}
	}
	return true, nil
}

// countingStore sums what the apply function's ledger calls did.
type countingStore struct {
	ledger.Store
	mu  sync.Mutex
	sum ledger.Result
}

func (c *countingStore) Apply(ctx context.Context, changes []audience.Change) (ledger.Result, error) {
	r, err := c.Store.Apply(ctx, changes)
	if err == nil {
		c.mu.Lock()
		c.sum.Flipped += r.Flipped
		c.sum.NoOps += r.NoOps
		c.sum.Reverted += r.Reverted
		c.sum.Stale += r.Stale
		c.mu.Unlock()
	}
	return r, err
}

func (c *countingStore) result() ledger.Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sum
}

// countingLeases counts the flushes skipped because a lease was held.
type countingLeases struct {
	upload.Leases
	held atomic.Int64
}

func (c *countingLeases) Acquire(ctx context.Context, list ledger.List, until time.Time) (func(context.Context) error, error) {
	release, err := c.Leases.Acquire(ctx, list, until)
	if errors.Is(err, ledger.ErrLeaseHeld) {
		c.held.Add(1)
	}
	return release, err
}

// memTokens is the Pinterest token store, in memory.
type memTokens struct {
	mu  sync.Mutex
	tok token.Token
}

func (m *memTokens) Load(context.Context) (token.Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tok, nil
}

func (m *memTokens) Save(_ context.Context, t token.Token) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tok = t
	return nil
}

// itemLocks gives moto DynamoDB's per-item atomicity: moto serves requests
// on threads without locking its tables, so two concurrent conditional
// writes to one item can both pass (and two ADDs lose one), which DynamoDB
// never allows. Writes take the lock of every item they touch (in key
// order); reads take none, so requests to different items still run at
// once. Transactions also run one at a time: moto answers concurrent
// TransactWriteItems with 500s even on different items.
type itemLocks struct {
	api ledger.DynamoAPI
	tx  sync.Mutex

	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

func newItemLocks(api ledger.DynamoAPI) *itemLocks {
	return &itemLocks{api: api, locks: map[string]*sync.Mutex{}}
}

// lock locks the items with keys and returns the unlock.
func (l *itemLocks) lock(table *string, keys ...map[string]dyntypes.AttributeValue) func() {
	ids := make([]string, 0, len(keys))
	for _, k := range keys {
		var b strings.Builder
		b.WriteString(aws.ToString(table))
		for _, name := range []string{"pk", "sk"} {
			b.WriteByte(0)
			if v, ok := k[name].(*dyntypes.AttributeValueMemberS); ok {
				b.WriteString(v.Value)
			}
		}
		ids = append(ids, b.String())
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	l.mu.Lock()
	ms := make([]*sync.Mutex, len(ids))
	for i, id := range ids {
		m, ok := l.locks[id]
		if !ok {
			m = &sync.Mutex{}
			l.locks[id] = m
		}
		ms[i] = m
	}
	l.mu.Unlock()
	for _, m := range ms {
		m.Lock()
	}
	return func() {
		for _, m := range ms {
			m.Unlock()
		}
	}
}

func keyOf(item map[string]dyntypes.AttributeValue) map[string]dyntypes.AttributeValue {
	return map[string]dyntypes.AttributeValue{"pk": item["pk"], "sk": item["sk"]}
}

func (l *itemLocks) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	return l.api.BatchGetItem(ctx, in, o...)
}

func (l *itemLocks) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return l.api.GetItem(ctx, in, o...)
}

func (l *itemLocks) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	return l.api.Query(ctx, in, o...)
}

func (l *itemLocks) Scan(ctx context.Context, in *dynamodb.ScanInput, o ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	return l.api.Scan(ctx, in, o...)
}

// BatchWriteItem (retirement's deletes) takes the table's transaction lock:
// its items are many and their keys only matter to moto's copy of the table.
func (l *itemLocks) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	l.tx.Lock()
	defer l.tx.Unlock()
	return l.api.BatchWriteItem(ctx, in, o...)
}

func (l *itemLocks) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	defer l.lock(in.TableName, keyOf(in.Item))()
	return l.api.PutItem(ctx, in, o...)
}

func (l *itemLocks) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	defer l.lock(in.TableName, in.Key)()
	return l.api.UpdateItem(ctx, in, o...)
}

func (l *itemLocks) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, o ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	var table *string
	var keys []map[string]dyntypes.AttributeValue
	for _, it := range in.TransactItems {
		switch {
		case it.Put != nil:
			table, keys = it.Put.TableName, append(keys, keyOf(it.Put.Item))
		case it.Update != nil:
			table, keys = it.Update.TableName, append(keys, it.Update.Key)
		case it.Delete != nil:
			table, keys = it.Delete.TableName, append(keys, it.Delete.Key)
		case it.ConditionCheck != nil:
			table, keys = it.ConditionCheck.TableName, append(keys, it.ConditionCheck.Key)
		}
	}
	defer l.lock(table, keys...)()
	l.tx.Lock()
	defer l.tx.Unlock()
	return l.api.TransactWriteItems(ctx, in, o...)
}

// stableListName is the part of a pinlist list name that names its
// audience and type ("<ns>:<id> <TYPE>"), or "" for another name.
func stableListName(name string) string {
	rest, ok := strings.CutPrefix(name, "pinlist ")
	if !ok {
		return ""
	}
	key, rest, ok := strings.Cut(rest, " ")
	if !ok {
		return ""
	}
	typ, _, _ := strings.Cut(rest, " ")
	return key + " " + typ
}
