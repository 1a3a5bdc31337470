package pinterest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/pinlist/pinlist/internal/pinterestsim"
	"github.com/pinlist/pinlist/internal/retry"
)

var paceT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestPacerObserve(t *testing.T) {
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name     string
		start    float64 // pace before, calls a second (ceiling 6)
		status   int
		header   http.Header
		wantRate float64
		wantNext time.Duration // after paceT0, with the longest jitter (one interval); 0: not held back
	}{
		{"success without headers recovers a fiftieth", 3, 200, nil, 3 + 6.0/paceRecovery, 0},
		{"recovery stops at the ceiling", 6, 200, nil, 6, 0},
		{"a lower X-RateLimit-Limit lowers the ceiling and spaces anew", 6, 200, hdr("X-RateLimit-Limit", "120"), 2, time.Second},
		{"a higher X-RateLimit-Limit keeps the configured ceiling", 6, 200, hdr("X-RateLimit-Limit", "1000"), 6, 0},
		{"IETF-style limit", 6, 200, hdr("X-RateLimit-Limit", "60, 60;w=60"), 1, 2 * time.Second},
		{"429 halves and holds for Retry-After and an interval's jitter", 6, 429, hdr("Retry-After", "3"), 3, 3*time.Second + time.Second/3},
		{"429 holds for X-RateLimit-Reset without Retry-After", 6, 429, hdr("X-RateLimit-Reset", "2"), 3, 2*time.Second + time.Second/3},
		{"429 without hints holds one interval", 6, 429, nil, 3, time.Second / 3},
		{"429 never drops below the floor", 6.0 / paceFloor, 429, nil, 6.0 / paceFloor, time.Second * paceFloor / 6},
		{"budget spent: hold until reset, halve", 3, 200, hdr("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "1"), 3 * paceBackoff, time.Second + time.Second*2/3},
		{"calls left before a window reset: spread them", 3, 200, hdr("X-RateLimit-Remaining", "4", "X-RateLimit-Reset", "2"), 3, 500 * time.Millisecond},
		{"calls left, no reset: recover", 3, 200, hdr("X-RateLimit-Remaining", "4", "X-RateLimit-Reset", "0"), 3 + 6.0/paceRecovery, 0},
		{"garbled headers are ignored", 3, 200, hdr("X-RateLimit-Limit", "lots", "X-RateLimit-Remaining", "NaN", "X-RateLimit-Reset", "soon"), 3 + 6.0/paceRecovery, 0},
		{"other errors change nothing", 3, 503, nil, 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPacer(6, func(d time.Duration) time.Duration { return d }) // the longest jitter
			p.rate = tt.start
			p.observe(tt.status, tt.header, paceT0)
			if diff := p.rate - tt.wantRate; diff > 1e-9 || diff < -1e-9 {
				t.Errorf("pace %v, want %v", p.rate, tt.wantRate)
			}
			var next time.Duration
			if !p.next.IsZero() {
				next = p.next.Sub(paceT0)
			}
			if next != tt.wantNext {
				t.Errorf("held until t0+%v, want t0+%v", next, tt.wantNext)
			}
		})
	}
}

// TestPacerSequences feeds a pacer several answers in a row.
func TestPacerSequences(t *testing.T) {
	type answer struct {
		after     time.Duration // since the previous answer
		status    int
		remaining string // X-RateLimit-Remaining; "" for none
	}
	tests := []struct {
		name     string
		answers  []answer
		wantRate float64
	}{
		{"two 429s in a row slow down once", []answer{{0, 429, ""}, {10 * time.Millisecond, 429, ""}}, 3},
		{"a 429 after the calm slows down again", []answer{{0, 429, ""}, {time.Second, 429, ""}}, 1.5},
		{"a draining budget slows down by a tenth", []answer{{0, 200, "20"}, {time.Second, 200, "4"}}, 6 * paceDrain},
		{"half empty: the pace holds", []answer{{0, 200, "20"}, {time.Second, 200, "9"}}, 6},
		{"a full budget lets the pace recover", []answer{{0, 429, ""}, {time.Second, 200, "20"}}, 3 + 6.0/paceRecovery},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPacer(6, func(d time.Duration) time.Duration { return d })
			now := paceT0
			for _, a := range tt.answers {
				now = now.Add(a.after)
				h := http.Header{}
				if a.remaining != "" {
					h.Set("X-RateLimit-Remaining", a.remaining)
				}
				p.observe(a.status, h, now)
			}
			if diff := p.rate - tt.wantRate; diff > 1e-9 || diff < -1e-9 {
				t.Errorf("pace %v, want %v", p.rate, tt.wantRate)
			}
		})
	}
}

