package audience

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// pair runs the steps of one Map on two goroutines: the caller's and a
// helper started once. Between steps the helper waits spinning instead of
// parking, because waking a parked thread costs about 0.1 ms on a virtual
// machine (measured on the build machine), as much as a step's work; a
// Map has a few steps separated by microseconds. After a while without a
// step it yields (runtime.Gosched), so a helper never holds a CPU another
// goroutine needs for long. A nil *pair runs everything on the caller.
type pair struct {
	posted, done atomic.Int64
	step         func(w int)
	stop         bool
	wg           sync.WaitGroup
}

// spinsBeforeYield is how many empty polls a waiting goroutine makes before
// it yields the CPU between polls.
const spinsBeforeYield = 1 << 12

// startPair starts the helper goroutine.
func startPair() *pair {
	p := &pair{}
	p.wg.Go(p.help)
	return p
}

func (p *pair) help() {
	var seen int64
	for {
		seen = p.await(&p.posted, seen)
		if p.stop {
			return
		}
		p.step(1)
		p.done.Store(seen)
	}
}

// await polls v until it is not old and returns its value.
func (p *pair) await(v *atomic.Int64, old int64) int64 {
	for spins := 0; ; spins++ {
		if n := v.Load(); n != old {
			return n
		}
		if spins >= spinsBeforeYield {
			runtime.Gosched()
		}
	}
}

// run runs step(0) on the caller and step(1) on the helper, and returns
// when both have.
func (p *pair) run(step func(w int)) {
	if p == nil {
		step(0)
		return
	}
	p.step = step
	n := p.posted.Add(1)
	step(0)
	for spins := 0; p.done.Load() != n; spins++ {
		if spins >= spinsBeforeYield {
			runtime.Gosched()
		}
	}
}

// workers is how many goroutines run's steps have.
func (p *pair) workers() int {
	if p == nil {
		return 1
	}
	return 2
}

// close stops the helper and waits for it to return.
func (p *pair) close() {
	if p == nil {
		return
	}
	p.stop = true
	p.posted.Add(1)
	p.wg.Wait()
}
