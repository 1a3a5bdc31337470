package local

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/pinlist/pinlist/internal/queue"
)

// counters are the stack's running totals since start. They count changes
// and messages, never identify them.
type counters struct {
	received         atomic.Int64 // changes ingest handed to the queue
	messagesReceived atomic.Int64 // messages ingest handed to the queue
	applied          atomic.Int64 // changes in messages applied and deleted
	messagesApplied  atomic.Int64 // messages applied and deleted
	retried          atomic.Int64 // message deliveries that failed and were released for a retry
}

// Progress is a snapshot of the stack's work: totals since start and the
// queue as it is now.
type Progress struct {
	// Received counts the changes ingest handed to the queue since start (a
	// caller's retry of the same body counts again; the queue drops the
	// duplicate), in ReceivedMessages queue messages.
	Received         int64 `json:"received"`
	ReceivedMessages int64 `json:"receivedMessages"`
	// Applied counts the changes recorded in the membership ledger (and so
	// deleted from the queue) since start, in AppliedMessages messages; the
	// flusher sends them to Pinterest from there.
	Applied         int64 `json:"applied"`
	AppliedMessages int64 `json:"appliedMessages"`
	// Retried counts message deliveries that failed and were released for
	// another try since start.
	Retried int64 `json:"retried"`
	// The queue now (queue.LocalStats).
	Queued      int           `json:"queued"`
	InFlight    int           `json:"inFlight"`
	DeadLetters int           `json:"deadLetters"`
	OldestAge   time.Duration `json:"oldestAge"`
}

// progress takes a snapshot of the counters and the queue.
func progress(ctx context.Context, c *counters, q *queue.Local) (Progress, error) {
	p := Progress{
		Received:         c.received.Load(),
		ReceivedMessages: c.messagesReceived.Load(),
		Applied:          c.applied.Load(),
		AppliedMessages:  c.messagesApplied.Load(),
		Retried:          c.retried.Load(),
	}
	st, err := q.Stats(ctx)
	if err != nil {
		return p, fmt.Errorf("read progress: %w", err)
	}
	p.Queued, p.InFlight, p.DeadLetters, p.OldestAge = st.Queued, st.InFlight, st.DeadLetters, st.OldestAge
	return p, nil
}

// busy reports whether p shows work waiting or in flight.
func (p Progress) busy() bool { return p.Queued+p.InFlight > 0 }

// moved reports whether any total changed between prev and p.
func (p Progress) moved(prev Progress) bool {
	return p.Received != prev.Received || p.Applied != prev.Applied ||
		p.AppliedMessages != prev.AppliedMessages || p.Retried != prev.Retried ||
		p.DeadLetters != prev.DeadLetters
}

// String is the one-line summary: counts only, no identifiers.
func (p Progress) String() string {
	s := fmt.Sprintf("progress: %d changes received, %d applied; queue: %d messages waiting, %d in flight, %d retried, %d dead letters",
		p.Received, p.Applied, p.Queued, p.InFlight, p.Retried, p.DeadLetters)
	if p.busy() {
		s += fmt.Sprintf(", oldest %s", p.OldestAge.Round(time.Second))
	}
	return s
}

// progressPrinter prints a progress line while work flows: when a total
// moved since the last line or the queue is not empty. The line after the
// queue drains shows the final totals; then it is quiet until work comes.
type progressPrinter struct {
	w    io.Writer
	last Progress
}

func (pp *progressPrinter) tick(p Progress) {
	if !p.moved(pp.last) && !p.busy() {
		return
	}
	fmt.Fprintln(pp.w, p.String())
	pp.last = p
}
