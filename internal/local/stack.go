package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/pinlist/pinlist/internal/ingest"
	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/pinterest"
	"github.com/pinlist/pinlist/internal/queue"
	"github.com/pinlist/pinlist/internal/refresh"
	"github.com/pinlist/pinlist/internal/retry"
	"github.com/pinlist/pinlist/internal/token"
	"github.com/pinlist/pinlist/internal/upload"
)

// Timeouts of the stack's own calls.
const (
	httpShutdownTimeout = 5 * time.Second
	// simShutdownTimeout is short: the workers, the simulator's main
	// client, have stopped when it is shut down.
	simShutdownTimeout = time.Second
	oauthTimeout       = 30 * time.Second
	// pinterestCallTimeout bounds one Pinterest HTTP exchange; a batch's
	// deadline bounds the batch.
	pinterestCallTimeout = 2 * time.Minute
)

// Stack is the local connector, running: the ingest server, the upload
// workers, the refresher, the queue and (without a Pinterest URL) the
// simulator. Start it with Start and stop it with Close.
type Stack struct {
	cfg         Config
	log         *slog.Logger
	queue       *queue.Local
	ledger      ledgerTx // the membership ledger, in the queue's database
	uploader    *upload.Handler
	flushWake   chan struct{}            // rows may be pending: flush now
	accessToken *token.AccessTokenSource // the Pinterest access token the uploads use
	refreshNow  chan struct{}            // token trouble: run the refresh check now
	refresher   *refresh.Refresher
	count       *counters
	progressOut *progressPrinter
	sim         *simulator // nil with cfg.PinterestURL
	apiURL      string
	adAccount   string
	ingestToken string
	tokenOrigin string

	// The status page's history (activity.go) and whether it asks for the
	// ingest token (statusNeedsToken of the listener; set before serving).
	calls            *callHistory
	changes          *changeHistory
	errs             *errorRing
	statusNeedsToken bool

	ingestHTTP *http.Server
	ingestURL  string
	failed     chan error // a server stopped on its own

	stopReceive context.CancelFunc
	stopWork    context.CancelFunc
	stopLoops   context.CancelFunc
	workersDone sync.WaitGroup
	loopsDone   sync.WaitGroup
	served      chan error

	closeOnce sync.Once
	closeErr  error
}

// Run starts the stack, prints where everything runs, and serves until ctx
// ends (SIGINT/SIGTERM in `pinlist serve`) or a server fails; then it shuts
// down gracefully (see Close).
func Run(ctx context.Context, cfg Config) error {
	s, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	s.PrintBanner()
	var runErr error
	select {
	case <-ctx.Done():
		fmt.Fprintln(s.cfg.Stdout, "shutting down: finishing in-flight work; queued changes stay in the queue for the next start")
	case runErr = <-s.failed:
	}
	return errors.Join(runErr, s.Close())
}

