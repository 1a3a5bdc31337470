package loadgen

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// runAEP is RunLoad for ShapeAEP: a warm-up, saturation and a paced phase
// of AEP-shaped bodies, then a second pass of every body.
func runAEP(ctx context.Context, o LoadOptions) (*LoadResult, error) {
	res := &LoadResult{Shape: ShapeAEP, MaxRecords: o.MaxRecords, Budget: o.Budget, RetryDelays: o.RetryDelays}
	gen := NewAEPGenerator(o.AEP)
	r := &runner{o: o, gen: gen.Generator(), oracle: NewOracle(), listIDs: map[ListKey]string{}}
	r.accepted = newWatermark(0)
	a := &aepRun{runner: r, gen: gen}

	var err error
	if res.Warmup, err = a.phase(ctx, "warm-up", o.BodyProfiles, 0, func(profiles, _ int) bool { return profiles >= o.WarmupProfiles }); err != nil {
		return nil, err
	}
	if res.Saturation, err = a.phase(ctx, "saturation", o.BodyProfiles, 0, func(profiles, _ int) bool { return profiles >= o.Profiles }); err != nil {
		return nil, err
	}
	if o.FixedDuration > 0 {
		want := int(o.FixedRate * o.FixedDuration.Seconds())
		name := fmt.Sprintf("%s flips/s", thousands(o.FixedRate))
		if res.Fixed, err = a.phase(ctx, name, o.FixedBodyProfiles, o.FixedRate, func(_, flips int) bool { return flips >= want }); err != nil {
			return nil, err
		}
	}
	if !o.SkipSecondPass {
		sp, err := a.secondPass(ctx)
		if err != nil {
			return nil, err
		}
		res.SecondPass = sp
	}

	calls, err := o.Sim.CallCounts(ctx)
	if err != nil {
		return nil, err
	}
	res.Calls = calls.Routes
	res.Throttled, res.ThrottledKnown = calls.Throttled, calls.ThrottledKnown
	res.WriteCalls = writeCalls(calls.Routes)
	res.LowerBound = LowerBoundOf(r.oracle.Counts(), o.MaxRecords)
	res.Lists = len(r.oracle.Counts())
	res.Identifiers = r.oracle.Identifiers()
	if o.ServePID > 0 {
		if res.PeakRSS, err = PeakRSS(o.ServePID); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// aepRun is an AEP run's generator and every body it made.
type aepRun struct {
	*runner
	gen    *AEPGenerator
	bodies []*job // by index
}

// phase generates a phase's bodies of perBody profiles until
// done(profiles, flips) says it has enough, gives them to the oracle (which
// starts counting the phase's flips here) and runs the phase at rate flips
// per second (0: as fast as they are accepted). Each body's follow-ups are
// its retries and the replays of older bodies.
func (a *aepRun) phase(ctx context.Context, name string, perBody int, rate float64, done func(profiles, flips int) bool) (PhaseResult, error) {
	a.oracle.BeginPhase()
	var out []job
	profiles, flips, resent, stale, noops := 0, 0, 0, 0, 0
	for !done(profiles, flips) {
		b := a.gen.Next(perBody)
		raw := EncodeBody(b.Profiles, FormArray)
		st, err := a.oracle.AddBody(raw, time.Now())
		if err != nil {
			return PhaseResult{}, fmt.Errorf("generated body %d: %w", b.Index, err)
		}
		j := &job{index: b.Index, body: raw, changes: st.Changes, pace: st.Flips, profs: len(b.Profiles)}
		if b.Retry {
			for _, d := range a.o.RetryDelays {
				j.followUps = append(j.followUps, followUp{job: j, delay: d})
			}
		}
		for _, old := range b.Replays {
			j.followUps = append(j.followUps, followUp{job: a.bodies[old], delay: a.o.ReplayDelay})
		}
		a.bodies = append(a.bodies, j)
		out = append(out, *j)
		profiles += j.profs
		flips += st.Flips
		resent += st.Resent
		stale += st.Stale
		noops += st.NoOps
	}
	p, err := a.runner.phase(ctx, name, out, rate)
	p.Resent, p.Stale, p.NoOps, p.OfferedRate = resent, stale, noops, rate
	return p, err
}

// secondPass, once the lists have converged, re-sends every profile of the
// run with all its memberships unchanged (AEPGenerator.Resend) and counts
// the Pinterest writes that follow until the write calls have been still
// for SecondPassQuiet: not one of its changes flips a state (the oracle
// checks), so a connector that drops what flips nothing makes no write at
// all. The bodies are new (other profiles side by side), not byte-for-byte
// re-posts, which a queue's deduplication by content would swallow.
func (a *aepRun) secondPass(ctx context.Context) (*SecondPassResult, error) {
	var jobs []job
	for _, ps := range a.gen.Resend(a.o.BodyProfiles) {
		raw := EncodeBody(ps, FormArray)
		st, err := a.oracle.AddBody(raw, time.Now())
		if err != nil {
			return nil, fmt.Errorf("second pass body: %w", err)
		}
		if st.Flips+st.NoOps+st.Stale != 0 {
			return nil, fmt.Errorf("second pass: a re-sent body changes what the oracle holds (%d flips, %d no-ops, %d stale): a generator bug", st.Flips, st.NoOps, st.Stale)
		}
		jobs = append(jobs, job{index: -1, body: raw, changes: st.Changes, profs: len(ps), followUp: true})
	}
	before, err := a.o.Sim.Calls(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ps := &phaseState{name: "second pass", start: time.Now()}
	fmt.Fprintf(a.o.Progress, "[second pass] re-sending every profile unchanged in %d bodies\n", len(jobs))
	stopProgress := a.progress(ctx, ps, len(jobs))
	defer stopProgress()
	work := make(chan job)
	var wg sync.WaitGroup
	for range a.o.Concurrency {
		wg.Go(func() {
			for j := range work {
				if err := a.post(ctx, ps, j); err != nil {
					cancel(err)
				}
			}
		})
	}
	res := &SecondPassResult{}
feed:
	for _, j := range jobs {
		select {
		case work <- j:
			res.Bodies++
			res.Profiles += j.profs
			res.Changes += j.changes
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, fmt.Errorf("second pass: %w", err)
	}
	fmt.Fprintf(a.o.Progress, "[second pass] all accepted; waiting until Pinterest has had no write for %s\n", a.o.SecondPassQuiet)
	last, still := writeCalls(before), time.Now()
	for time.Since(still) < a.o.SecondPassQuiet {
		if err := sleepUntil(ctx, time.Now().Add(100*time.Millisecond)); err != nil {
			return nil, fmt.Errorf("second pass: %w", err)
		}
		calls, err := a.o.Sim.Calls(ctx)
		if err != nil {
			return nil, err
		}
		if n := writeCalls(calls); n != last {
			last, still = n, time.Now()
		}
	}
	res.WriteCalls = last - writeCalls(before)
	actual, _, err := a.o.Sim.Memberships(ctx)
	if err != nil {
		return nil, err
	}
	res.Mismatch = Diff(a.oracle.Expected(), actual)
	return res, nil
}
