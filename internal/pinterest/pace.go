package pinterest

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The write pace adapts to what Pinterest says about its write budget:
//
//   - Until a write has been answered, one write at a time goes out: its
//     answer's headers (or 429) say what the budget is before a client
//     spends a burst on it.
//   - Writes start evenly spaced at the configured rate (Options.WriteRate,
//     by default Pinterest's 400 a minute), never faster, and never faster
//     than X-RateLimit-Limit (calls a minute) once Pinterest has sent one.
//   - A 429 halves the pace (down to a hundredth of its ceiling) and holds
//     every write back until its Retry-After (else X-RateLimit-Reset) has
//     passed, plus a random share of one interval at the new pace: the
//     writers that share the client wait together instead of each spending
//     a call on another 429, and clients that share the budget do not all
//     come back at the same instant.
//   - A success that says the budget is spent (X-RateLimit-Remaining 0)
//     is a 429 that did not happen yet: it halves the pace and holds writes
//     back until X-RateLimit-Reset (plus the same jitter); one that says
//     calls remain and when the window resets spaces
//     the next write so that what remains lasts until then, without
//     growing the pace.
//   - A success whose X-RateLimit-Remaining is below a quarter of the most
//     it has read slows the pace by a tenth: the budget is draining, because
//     the client or others sharing the budget write faster than it refills;
//     below half it holds the pace. This slows down before the 429, which
//     matters when several clients (Lambdas) share one budget.
//   - Any other success raises the pace by a fiftieth of its ceiling, so it
//     recovers from a halving over some 25 calls, not at once.
//
// The headers are hints: Pinterest documents none of them, so the pacer
// works on 429s alone when they are missing.
const (
	paceBackoff  = 0.5 // the pace is multiplied by this on a 429
	paceRecovery = 50  // a success adds ceiling/paceRecovery to the pace
	paceFloor    = 100 // the pace never drops below ceiling/paceFloor
	paceDrain    = 0.9 // the pace is multiplied by this while the budget drains
)

// pacer spaces a client's write calls. It is safe for concurrent use.
type pacer struct {
	mu      sync.Mutex
	max     float64   // configured calls a second: the pace never exceeds it
	ceiling float64   // max, lowered to X-RateLimit-Limit/60 when Pinterest says so
	rate    float64   // current calls a second
	next    time.Time // the earliest start of the next write
	hold    time.Time // no write starts before it, booked or not
	calm    time.Time // the pace is not lowered again before it
	peak    int       // the most X-RateLimit-Remaining read: the budget's burst
	learned bool      // a write has been answered
	probing bool      // the first write is out, unanswered
	jitter  func(time.Duration) time.Duration
}

func newPacer(perSecond float64, jitter func(time.Duration) time.Duration) *pacer {
	return &pacer{max: perSecond, ceiling: perSecond, rate: perSecond, jitter: jitter}
}

// reserve books the next write slot at or after now and returns how long to
// wait for it, and a function that gives the slot back (when the caller
// does not take it after all). While the first write is out unanswered it
// books nothing (booked false): the caller waits the returned time and asks
// again.
func (p *pacer) reserve(now time.Time) (wait time.Duration, undo func(), booked bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.learned {
		if p.probing {
			return p.interval(), func() {}, false
		}
		p.probing = true
	}
	start := now
	if p.next.After(start) {
		start = p.next
	}
	prev, end := p.next, start.Add(p.interval())
	p.next = end
	probe := p.probing && !p.learned
	undo = func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.next.Equal(end) {
			p.next = prev
		}
		if probe {
			p.probing = false
		}
	}
	return start.Sub(now), undo, true
}

// settled is told when a write attempt is over, answered or not: a probe
// that got no answer (a network error) lets the next write probe.
func (p *pacer) settled() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.probing = false
}

// interval is the time between write starts at the current pace.
func (p *pacer) interval() time.Duration {
	return min(time.Duration(float64(time.Second)/p.rate), maxRetryAfter)
}

// holdUntil keeps every write from starting before t, also those that
// booked a slot before (see held).
func (p *pacer) holdUntil(t time.Time) {
	if t.After(p.next) {
		p.next = t
	}
	if t.After(p.hold) {
		p.hold = t
	}
}

// holdFor holds every write back for d from now plus a random share of one
// interval at the current pace, so that clients reading the same answer
// (a shared budget) do not all come back at the same instant.
func (p *pacer) holdFor(now time.Time, d time.Duration) {
	p.holdUntil(now.Add(d + p.jitter(p.interval())))
}

// held reports whether a hold, set while a writer waited for its slot,
// still keeps writes back at now: the writer must book again.
func (p *pacer) held(now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hold.After(now)
}

// observe adapts the pace to a write's answer.
func (p *pacer) observe(status int, h http.Header, now time.Time) {
	hint := parseBudgetHint(h, now)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.learned = true
	p.peak = max(p.peak, hint.remaining)
	if hint.perMinute > 0 {
		p.ceiling = min(p.max, hint.perMinute/60)
		if p.rate > p.ceiling {
			// Slots booked at the old pace are too close: space them anew.
			p.rate = p.ceiling
			p.holdFor(now, p.interval())
		}
	}
	switch {
	case status == http.StatusTooManyRequests:
		p.slowDown(paceBackoff, now)
		p.holdFor(now, retryAfter(h, now))
	case status < 200 || status > 299:
		// Not about the budget.
	case hint.remaining == 0:
		p.slowDown(paceBackoff, now)
		p.holdFor(now, hint.reset)
	case hint.remaining > 0 && hint.reset > 0:
		p.holdUntil(now.Add(hint.reset / time.Duration(hint.remaining)))
	case hint.remaining >= 0 && hint.remaining*4 < p.peak:
		p.slowDown(paceDrain, now)
	case hint.remaining >= 0 && hint.remaining*2 < p.peak:
		// Draining slowly: hold the pace.
	default:
		p.rate = min(p.rate+p.ceiling/paceRecovery, p.ceiling)
	}
}

// slowDown multiplies the pace by factor, unless it was lowered less than
// two intervals ago: the answers to writes sent before the last slowdown
// say nothing about the new pace, and several writers (or clients) reading
// the same signal would otherwise slow down many times over.
func (p *pacer) slowDown(factor float64, now time.Time) {
	if now.Before(p.calm) {
		return
	}
	p.rate = max(p.rate*factor, p.ceiling/paceFloor)
	p.calm = now.Add(2 * p.interval())
}

// budgetHint is what a reply's X-RateLimit headers say.
type budgetHint struct {
	perMinute float64       // X-RateLimit-Limit; 0: not said
	remaining int           // X-RateLimit-Remaining; -1: not said
	reset     time.Duration // X-RateLimit-Reset; 0: not said or now
}

func parseBudgetHint(h http.Header, now time.Time) budgetHint {
	hint := budgetHint{remaining: -1, reset: rateLimitReset(h, now)}
	// Less than a call a minute is no budget Pinterest would run: garbage.
	if v, ok := firstNumber(h.Get("X-RateLimit-Limit")); ok && v >= 1 && v < 1e9 {
		hint.perMinute = v
	}
	if v, ok := firstNumber(h.Get("X-RateLimit-Remaining")); ok && v >= 0 && v < 1e9 {
		hint.remaining = int(v)
	}
	return hint
}

// firstNumber reads the number a header value starts with ("400", or
// "400, 400;w=60" in the IETF draft's style).
func firstNumber(v string) (float64, bool) {
	if i := strings.IndexAny(v, ",;"); i >= 0 {
		v = v[:i]
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || f != f { // f != f: NaN
		return 0, false
	}
	return f, true
}