// Start starts the stack and returns once every part is serving. ctx bounds
// the start only; the stack runs until Close.
func Start(ctx context.Context, cfg Config) (_ *Stack, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("start the local stack: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("start the local stack: create the data directory: %w", err)
	}
	s := &Stack{cfg: cfg, count: &counters{}, failed: make(chan error, 2), refreshNow: make(chan struct{}, 1),
		flushWake: make(chan struct{}, 1), changes: &changeHistory{}, errs: &errorRing{}}
	// Every log line passes the recorder, which keeps the last warnings and
	// errors, scrubbed of identifiers, for the status page.
	s.log = slog.New(&errorRecorder{next: cfg.Logger.Handler(), ring: s.errs})
	var cleanup []func()
	defer func() {
		if err != nil {
			for _, f := range slices.Backward(cleanup) {
				f()
			}
		}
	}()

	s.ingestToken, s.tokenOrigin, err = loadIngestToken(IngestTokenPath(cfg.DataDir), cfg.IngestToken)
	if err != nil {
		return nil, fmt.Errorf("start the local stack: %w", err)
	}

	s.queue, err = queue.OpenLocal(ctx, queue.LocalOptions{
		Path:              QueuePath(cfg.DataDir),
		VisibilityTimeout: cfg.VisibilityTimeout,
		MaxReceive:        cfg.MaxReceive,
		BatchSize:         cfg.BatchSize,
		BatchWindow:       max(cfg.BatchWindow, 0),
		Consumer:          true,
	})
	if errors.Is(err, queue.ErrLocalConsumerLocked) {
		return nil, fmt.Errorf("start the local stack: another pinlist serve uses the data directory %s", cfg.DataDir)
	}
	if err != nil {
		return nil, fmt.Errorf("start the local stack: %w", err)
	}
	cleanup = append(cleanup, func() { _ = s.queue.Close() })
	if s.ledger, err = openLedger(ctx, s.queue, cfg.ErasureGuard); err != nil {
		return nil, fmt.Errorf("start the local stack: %w", err)
	}

	store := token.FileStore{Path: TokenPath(cfg.DataDir)}
	if err := s.startPinterest(ctx, store); err != nil {
		return nil, fmt.Errorf("start the local stack: %w", err)
	}
	if s.sim != nil {
		cleanup = append(cleanup, func() { _ = s.sim.close(0, s.log) })
		// The built-in simulator starts empty: Pinterest has nobody, so
		// every member the ledger holds is pending again.
		if err := s.ledger.ResetSent(ctx, ledger.Out); err != nil {
			return nil, fmt.Errorf("start the local stack: %w", err)
		}
	}
	up, err := s.newUploader(store)
	if err != nil {
		return nil, fmt.Errorf("start the local stack: %w", err)
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("start the local stack: listen on %s: %w", cfg.Addr, err)
	}
	w := &workers{
		q:            s.queue,
		h:            up,
		ledger:       s.ledger,
		flush:        s.wakeFlusher,
		count:        s.count,
		changes:      s.changes,
		wake:         make(chan struct{}, 1),
		poll:         cfg.PollInterval,
		batchSize:    cfg.BatchSize,
		batchTimeout: cfg.VisibilityTimeout - cfg.VisibilityTimeout/10,
		retry:        retry.Policy{Base: cfg.RetryBase, Max: cfg.RetryMax},
		log:          s.log.With("component", "worker"),
	}
	handler, err := ingest.New(ingest.Options{
		Sender:      &countingSender{q: s.queue, count: s.count, notify: w.notify},
		IngestToken: ingest.StaticIngestToken(s.ingestToken),
		Logger:      s.log.With("component", "ingest"),
	})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("start the local stack: %w", err)
	}
	s.ingestURL = "http://" + ln.Addr().String()
	s.statusNeedsToken = statusNeedsToken(ln.Addr())
	s.ingestHTTP = newHTTPServer(s.routes(handler, s.statusNeedsToken), s.log)
	s.served = make(chan error, 1)
	go func() {
		err := s.ingestHTTP.Serve(ln)
		s.served <- err
		if !errors.Is(err, http.ErrServerClosed) {
			s.failed <- fmt.Errorf("serve the ingest routes: %w", err)
		}
	}()

	// Workers receive until stopReceive and work until stopWork; they are
	// separate so that Close can let batches in flight finish.
	recvCtx, stopReceive := context.WithCancel(context.WithoutCancel(ctx))
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	s.stopReceive, s.stopWork = stopReceive, stopWork
	for range cfg.Workers {
		s.workersDone.Go(func() { w.run(recvCtx, workCtx) })
	}
	loopCtx, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	s.stopLoops = stopLoops
	s.loopsDone.Go(func() { s.refreshLoop(loopCtx) })
	s.loopsDone.Go(func() { s.flushLoop(loopCtx) })
	s.loopsDone.Go(func() { s.every(loopCtx, cfg.MaintainEvery, s.maintain) })
	s.loopsDone.Go(func() {
		s.every(loopCtx, callSampleEvery, func(context.Context) { s.calls.sample(time.Now()) })
	})
	s.progressOut = &progressPrinter{w: cfg.Stdout}
	s.loopsDone.Go(func() { s.every(loopCtx, cfg.ProgressEvery, s.printProgress) })

	s.log.LogAttrs(ctx, slog.LevelInfo, "local stack started",
		slog.String("ingest_url", s.ingestURL), slog.String("pinterest_url", s.apiURL),
		slog.Bool("simulator", s.sim != nil), slog.String("data_dir", cfg.DataDir), slog.Int("workers", cfg.Workers))
	return s, nil
}

