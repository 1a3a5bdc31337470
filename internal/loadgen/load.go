package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pinlist/pinlist/internal/config"
)

// Shape is the shape of the traffic RunLoad offers.
type Shape string

const (
	// ShapeAEP (the default) is Adobe's HTTP API destination: at most ten
	// profiles a body, each with all its memberships (most unchanged),
	// bodies retried after RetryDelays and older bodies replayed after
	// newer ones (AEPGenerator). Phases: a warm-up that creates the lists,
	// saturation, then a paced phase at FixedRate state flips per second;
	// then, unless SkipSecondPass, a second pass of every body.
	ShapeAEP Shape = "aep"
	// ShapeBulk is large bodies of new joins and exits of earlier joins
	// (Generator): a fixed offered load, then saturation.
	ShapeBulk Shape = "bulk"
)

// LoadOptions configure RunLoad; zero fields take the defaults.
type LoadOptions struct {
	// Shape is the traffic's shape (default ShapeAEP).
	Shape Shape
	// Ingest posts to `pinlist serve`; Sim reads the simulator it uploads to.
	Ingest *Ingest
	Sim    *Sim
	// Profiles is how many profiles are posted at saturation and before it
	// (default 200,000). Bulk: the fixed-load phase's, then the rest at
	// saturation. AEP: the saturation phase's profile sends.
	Profiles int
	// WarmupProfiles is the AEP warm-up's profile sends (default 2,000),
	// posted at saturation before the measured phases: it creates the
	// lists.
	WarmupProfiles int
	// BodyProfiles is the profiles per body at saturation (default 500,
	// AEP 10 and at most MaxAEPProfiles); Concurrency the requests in
	// flight at once (default 8).
	BodyProfiles int
	Concurrency  int
	// FixedRate is the offered load of the paced phase (bulk: the first;
	// AEP: the last) in changes per second (default 1,000; AEP counts state
	// flips), for FixedDuration (default 30s), in bodies of
	// FixedBodyProfiles (default 50, AEP 10). A negative FixedDuration skips
	// the phase.
	FixedRate         float64
	FixedDuration     time.Duration
	FixedBodyProfiles int
	// RetryDelays are when, after its 202, a body AEP retries is posted
	// again (default 15s and 30s, AEP's schedule). ReplayDelay is when,
	// after a body's 202, the older bodies it replays are posted (default
	// 3s: longer than serve's batch window, so the replay is a request of
	// its own, not coalesced with the newer one).
	RetryDelays []time.Duration
	ReplayDelay time.Duration
	// Budget is the Pinterest write calls a minute the simulator allows
	// (`pinlist sim --write-limit`, default 400): the AEP goals are
	// computed with it.
	Budget int
	// GiveUpQuiet (AEP; default 30s): when the simulator still differs
	// from the oracle after the writes have stopped this long, the phase
	// ends and the difference is reported instead of waited for. Zero in
	// bulk: wait up to SettleTimeout, then fail.
	GiveUpQuiet time.Duration
	// SkipSecondPass skips the AEP second pass; SecondPassQuiet is how long
	// the write calls must stay still after its last 202 (default 5s; it
	// must be longer than serve's batch window and poll interval, or the
	// writes come after the count).
	SkipSecondPass  bool
	SecondPassQuiet time.Duration
	// AEP shapes ShapeAEP traffic (its ExitLag is set by RunLoad).
	AEP AEPOptions
	// MaxRecords is the connector's most records per Pinterest call
	// (default config.DefaultMaxRecordsPerRequest): the lower bound of the
	// calls is computed with it.
	MaxRecords int
	// ServePID is the process whose peak memory is reported (0: none).
	ServePID int
	// A freshness marker is posted every MarkerEvery (default 200ms) while
	// fewer than MaxMarkers (default 16) are in flight. A marker's list is
	// read every tenth of the marker's age, at least every MarkerPollMax
	// (default 250ms) and at most every 10ms: a sample is at most 10 % (or
	// 10ms) late.
	MarkerEvery   time.Duration
	MaxMarkers    int
	MarkerPollMax time.Duration
	// SettleTimeout bounds the wait for the simulator to reach the expected
	// state after the last body (default 10m). The whole state is read once
	// the Pinterest writes have stopped for SettleQuiet (default 1s).
	SettleTimeout time.Duration
	SettleQuiet   time.Duration
	// Gen shapes the traffic. Its ExitLag is set by RunLoad.
	Gen GenOptions
	// Progress receives a progress line every ProgressEvery (default 2s).
	Progress      io.Writer
	ProgressEvery time.Duration
}