// TestPacerProbesFirst: until a write is answered, one write at a time.
func TestPacerProbesFirst(t *testing.T) {
	p := newPacer(6, retry.Jitter)
	if _, _, booked := p.reserve(paceT0); !booked {
		t.Fatal("the first write is not booked")
	}
	if wait, _, booked := p.reserve(paceT0); booked || wait <= 0 {
		t.Fatalf("a second write was booked (wait %v) before the first was answered", wait)
	}
	p.settled() // the probe failed without an answer: the next write probes
	if _, _, booked := p.reserve(paceT0); !booked {
		t.Fatal("no new probe after an unanswered one")
	}
	p.observe(200, nil, paceT0)
	if _, _, booked := p.reserve(paceT0); !booked {
		t.Fatal("writes still wait after an answer")
	}
}

func TestPacerReserveSpacesEvenlyAndUndoes(t *testing.T) {
	p := newPacer(4, retry.Jitter) // 250ms apart
	var waits []time.Duration
	for range 3 {
		d, _, _ := p.reserve(paceT0)
		waits = append(waits, d)
		p.observe(200, nil, paceT0) // answered: no more probing
	}
	d, undo, _ := p.reserve(paceT0)
	undo()
	again, _, _ := p.reserve(paceT0)
	if want := []time.Duration{0, 250 * time.Millisecond, 500 * time.Millisecond}; fmt.Sprint(waits) != fmt.Sprint(want) {
		t.Errorf("waits %v, want %v", waits, want)
	}
	if d != again {
		t.Errorf("after undo the slot %v went to %v; want it given back", d, again)
	}
}

// virtualTime is a clock that moves only when every writer sleeps: then it
// jumps to the earliest wake-up. Writers take no virtual time between
// sleeps, so a run is a discrete-event simulation of concurrent writers
// against the simulator, with no wall-clock waits and no wall-clock
// assertions.
type virtualTime struct {
	mu       sync.Mutex
	now      time.Time
	live     int // writers that have not finished
	sleepers []*sleeper
}

type sleeper struct {
	wake time.Time
	ch   chan struct{}
}

func (v *virtualTime) Now() time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.now
}

func (v *virtualTime) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	v.mu.Lock()
	s := &sleeper{wake: v.now.Add(d), ch: make(chan struct{})}
	v.sleepers = append(v.sleepers, s)
	v.advance()
	v.mu.Unlock()
	select {
	case <-s.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err() // the test ends; the clock no longer matters
	}
}

// start and done bracket a writer.
func (v *virtualTime) start() {
	v.mu.Lock()
	v.live++
	v.mu.Unlock()
}

func (v *virtualTime) done() {
	v.mu.Lock()
	v.live--
	v.advance()
	v.mu.Unlock()
}

// advance wakes the earliest sleepers when every live writer sleeps.
func (v *virtualTime) advance() {
	if v.live == 0 || len(v.sleepers) < v.live {
		return
	}
	sort.Slice(v.sleepers, func(i, j int) bool { return v.sleepers[i].wake.Before(v.sleepers[j].wake) })
	if w := v.sleepers[0].wake; w.After(v.now) {
		v.now = w
	}
	i := 0
	for ; i < len(v.sleepers) && !v.sleepers[i].wake.After(v.now); i++ {
		close(v.sleepers[i].ch)
	}
	v.sleepers = v.sleepers[i:]
}