// startPinterest decides where uploads go: the built-in simulator with a
// provisioned token, or cfg.PinterestURL with the token already in store.
func (s *Stack) startPinterest(ctx context.Context, store token.FileStore) error {
	cfg := s.cfg
	if cfg.PinterestURL == "" {
		s.adAccount = cfg.AdAccountID
		if s.adAccount == "" {
			s.adAccount = DefaultAdAccountID
		}
		sim, err := startSimulator(ctx, cfg, s.adAccount, store)
		if err != nil {
			return err
		}
		s.sim = sim
		s.apiURL = sim.root + "/v5"
		return nil
	}
	s.apiURL = cfg.PinterestURL
	t, err := store.Load(ctx)
	if errors.Is(err, token.ErrNotFound) {
		return fmt.Errorf("no Pinterest token in %s: run pinlist connect --store file:%s first, "+
			"or leave PINTEREST_API_BASE_URL unset to use the built-in simulator", store.Path, store.Path)
	}
	if err != nil {
		return err
	}
	s.adAccount = cfg.AdAccountID
	if s.adAccount == "" {
		s.adAccount = t.AdAccountID
	}
	if s.adAccount == "" {
		return errors.New("no ad account: set PINTEREST_AD_ACCOUNT_ID (the token file names none)")
	}
	return nil
}

// newUploader builds the Pinterest client, the upload handler and the
// refresher over the token file.
func (s *Stack) newUploader(store token.FileStore) (*upload.Handler, error) {
	cfg := s.cfg
	s.accessToken = token.NewAccessTokenSource(store)
	client, err := pinterest.New(pinterest.Options{
		AdAccountID: s.adAccount,
		BaseURL:     s.apiURL,
		TokenSource: s.accessToken,
		HTTPClient:  &http.Client{Timeout: pinterestCallTimeout},
		WriteRate:   cfg.WriteRate, // 0: Pinterest's budget, adapted to its answers
		Logger:      s.log.With("component", "pinterest"),
	})
	if err != nil {
		return nil, err
	}
	s.calls = &callHistory{stats: client.Stats}
	up, err := upload.New(upload.Options{
		Client:               client,
		Ledger:               s.ledger.SQLite,
		Names:                s.ledger.SQLiteNames,
		AccessToken:          tokenTrouble{s.accessToken, s.refreshNow},
		MaxRecordsPerRequest: cfg.MaxRecordsPerRequest,
		ConnectionName:       cfg.ConnectionName,
		Logger:               s.log.With("component", "upload"),
		// EMF lines are for CloudWatch; the progress line says the same here.
		Metrics: io.Discard,
	})
	if err != nil {
		return nil, err
	}
	s.uploader = up
	apiURL := s.apiURL
	s.refresher, err = refresh.New(refresh.Options{
		Store: store,
		NewRefresher: func(t token.Token) refresh.TokenRefresher {
			return pinterest.NewOAuth(pinterest.OAuthConfig{
				ClientID: t.ClientID, ClientSecret: t.ClientSecret, BaseURL: apiURL,
				HTTPClient: &http.Client{Timeout: oauthTimeout},
			})
		},
		RefreshBefore:    cfg.RefreshBefore,
		Probe:            refresh.PinterestProbe(apiURL, s.adAccount, &http.Client{Timeout: oauthTimeout}),
		Alerts:           refresh.LogAlerter{Logger: s.log.With("component", "refresh")},
		Connection:       cfg.ConnectionName,
		ReconnectCommand: "pinlist connect --store file:" + store.Path,
		Logger:           s.log.With("component", "refresh"),
	})
	if err != nil {
		return nil, err
	}
	return up, nil
}