func (o LoadOptions) withDefaults() LoadOptions {
	if o.Shape == "" {
		o.Shape = ShapeAEP
	}
	aep := o.Shape == ShapeAEP
	if o.Profiles <= 0 {
		o.Profiles = 200_000
	}
	if o.WarmupProfiles <= 0 {
		o.WarmupProfiles = 2000
	}
	if o.BodyProfiles <= 0 {
		o.BodyProfiles = 500
		if aep {
			o.BodyProfiles = MaxAEPProfiles
		}
	}
	if o.FixedBodyProfiles <= 0 && aep {
		o.FixedBodyProfiles = MaxAEPProfiles
	}
	if aep {
		o.BodyProfiles = min(o.BodyProfiles, MaxAEPProfiles)
		o.FixedBodyProfiles = min(o.FixedBodyProfiles, MaxAEPProfiles)
	}
	if len(o.RetryDelays) == 0 {
		o.RetryDelays = []time.Duration{15 * time.Second, 30 * time.Second}
	}
	if o.ReplayDelay <= 0 {
		o.ReplayDelay = 3 * time.Second
	}
	if o.Budget <= 0 {
		o.Budget = 400
	}
	if o.GiveUpQuiet <= 0 && aep {
		o.GiveUpQuiet = 30 * time.Second
	}
	if o.SecondPassQuiet <= 0 {
		o.SecondPassQuiet = 5 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.FixedRate <= 0 {
		o.FixedRate = 1000
	}
	if o.FixedDuration == 0 {
		o.FixedDuration = 30 * time.Second
	}
	if o.FixedBodyProfiles <= 0 {
		o.FixedBodyProfiles = 50
	}
	if o.MaxRecords <= 0 {
		o.MaxRecords = config.DefaultMaxRecordsPerRequest
	}
	if o.MarkerEvery <= 0 {
		o.MarkerEvery = 200 * time.Millisecond
	}
	if o.MaxMarkers <= 0 {
		o.MaxMarkers = 16
	}
	if o.MarkerPollMax <= 0 {
		o.MarkerPollMax = 250 * time.Millisecond
	}
	if o.SettleTimeout <= 0 {
		o.SettleTimeout = 10 * time.Minute
	}
	if o.SettleQuiet <= 0 {
		o.SettleQuiet = time.Second
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	// The phase and its progress ticker both print.
	o.Progress = &lockedWriter{w: o.Progress}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 2 * time.Second
	}
	// A body may exit joins of bodies at least this far back; the driver
	// posts a body only once every body that far back was accepted.
	o.Gen.ExitLag = 2 * o.Concurrency
	o.AEP.ExitLag = 2 * o.Concurrency
	return o
}

// LoadResult is what a load run measured.
type LoadResult struct {
	Shape      Shape
	Warmup     PhaseResult // AEP only
	Fixed      PhaseResult // the fixed offered load (zero when skipped)
	Saturation PhaseResult
	// SecondPass is the AEP second pass (nil when skipped or bulk).
	SecondPass *SecondPassResult
	// Throttled is the calls the simulator answered 429, when it reports
	// them (ThrottledKnown).
	Throttled      int
	ThrottledKnown bool
	// Budget is the write calls a minute the simulator allowed.
	Budget int
	// RetryDelays are the AEP retries' delays after a body's 202.
	RetryDelays []time.Duration
	// Calls is every Pinterest API call the simulator served, by route;
	// WriteCalls the customer list creates and updates among them, and
	// LowerBound the fewest that could have carried the records (for each
	// list and operation, ceil(records / MaxRecords)).
	Calls      map[string]int
	WriteCalls int
	LowerBound int
	MaxRecords int
	// Lists is how many customer lists the run filled; Identifiers the
	// distinct (audience, list type, identifier) it touched.
	Lists       int
	Identifiers int
	// PeakRSS is the server's VmHWM in bytes (0 without ServePID).
	PeakRSS int64
	// Generated is the time spent making the bodies before the run.
	Generated time.Duration
}

// PhaseResult is one phase's measurements.
type PhaseResult struct {
	Name     string
	Bodies   int
	Profiles int
	// Changes is the identity changes posted: the sum of the 202 answers'
	// changesEnqueued (equal to the oracle's count for every body).
	Changes int
	// Posting is from the first POST to the last 202; Converged from the
	// first POST until the simulator held the expected state.
	Posting   time.Duration
	Converged time.Duration
	// OfferedRate is the paced rate (0 at saturation); PostedRate the
	// changes per second over Posting; Throughput over Converged: the
	// sustained end-to-end rate.
	OfferedRate float64
	PostedRate  float64
	Throughput  float64
	Ingest      Summary // latency of each POST answered 202
	Freshness   Summary // a marker's POST until it is in its list
	Retries     int     // POSTs sent again after a 5xx or a lost connection
	// WriteCalls is the customer list creates and updates during the
	// phase; LowerBound the fewest that could carry the phase's changes
	// (for each list and operation, ceil(identifiers changed / MaxRecords)).
	WriteCalls int
	LowerBound int
	// Messages is the queue messages the bodies became (the 202 answers'
	// "messages").
	Messages int

	// AEP only. Flips is the state flips the phase delivers (identifiers
	// whose membership of a list differs at the end of the phase from its
	// start, markers included), and LowerBound is computed from them.
	// Resent, Stale and NoOps are the changes of the phase's bodies that
	// flip nothing (BodyStats; each body counted once, its retries and
	// replays not). FollowUps is the retried and replayed posts;
	// OfferedFlipRate is Flips over Posting (the paced phase: the rate it
	// offered), Sustained is Flips over Converged. Mismatch describes how
	// the simulator's lists differ from the oracle's when the phase gave up
	// waiting (GiveUpQuiet).
	Flips           int
	Resent          int
	Stale           int
	NoOps           int
	FollowUps       int
	OfferedFlipRate float64
	Sustained       float64
	Throttled       int
	Mismatch        []string
	// PairFlips is Flips by list and operation (one entry for each with
	// any), in no order: what FreshCeiling needs.
	PairFlips []int
}

// SecondPassResult is what re-sending every profile of the run with its
// memberships unchanged, after the lists converged, caused: with a ledger,
// nothing.
type SecondPassResult struct {
	Bodies     int
	Profiles   int
	Changes    int
	WriteCalls int
	// Mismatch describes how the lists differ from the oracle's afterwards.
	Mismatch []string
}

// job is one body to post.
type job struct {
	index   int // global body index, for the exit watermark
	body    []byte
	changes int
	pace    int // what the offered rate counts: changes (bulk) or flips (AEP)
	profs   int
	// followUp: a retry or replay, posted without waiting for the
	// watermark and not counted as the phase's load.
	followUp  bool
	followUps []followUp
}

// followUp is a body posted again delay after a job's 202.
type followUp struct {
	job   *job
	delay time.Duration
}

// RunLoad runs the load benchmark: it generates every body first, posts the
// fixed-load phase at FixedRate and waits for the simulator to hold the
// expected membership, then posts the rest as fast as Concurrency allows and
// waits again. Every body must be accepted (a 5xx or a lost connection is
// retried, as a caller would) and every 202 must count the changes the
// oracle counts; the simulator must end with exactly the expected
// membership.
func RunLoad(ctx context.Context, o LoadOptions) (*LoadResult, error) {
	o = o.withDefaults()
	if o.Ingest == nil || o.Sim == nil {
		return nil, errors.New("run load: Ingest and Sim are required")
	}
	switch o.Shape {
	case ShapeAEP:
		return runAEP(ctx, o)
	case ShapeBulk:
	default:
		return nil, fmt.Errorf("run load: unknown shape %q (want %s or %s)", o.Shape, ShapeAEP, ShapeBulk)
	}
	res := &LoadResult{Shape: ShapeBulk, MaxRecords: o.MaxRecords, Budget: o.Budget}
	gen := NewGenerator(o.Gen)
	oracle := NewOracle()

	start := time.Now()
	fmt.Fprintf(o.Progress, "generating %d profiles ...\n", o.Profiles)
	var fixedJobs, satJobs []job
	made := 0
	if o.FixedDuration > 0 {
		// Enough bodies to offer FixedRate for FixedDuration, counted by a
		// scratch oracle (the run's oracle takes each phase's bodies when
		// the phase starts).
		want := int(o.FixedRate * o.FixedDuration.Seconds())
		scratch := NewOracle()
		changes := 0
		for changes < want && made < o.Profiles {
			j := makeJob(gen, min(o.FixedBodyProfiles, o.Profiles-made))
			st, err := scratch.AddBody(j.body, time.Now())
			if err != nil {
				return nil, fmt.Errorf("generated body %d: %w", j.index, err)
			}
			fixedJobs = append(fixedJobs, j)
			changes += st.Changes
			made += j.profs
		}
	}
	for made < o.Profiles {
		j := makeJob(gen, min(o.BodyProfiles, o.Profiles-made))
		satJobs = append(satJobs, j)
		made += j.profs
	}
	res.Generated = time.Since(start)
	fmt.Fprintf(o.Progress, "generated %d bodies (%d fixed-load, %d saturation) in %s\n",
		len(fixedJobs)+len(satJobs), len(fixedJobs), len(satJobs), res.Generated.Round(time.Millisecond))

	r := &runner{o: o, gen: gen, oracle: oracle, listIDs: map[ListKey]string{}}
	r.accepted = newWatermark(len(fixedJobs) + len(satJobs))
	if len(fixedJobs) > 0 {
		if err := r.learnBulk(fixedJobs); err != nil {
			return nil, err
		}
		p, err := r.phase(ctx, "fixed load", fixedJobs, o.FixedRate)
		if err != nil {
			return nil, err
		}
		res.Fixed = p
	}
	if err := r.learnBulk(satJobs); err != nil {
		return nil, err
	}
	p, err := r.phase(ctx, "saturation", satJobs, 0)
	if err != nil {
		return nil, err
	}
	res.Saturation = p

	calls, err := o.Sim.Calls(ctx)
	if err != nil {
		return nil, err
	}
	res.Calls = calls
	res.WriteCalls = writeCalls(calls)
	res.LowerBound = oracle.LowerBound(o.MaxRecords)
	res.Lists = len(oracle.Counts())
	res.Identifiers = oracle.Identifiers()
	if o.ServePID > 0 {
		rss, err := PeakRSS(o.ServePID)
		if err != nil {
			return nil, err
		}
		res.PeakRSS = rss
	}
	return res, nil
}

// learnBulk gives the oracle a bulk phase's bodies before they are posted
// (no two profiles share an event time, so their order does not matter),
// and each job learns the changes its 202 must count. A second oracle sees
// only this phase, for the phase's lower bound.
func (r *runner) learnBulk(jobs []job) error {
	r.phaseOracle = NewOracle()
	for i := range jobs {
		st, err := r.oracle.AddBody(jobs[i].body, time.Now())
		if err != nil {
			return fmt.Errorf("generated body %d: %w", jobs[i].index, err)
		}
		if _, err := r.phaseOracle.AddBody(jobs[i].body, time.Now()); err != nil {
			return fmt.Errorf("generated body %d: %w", jobs[i].index, err)
		}
		jobs[i].changes = st.Changes
		jobs[i].pace = st.Changes
	}
	return nil
}

// makeJob generates and encodes the next body.
func makeJob(gen *Generator, profiles int) job {
	b := gen.Body(profiles)
	return job{index: b.Index, body: EncodeBody(b.Profiles, FormArray), profs: len(b.Profiles)}
}

// writeCalls is the customer list calls that carry records.
func writeCalls(calls map[string]int) int {
	return calls["customer_lists.create"] + calls["customer_lists.update"]
}

// runner is one load run's shared state.
type runner struct {
	o        LoadOptions
	gen      *Generator // only the marker sampler uses it once the run starts
	oracle   *Oracle
	accepted *watermark
	// phaseOracle sees the current phase's bodies only; set before the
	// phase's goroutines start.
	phaseOracle *Oracle

	mu      sync.Mutex
	listIDs map[ListKey]string
}

// phaseState is what one phase's goroutines share.
type phaseState struct {
	name      string
	start     time.Time
	posted    atomic.Int64 // changes accepted
	bodies    atomic.Int64
	messages  atomic.Int64
	retries   atomic.Int64
	inFlight  atomic.Int64
	lastOK    atomic.Int64 // UnixNano of the last 202 of the phase's own bodies
	ingest    durations
	freshness durations
	// The retries and replays in flight or waiting, and those posted.
	followUps        sync.WaitGroup
	pendingFollowUps atomic.Int64
	followUpsPosted  atomic.Int64
	failMu           sync.Mutex
	failed           error
}

// fail records the first error of a goroutine that cannot return one; the
// phase's wait for the simulator ends with it.
func (ps *phaseState) fail(err error) {
	ps.failMu.Lock()
	defer ps.failMu.Unlock()
	if ps.failed == nil {
		ps.failed = err
	}
}

func (ps *phaseState) failure() error {
	ps.failMu.Lock()
	defer ps.failMu.Unlock()
	return ps.failed
}

// phase posts jobs (paced at rate changes/s, or as fast as possible when
// rate is 0) and waits until the simulator holds the oracle's membership.
//
// The oracle already knows the jobs (and each job the changes its 202 must
// count). A job's follow-ups are posted their delay after its 202; the
// simulator's convergence is measured from the phase's own bodies, then,
// once the follow-ups are all posted, the lists are checked again.
func (r *runner) phase(ctx context.Context, name string, jobs []job, rate float64) (PhaseResult, error) {
	callsBefore, err := r.o.Sim.CallCounts(ctx)
	if err != nil {
		return PhaseResult{}, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ps := &phaseState{name: name, start: time.Now()}
	defer ps.followUps.Wait() // after the cancel above: they end early on an error
	fmt.Fprintf(r.o.Progress, "[%s] posting %d bodies with %d in flight%s\n", name, len(jobs), r.o.Concurrency, rateNote(rate, r.o.Shape))

	stopProgress := r.progress(ctx, ps, len(jobs))
	defer stopProgress()
	markersDone := make(chan struct{})
	postingDone := make(chan struct{})
	stopMarkers := make(chan struct{})
	go func() {
		defer close(markersDone)
		if err := r.markers(ctx, ps, postingDone, stopMarkers); err != nil {
			cancel(err)
		}
	}()

	work := make(chan job)
	var wg sync.WaitGroup
	for range r.o.Concurrency {
		wg.Go(func() {
			for j := range work {
				if err := r.post(ctx, ps, j); err != nil {
					cancel(err)
				}
			}
		})
	}
	sent := 0
feed:
	for _, j := range jobs {
		if rate > 0 {
			// Offer rate: body k goes out when the changes before it are due.
			due := ps.start.Add(time.Duration(float64(sent) / rate * float64(time.Second)))
			if err := sleepUntil(ctx, due); err != nil {
				break feed
			}
		}
		select {
		case work <- j:
			sent += j.pace
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(postingDone)
	if err := context.Cause(ctx); err != nil {
		close(stopMarkers)
		<-markersDone
		return PhaseResult{}, fmt.Errorf("%s phase: %w", name, err)
	}
	posting := time.Unix(0, ps.lastOK.Load()).Sub(ps.start)
	fmt.Fprintf(r.o.Progress, "[%s] all %d bodies accepted after %s; waiting for the simulator to hold the expected membership\n",
		name, len(jobs), posting.Round(time.Millisecond))

	convergedAt, mismatch, err := r.settle(ctx, ps)
	close(stopMarkers)
	<-markersDone
	if err != nil {
		return PhaseResult{}, fmt.Errorf("%s phase: %w", name, err)
	}
	if n := ps.pendingFollowUps.Load(); n > 0 {
		fmt.Fprintf(r.o.Progress, "[%s] waiting for %d retries and replays to be posted\n", name, n)
	}
	ps.followUps.Wait()
	if err := ps.failure(); err != nil {
		return PhaseResult{}, fmt.Errorf("%s phase: %w", name, err)
	}
	if err := context.Cause(ctx); err != nil {
		return PhaseResult{}, fmt.Errorf("%s phase: %w", name, err)
	}
	if ps.followUpsPosted.Load() > 0 {
		// What the retries and replays did to the lists; not to when
		// they first held the phase's changes.
		if _, mismatch, err = r.settle(ctx, ps); err != nil {
			return PhaseResult{}, fmt.Errorf("%s phase: after the retries and replays: %w", name, err)
		}
	}
	callsAfter, err := r.o.Sim.CallCounts(ctx)
	if err != nil {
		return PhaseResult{}, err
	}
	p := PhaseResult{
		WriteCalls:  writeCalls(callsAfter.Routes) - writeCalls(callsBefore.Routes),
		Throttled:   callsAfter.Throttled - callsBefore.Throttled,
		FollowUps:   int(ps.followUpsPosted.Load()),
		Mismatch:    mismatch,
		Name:        name,
		Bodies:      len(jobs),
		Changes:     int(ps.posted.Load()),
		Posting:     posting,
		Converged:   convergedAt.Sub(ps.start),
		OfferedRate: rate,
		Ingest:      ps.ingest.summary(),
		Freshness:   ps.freshness.summary(),
		Retries:     int(ps.retries.Load()),
		Messages:    int(ps.messages.Load()),
	}
	if r.phaseOracle != nil {
		p.LowerBound = r.phaseOracle.LowerBound(r.o.MaxRecords)
	} else {
		flips := r.oracle.PhaseFlips()
		p.Flips = Total(flips)
		p.PairFlips = pairFlips(flips)
		p.LowerBound = LowerBoundOf(flips, r.o.MaxRecords)
		p.OfferedFlipRate = float64(p.Flips) / p.Posting.Seconds()
		p.Sustained = float64(p.Flips) / p.Converged.Seconds()
	}
	for _, j := range jobs {
		p.Profiles += j.profs
	}
	p.PostedRate = float64(p.Changes) / p.Posting.Seconds()
	p.Throughput = float64(p.Changes) / p.Converged.Seconds()
	return p, nil
}

func rateNote(rate float64, shape Shape) string {
	unit := "identity changes"
	if shape == ShapeAEP {
		unit = "state flips"
	}
	if rate > 0 {
		return fmt.Sprintf(", offering %.0f %s/s", rate, unit)
	}
	return ", as fast as they are accepted"
}

// post sends one body once the bodies it may exit from were accepted,
// retrying what a caller retries: a lost connection and a 5xx.
func (r *runner) post(ctx context.Context, ps *phaseState, j job) error {
	if !j.followUp {
		if err := r.accepted.waitBelow(ctx, j.index-r.o.Gen.ExitLag+1); err != nil {
			return err
		}
	}
	ps.inFlight.Add(1)
	defer ps.inFlight.Add(-1)
	for attempt := 1; ; attempt++ {
		t0 := time.Now()
		a, err := r.o.Ingest.PostProfiles(ctx, j.body)
		took := time.Since(t0)
		switch {
		case err == nil && a.Status == http.StatusAccepted:
			if a.Accepted.ChangesEnqueued != j.changes {
				return fmt.Errorf("body %d: the server enqueued %d changes, the oracle counts %d", j.index, a.Accepted.ChangesEnqueued, j.changes)
			}
			ps.ingest.add(took)
			ps.messages.Add(int64(a.Accepted.Messages))
			if j.followUp {
				ps.followUpsPosted.Add(1)
				return nil
			}
			ps.posted.Add(int64(j.changes))
			ps.bodies.Add(1)
			ps.lastOK.Store(time.Now().UnixNano())
			r.accepted.done(j.index)
			r.scheduleFollowUps(ctx, ps, j)
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case err == nil && a.Status < 500:
			return fmt.Errorf("body %d: HTTP %d: %s", j.index, a.Status, a.Body)
		case attempt >= 10:
			if err == nil {
				err = fmt.Errorf("HTTP %d: %s", a.Status, a.Body)
			}
			return fmt.Errorf("body %d: gave up after %d attempts: %w", j.index, attempt, err)
		}
		ps.retries.Add(1)
		if err := sleepUntil(ctx, time.Now().Add(time.Duration(attempt)*200*time.Millisecond)); err != nil {
			return err
		}
	}
}

// scheduleFollowUps posts j's retries and replays, each its delay from now.
func (r *runner) scheduleFollowUps(ctx context.Context, ps *phaseState, j job) {
	for _, f := range j.followUps {
		ps.pendingFollowUps.Add(1)
		ps.followUps.Go(func() {
			defer ps.pendingFollowUps.Add(-1)
			if sleepUntil(ctx, time.Now().Add(f.delay)) != nil {
				return
			}
			fj := *f.job
			fj.followUp, fj.followUps = true, nil
			if err := r.post(ctx, ps, fj); err != nil && ctx.Err() == nil {
				ps.fail(fmt.Errorf("a retry or replay of body %d: %w", fj.index, err))
			}
		})
	}
}

// settle waits until the simulator holds the oracle's membership and
// returns when it first did: the time of the last Pinterest write the
// simulator saw before it matched. It polls the cheap /_sim/calls and reads
// the whole state only once the writes have stopped for SettleQuiet.
//
// With GiveUpQuiet, a difference that outlasts that long without a write
// ends the wait: the time of the last write and the difference are
// returned.
func (r *runner) settle(ctx context.Context, ps *phaseState) (time.Time, []string, error) {
	quiet := r.o.SettleQuiet
	deadline := time.Now().Add(r.o.SettleTimeout)
	last, lastWrite := -1, time.Now()
	checkAfter := lastWrite.Add(quiet)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		calls, err := r.o.Sim.Calls(ctx)
		if err != nil {
			return time.Time{}, nil, err
		}
		if err := ps.failure(); err != nil {
			return time.Time{}, nil, err
		}
		if n := writeCalls(calls); n != last {
			last, lastWrite = n, time.Now()
			checkAfter = lastWrite.Add(quiet)
		}
		if time.Now().After(checkAfter) {
			actual, ids, err := r.o.Sim.Memberships(ctx)
			if err != nil {
				return time.Time{}, nil, err
			}
			r.rememberLists(ids)
			diff := Diff(r.oracle.Expected(), actual)
			if len(diff) == 0 {
				if lastOK := time.Unix(0, ps.lastOK.Load()); lastOK.After(lastWrite) {
					return lastOK, nil, nil
				}
				return lastWrite, nil, nil
			}
			if g := r.o.GiveUpQuiet; g > 0 && time.Since(lastWrite) >= g {
				fmt.Fprintf(r.o.Progress, "[%s] no Pinterest write for %s and the lists still differ from the oracle's in %d lists: giving up the wait\n",
					ps.name, g, len(diff))
				return lastWrite, diff, nil
			}
			if time.Now().After(deadline) {
				return time.Time{}, nil, fmt.Errorf("the simulator did not reach the expected membership within %s:\n  %s",
					r.o.SettleTimeout, joinLines(diff))
			}
			fmt.Fprintf(r.o.Progress, "[%s] the simulator differs from the expected membership in %d lists, e.g. %s\n", ps.name, len(diff), diff[0])
			checkAfter = time.Now().Add(5 * quiet) // read the whole state again a little later
		}
		select {
		case <-ctx.Done():
			return time.Time{}, nil, context.Cause(ctx)
		case <-tick.C:
		}
	}
}

func joinLines(lines []string) string {
	if len(lines) > 20 {
		lines = append(lines[:20:20], fmt.Sprintf("... and %d more lists", len(lines)-20))
	}
	out := ""
	for i, l := range lines {
		if i > 0 {
			out += "\n  "
		}
		out += l
	}
	return out
}

func (r *runner) rememberLists(ids map[ListKey]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, v := range ids {
		r.listIDs[k] = v
	}
}

func (r *runner) listID(ctx context.Context, k ListKey) (string, error) {
	r.mu.Lock()
	id, ok := r.listIDs[k]
	r.mu.Unlock()
	if ok {
		return id, nil
	}
	_, ids, err := r.o.Sim.Memberships(ctx)
	if err != nil {
		return "", err
	}
	r.rememberLists(ids)
	return ids[k], nil
}

// marker is one change whose arrival in the simulator is watched for.
type marker struct {
	list     ListKey
	hash     string
	sentAt   time.Time
	nextLook time.Time
}

// markers posts a freshness marker every MarkerEvery while the load is
// posted, and watches them land until stop: each is a one-profile body
// joining a fresh IDFA to an audience (in turn), posted beside the load;
// its freshness is from the POST until the list holds it.
func (r *runner) markers(ctx context.Context, ps *phaseState, postingDone, stop <-chan struct{}) error {
	var out []*marker
	next := 0
	nextSend := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-postingDone:
			postingDone = nil // no more markers; a nil channel blocks below
		default:
		}
		posting := postingDone != nil
		if now := time.Now(); posting && !now.Before(nextSend) && len(out) < r.o.MaxMarkers {
			m, err := r.sendMarker(ctx, next%len(r.gen.Audiences()))
			if err != nil || m == nil {
				return err
			}
			next++
			out = append(out, m)
			nextSend = now.Add(r.o.MarkerEvery)
		}
		// Look at each marker whose next look is due; sleep until the
		// earliest next look or send.
		wake := time.Now().Add(r.o.MarkerPollMax)
		if posting && nextSend.Before(wake) {
			wake = nextSend
		}
		kept := out[:0]
		for _, m := range out {
			if !time.Now().Before(m.nextLook) {
				found, err := r.arrived(ctx, m)
				if err != nil {
					return err
				}
				if found {
					ps.freshness.add(time.Since(m.sentAt))
					continue
				}
				age := time.Since(m.sentAt)
				m.nextLook = time.Now().Add(min(max(age/10, 10*time.Millisecond), r.o.MarkerPollMax))
			}
			if m.nextLook.Before(wake) {
				wake = m.nextLook
			}
			kept = append(kept, m)
		}
		out = kept
		timer.Reset(time.Until(wake))
		select {
		case <-ctx.Done():
			return nil
		case <-stop:
			return nil
		case <-postingDone:
		case <-timer.C:
		}
	}
}

// sendMarker posts a marker body for audience i; nil when ctx ended.
func (r *runner) sendMarker(ctx context.Context, i int) (*marker, error) {
	p, hash := r.gen.Marker(i)
	body := EncodeBody([]Profile{p}, FormSingle)
	for _, o := range []*Oracle{r.oracle, r.phaseOracle} {
		if o == nil {
			continue
		}
		if _, err := o.AddBody(body, time.Now()); err != nil {
			return nil, fmt.Errorf("marker body: %w", err)
		}
	}
	m := &marker{list: ListKey{Audience: r.gen.AudienceKey(i), Type: ListIDFA}, hash: hash, sentAt: time.Now()}
	m.nextLook = m.sentAt.Add(10 * time.Millisecond)
	for attempt := 1; ; attempt++ {
		a, err := r.o.Ingest.PostProfiles(ctx, body)
		if err == nil && a.Status == http.StatusAccepted {
			return m, nil
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		if attempt >= 10 || err == nil && a.Status < 500 {
			if err == nil {
				err = fmt.Errorf("HTTP %d: %s", a.Status, a.Body)
			}
			return nil, fmt.Errorf("post a freshness marker: %w", err)
		}
		if err := sleepUntil(ctx, time.Now().Add(200*time.Millisecond)); err != nil {
			return nil, nil
		}
	}
}

// arrived reports whether the marker's list holds it yet.
func (r *runner) arrived(ctx context.Context, m *marker) (bool, error) {
	id, err := r.listID(ctx, m.list)
	if err != nil || id == "" {
		return false, err // the list is not created yet
	}
	recs, err := r.o.Sim.Records(ctx, id)
	if err != nil {
		return false, err
	}
	i := sort.SearchStrings(recs, m.hash)
	return i < len(recs) && recs[i] == m.hash, nil
}

// progress prints a line every ProgressEvery until the returned func is
// called.
func (r *runner) progress(ctx context.Context, ps *phaseState, total int) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(r.o.ProgressEvery)
		defer t.Stop()
		prevCalls := 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-stop:
				return
			case <-t.C:
			}
			el := time.Since(ps.start)
			calls, err := r.o.Sim.Calls(ctx)
			w := writeCalls(calls)
			callNote := fmt.Sprintf("Pinterest write calls %d (+%d)", w, w-prevCalls)
			if err != nil {
				callNote = "Pinterest calls unknown: " + err.Error()
			}
			prevCalls = w
			posted := ps.posted.Load()
			fr := ps.freshness.summary()
			fmt.Fprintf(r.o.Progress, "[%s] %5.1fs: %d/%d bodies accepted, %d changes (%.0f/s), %d in flight, %d retried; freshness samples %d (p50 %s); %s\n",
				ps.name, el.Seconds(), ps.bodies.Load(), total, posted, float64(posted)/el.Seconds(),
				ps.inFlight.Load(), ps.retries.Load(), fr.N, fr.P50.Round(time.Millisecond), callNote)
		}
	}()
	return func() { close(stop); <-done }
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-timer.C:
		return nil
	}
}

// lockedWriter serialises writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// watermark tracks which bodies were accepted: waitBelow(n) returns once
// every body with an index below n was.
type watermark struct {
	mu    sync.Mutex
	cond  *sync.Cond
	doneB []bool
	low   int // every index below low is done
}

func newWatermark(n int) *watermark {
	w := &watermark{doneB: make([]bool, n)}
	w.cond = sync.NewCond(&w.mu)
	return w
}

func (w *watermark) done(i int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if i >= len(w.doneB) { // AEP phases are generated one after another
		w.doneB = append(w.doneB, make([]bool, i+1-len(w.doneB))...)
	}
	w.doneB[i] = true
	for w.low < len(w.doneB) && w.doneB[w.low] {
		w.low++
	}
	w.cond.Broadcast()
}

func (w *watermark) waitBelow(ctx context.Context, n int) error {
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.low < n {
		if err := ctx.Err(); err != nil {
			return err
		}
		w.cond.Wait()
	}
	return nil
}