// TestAdaptivePaceKeeps429sRare runs concurrent writers against a
// simulator whose write budget is below what the clients start at, and
// checks that 429s stay at most 5 % of the write calls and that every write
// lands.
func TestAdaptivePaceKeeps429sRare(t *testing.T) {
	tests := []struct {
		name          string
		simPerMinute  int
		clients       int // clients sharing the ad account's budget (say, Lambdas)
		writers       int // concurrent writers per client
		callsPerWrite int // updates each writer makes
	}{
		{name: "one client, budget below its start pace", simPerMinute: 120, clients: 1, writers: 8, callsPerWrite: 40},
		{name: "one client at Pinterest's budget", simPerMinute: pinterestsim.PinterestWriteLimit, clients: 1, writers: 16, callsPerWrite: 40},
		{name: "two clients share the budget", simPerMinute: 120, clients: 2, writers: 4, callsPerWrite: 40},
		{name: "four clients share a small budget", simPerMinute: 60, clients: 4, writers: 2, callsPerWrite: 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vt := &virtualTime{now: paceT0}
			sim, err := pinterestsim.New(pinterestsim.Options{
				AdAccounts: []string{testAdAccount},
				Clock:      vt.Now,
				Seed:       1,
				WriteLimit: tt.simPerMinute,
			})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(sim)
			defer srv.Close()
			access, _ := sim.IssueToken(testClientID, []string{"ads:read", "ads:write"})
			clients := make([]*Client, tt.clients)
			for i := range clients {
				// The default pace (400 a minute), enough attempts for a
				// budget this far below it.
				clients[i], err = newTestClient(withBaseURL(srv.URL+"/v5"), staticTokens(access),
					withClock(vt.Now), withSleep(vt.Sleep), withRetry(RetryPolicy{MaxAttempts: 10}))
				if err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			// One list, created outside the measured writes.
			setup, err := newTestClient(withBaseURL(srv.URL+"/v5"), staticTokens(access), withWriteRate(1e9))
			if err != nil {
				t.Fatal(err)
			}
			list, err := setup.CreateCustomerList(ctx, CustomerListCreate{Name: "pace", Records: hashes("pace", 1)})
			if err != nil {
				t.Fatal(err)
			}
			before := sim.Calls()[pinterestsim.RouteCustomerListsUpdate]

			var wg sync.WaitGroup
			errs := make(chan error, tt.clients*tt.writers*tt.callsPerWrite)
			for ci, c := range clients {
				for w := range tt.writers {
					vt.start()
					wg.Go(func() {
						defer vt.done()
						for k := range tt.callsPerWrite {
							recs := hashes(fmt.Sprintf("c%dw%dk%d", ci, w, k), 1)
							if _, err := c.UpdateCustomerList(ctx, list.ID, OpAdd, recs); err != nil {
								errs <- err
							}
						}
					})
				}
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("write failed: %v", err)
			}
			writes := tt.clients * tt.writers * tt.callsPerWrite
			if got := len(sim.Records(testAdAccount, list.ID)); got != 1+writes {
				t.Errorf("list holds %d records, want %d: a write was lost", got, 1+writes)
			}
			calls := sim.Calls()[pinterestsim.RouteCustomerListsUpdate] - before
			limited := sim.RateLimited()[pinterestsim.RouteCustomerListsUpdate]
			share := float64(limited) / float64(calls)
			t.Logf("%d writes in %d calls, %d answered 429 (%.1f %%), %v of virtual time",
				writes, calls, limited, 100*share, vt.Now().Sub(paceT0))
			if share > 0.05 {
				t.Errorf("429s are %.1f %% of %d write calls, want at most 5 %%", 100*share, calls)
			}
			var clientLimited int64
			for _, c := range clients {
				clientLimited += c.Stats().RateLimited
			}
			if clientLimited != int64(limited) {
				t.Errorf("clients counted %d 429s, the simulator answered %d", clientLimited, limited)
			}
		})
	}
}

// FuzzBudgetHint: whatever X-RateLimit headers a server sends, the hint
// stays in range and the pace stays positive, at most its ceiling.
func FuzzBudgetHint(f *testing.F) {
	f.Add("400", "12", "1", 200)
	f.Add("400, 400;w=60", "0", "1767225600", 429)
	f.Add("-5", "-1", "-3", 429)
	f.Add("NaN", "Inf", "1e308", 200)
	f.Add("0.0001", "99999999999", "", 200)
	f.Add("1e-300", "0", "5", 429)
	f.Fuzz(func(t *testing.T, limit, remaining, reset string, status int) {
		h := http.Header{}
		h.Set("X-RateLimit-Limit", limit)
		h.Set("X-RateLimit-Remaining", remaining)
		h.Set("X-RateLimit-Reset", reset)
		hint := parseBudgetHint(h, paceT0)
		if hint.perMinute < 0 || hint.perMinute != hint.perMinute || hint.remaining < -1 || hint.reset < 0 || hint.reset > maxRetryAfter {
			t.Fatalf("hint out of range: %+v", hint)
		}
		p := newPacer(float64(DefaultWriteRate), retry.Jitter)
		for range 3 {
			p.observe(status, h, paceT0)
		}
		if !(p.rate > 0) || p.rate > p.ceiling || p.ceiling > p.max {
			t.Fatalf("pace %v, ceiling %v, max %v", p.rate, p.ceiling, p.max)
		}
		if d, _, _ := p.reserve(paceT0); d < 0 || p.interval() <= 0 {
			t.Fatalf("negative wait %v", d)
		}
	})
}