// ledgerTx is the local membership ledger and audience name store: SQLite
// tables in the queue's database, so a batch is recorded in the same
// transaction that deletes its messages.
type ledgerTx struct {
	*ledger.SQLite
	*ledger.SQLiteNames
}

func openLedger(ctx context.Context, q *queue.Local, guard time.Duration) (ledgerTx, error) {
	store, err := ledger.NewSQLite(ctx, ledger.SQLiteOptions{DB: q.DB(), ErasureGuard: guard})
	if err != nil {
		return ledgerTx{}, err
	}
	names, err := ledger.NewSQLiteNames(ctx, ledger.SQLiteOptions{DB: q.DB()})
	if err != nil {
		return ledgerTx{}, err
	}
	return ledgerTx{store, names}, nil
}

// wakeFlusher tells the flush loop that rows may be pending, without
// blocking.
func (s *Stack) wakeFlusher() {
	select {
	case s.flushWake <- struct{}{}:
	default:
	}
}

// flushSweep is how often the flush loop looks for pending rows when
// nothing woke it: what a failed flush left pending is sent then.
const flushSweep = 10 * time.Second

// flushLoop sends the ledger's pending rows to Pinterest: at once, then
// whenever a batch was recorded, and every flushSweep. One loop flushes
// every list in turn, so each call carries what accumulated for its list
// and op while the others were sent (the Pinterest client paces writes to
// the account's budget). A round that deferred a backlog's remainder
// (upload.Handler.FlushRound) is followed by the next one at once.
func (s *Stack) flushLoop(ctx context.Context) {
	t := time.NewTicker(flushSweep)
	defer t.Stop()
	for {
		f, err := s.uploader.FlushRound(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "flush left rows pending; they are sent on a later flush", slog.String("error", err.Error()))
		}
		if f.Deferred > 0 && ctx.Err() == nil {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-s.flushWake:
		case <-t.C:
		}
	}
}

// tokenTrouble is what the upload handler invalidates on a 401: the access
// token source (reload the token file) and, without blocking, a request to the
// refresh loop to check the token with Pinterest now — an access token
// refused before its stored expiry is then refreshed at once, not at the
// next scheduled run.
type tokenTrouble struct {
	src *token.AccessTokenSource
	now chan<- struct{}
}

func (t tokenTrouble) Invalidate() {
	t.src.Invalidate()
	select {
	case t.now <- struct{}{}:
	default:
	}
}

// refreshCheckGap is the least time between two refresh runs asked for by
// token trouble, so a stream of 401s costs one probe a while, not one each.
const refreshCheckGap = 5 * time.Second

// refreshLoop runs the token refresh now, then every RefreshEvery and when
// the uploads report token trouble. A refreshed pair makes the uploads'
// access token source reload it at once.
func (s *Stack) refreshLoop(ctx context.Context) {
	run := func(ctx context.Context) {
		res, err := s.refresher.Run(ctx, false)
		if err != nil {
			if ctx.Err() == nil {
				s.log.LogAttrs(ctx, slog.LevelError, "token refresh failed", slog.String("error", err.Error()))
			}
			return
		}
		if res.Refreshed {
			s.accessToken.Invalidate()
		}
	}
	run(ctx)
	t := time.NewTicker(s.cfg.RefreshEvery)
	defer t.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.refreshNow:
			if time.Since(last) < refreshCheckGap {
				continue
			}
		}
		last = time.Now()
		run(ctx)
	}
}

// maintain is the queue's housekeeping.
func (s *Stack) maintain(ctx context.Context) {
	if err := s.queue.Maintain(ctx); err != nil && ctx.Err() == nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "queue maintenance", slog.String("error", err.Error()))
	}
	// Erased rows whose guard ran out go, and with them the hashes.
	if n, err := s.ledger.Purge(ctx); err != nil && ctx.Err() == nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "ledger purge of erased rows", slog.String("error", err.Error()))
	} else if n > 0 {
		s.log.LogAttrs(ctx, slog.LevelInfo, "erased rows past their guard deleted from the ledger", slog.Int64("rows", n))
	}
}

// printProgress prints the progress line if work flows (progressPrinter).
func (s *Stack) printProgress(ctx context.Context) {
	p, err := progress(ctx, s.count, s.queue)
	if err != nil {
		if ctx.Err() == nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "read progress", slog.String("error", err.Error()))
		}
		return
	}
	s.progressOut.tick(p)
}

// every calls fn every d until ctx ends.
func (s *Stack) every(ctx context.Context, d time.Duration, fn func(context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}

// Close shuts the stack down: the ingest server stops accepting and lets
// requests in flight finish; the workers stop receiving, batches in flight
// get ShutdownGrace to finish and are then cancelled (their unapplied
// messages return to the queue at once); the background loops stop; the
// queue is closed (its WAL checkpointed) and the simulator stopped. It
// prints a last progress line if anything changed since the previous one. Calls after the first return the first
// one's result.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Stack) close() error {
	var errs []error
	if err := shutdownHTTP(s.ingestHTTP, httpShutdownTimeout, s.log); err != nil {
		errs = append(errs, fmt.Errorf("shut down the ingest server: %w", err))
	}
	if err := <-s.served; !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, fmt.Errorf("serve the ingest routes: %w", err))
	}

	s.stopReceive()
	done := make(chan struct{})
	go func() { s.workersDone.Wait(); close(done) }()
	grace := time.NewTimer(s.cfg.ShutdownGrace)
	select {
	case <-done:
	case <-grace.C:
		s.log.Warn("batches still in flight after the shutdown grace period: cancelling them; their messages return to the queue")
		s.stopWork()
		<-done
	}
	grace.Stop()
	s.stopWork()
	s.stopLoops()
	s.loopsDone.Wait()

	// The loops have stopped: the printer is this goroutine's now.
	s.printProgress(context.Background())
	if err := s.queue.Close(); err != nil {
		errs = append(errs, err)
	}
	if s.sim != nil {
		if err := s.sim.close(simShutdownTimeout, s.log); err != nil {
			errs = append(errs, err)
		}
	}
	s.log.Info("local stack stopped")
	return errors.Join(errs...)
}

// IngestURL is the ingest server's base URL, e.g. "http://127.0.0.1:8080".
func (s *Stack) IngestURL() string { return s.ingestURL }

// IngestToken is the bearer token the ingest routes want.
func (s *Stack) IngestToken() string { return s.ingestToken }

// PinterestURL is the API v5 base URL uploads go to.
func (s *Stack) PinterestURL() string { return s.apiURL }

// AdAccountID is the ad account the lists are kept in.
func (s *Stack) AdAccountID() string { return s.adAccount }

// SimulatorURL is the built-in simulator's root URL (its API is under /v5,
// its inspection API under /_sim/); "" with a Pinterest URL.
func (s *Stack) SimulatorURL() string {
	if s.sim == nil {
		return ""
	}
	return s.sim.root
}

// Progress is a snapshot of the work done since start and of the queue.
func (s *Stack) Progress(ctx context.Context) (Progress, error) {
	return progress(ctx, s.count, s.queue)
}

// PrintBanner prints what runs where to the configured stdout: the ingest
// URL and token, Pinterest (or the simulator), the data directory and a
// curl command to try.
func (s *Stack) PrintBanner() {
	w := s.cfg.Stdout
	dataDir := s.cfg.DataDir
	if abs, err := filepath.Abs(dataDir); err == nil {
		dataDir = abs
	}
	fmt.Fprintln(w, "pinlist serve: the connector, running locally")
	fmt.Fprintf(w, "  ingest:        %s  (POST /v1/profiles, POST /v1/audiences, GET /healthz, GET /status)\n", s.ingestURL)
	tokenRef := "$PINLIST_INGEST_TOKEN"
	switch s.tokenOrigin {
	case ingestTokenGenerated:
		fmt.Fprintf(w, "  ingest token:  %s\n", s.ingestToken)
		fmt.Fprintf(w, "                 (generated now and stored in %s; shown only this once)\n", IngestTokenPath(s.cfg.DataDir))
		tokenRef = "$(cat " + IngestTokenPath(s.cfg.DataDir) + ")"
	case ingestTokenStored:
		fmt.Fprintf(w, "  ingest token:  in %s\n", IngestTokenPath(s.cfg.DataDir))
		tokenRef = "$(cat " + IngestTokenPath(s.cfg.DataDir) + ")"
	default:
		fmt.Fprintln(w, "  ingest token:  from PINLIST_INGEST_TOKEN")
	}
	if s.sim != nil {
		fmt.Fprintf(w, "  pinterest:     built-in simulator at %s (in memory: it starts empty on every start)\n", s.apiURL)
		if s.cfg.SimWriteLimit > 0 {
			fmt.Fprintf(w, "  write limit:   %d calls a minute per ad account, like Pinterest's (--sim-write-limit)\n", s.cfg.SimWriteLimit)
		}
		fmt.Fprintf(w, "  inspect:       %s/_sim/state\n", s.sim.root)
	} else {
		fmt.Fprintf(w, "  pinterest:     %s\n", s.apiURL)
	}
	fmt.Fprintf(w, "  ad account:    %s\n", s.adAccount)
	fmt.Fprintf(w, "  data dir:      %s  (queue, token file)\n", dataDir)
	fmt.Fprintf(w, "  workers:       %d audiences in parallel\n", s.cfg.Workers)
	if s.cfg.BatchWindow > 0 {
		fmt.Fprintf(w, "  batches:       up to %d messages of an audience, held up to %v to fill\n", s.cfg.BatchSize, s.cfg.BatchWindow)
	} else {
		fmt.Fprintf(w, "  batches:       up to %d messages of an audience, no batching window\n", s.cfg.BatchSize)
	}
	fmt.Fprintf(w, "  try:           curl -s -H \"Authorization: Bearer %s\" -H 'Content-Type: application/json' --data-binary @examples/profiles.json %s%s\n",
		tokenRef, s.ingestURL, ingest.PathProfiles)
	fmt.Fprintf(w, "  status page:   %s%s", s.ingestURL, PathStatus)
	if s.statusNeedsToken {
		fmt.Fprint(w, "  (not on a loopback address: it asks for the ingest token)")
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "  status:        pinlist status")
}

// countingSender is the ingest handler's queue sender: it counts what was
// enqueued and wakes an idle worker.
type countingSender struct {
	q      queue.Sender
	count  *counters
	notify func()
}

func (c *countingSender) SendBatch(ctx context.Context, msgs []queue.Outgoing) ([]int, error) {
	failed, err := c.q.SendBatch(ctx, msgs)
	if err != nil {
		return failed, err
	}
	var changes, sent int64
	for i, m := range msgs {
		if !slices.Contains(failed, i) {
			changes += countRecords(m.Body)
			sent++
		}
	}
	c.count.received.Add(changes)
	c.count.messagesReceived.Add(sent)
	if sent > 0 {
		c.notify()
	}
	return failed, nil
}
