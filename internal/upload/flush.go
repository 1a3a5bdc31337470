package upload

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/emf"
	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/pinterest"
)

// Flushed counts what a flush did.
type Flushed struct {
	// Lists is how many lists were flushed or failed on their own.
	Lists int
	// RecordsSent is how many records went out in successful customer list
	// create and update calls.
	RecordsSent int64
	// ListCalls is how many of those calls there were.
	ListCalls int64
	// ListsCreated is how many customer lists were created.
	ListsCreated int
	// ListFailures is how many lists failed (their rows stay pending);
	// NotFlushed how many were not tried because the flush stopped (the
	// deadline was near, or the token is refused).
	ListFailures, NotFlushed int
	// APICalls, Retries and RateLimited (429 answers) are the Pinterest
	// client's counters over the flush (every HTTP call, listings included).
	APICalls, Retries, RateLimited int64
	// ListsRepaired is how many lists that vanished on Pinterest were
	// re-created from the ledger (each logged at ERROR: an alert);
	// ListsRetired how many retired lists were emptied and dropped.
	ListsRepaired, ListsRetired int
	// Deferred is how many (list, op) pairs kept a partial call's worth of
	// rows pending for the next flush because a full call of theirs went
	// out in this one (see drain): the caller flushes them again soon.
	Deferred int
	// Held is how many (list, op) pairs kept a partial call's worth of rows
	// pending because an Apply was still writing the list
	// (ledger.Applying): the end of that Apply wakes another flush.
	Held int
}

// metrics are the flush's EMF metrics.
func (f Flushed) metrics() []emf.Metric {
	return []emf.Metric{
		count("RecordsSent", f.RecordsSent),
		count("ListCalls", f.ListCalls),
		count("ListsCreated", int64(f.ListsCreated)),
		count("ListFailures", int64(f.ListFailures+f.NotFlushed)),
		count("APICalls", f.APICalls),
		count("Retries", f.Retries),
		count("RateLimited", f.RateLimited),
		count("ListsRepaired", int64(f.ListsRepaired)),
		count("ListsRetired", int64(f.ListsRetired)),
	}
}

// Flush sends the ledger's pending rows of lists to Pinterest and marks
// them sent, list by list: for each op, up to MaxRecordsPerRequest pending
// rows in one call, until the list has none left. A list that does not
// exist on Pinterest yet is created with its first records (never empty),
// named after its audience's recorded name, with a CUSTOMER_LIST audience;
// pending removals from a list that does not exist are marked sent without
// a call (a list that does not exist holds nobody).
//
// One list's failure (a 400, a 404, retries exhausted) leaves its rows
// pending and does not stop the other lists: it is logged and counted, and
// the returned error joins every list's. Only a near deadline or a token
// that is refused even after a reload stops the flush. It logs a summary and
// writes one EMF line.
func (h *Handler) Flush(ctx context.Context, lists []ledger.List) (Flushed, error) {
	f, err := h.flush(ctx, h.o.Logger, lists, false)
	h.writeMetrics(ctx, h.o.Logger, f.metrics())
	return f, err
}

// FlushAll flushes every list with pending rows (a schedule's sweep: it
// sends what earlier flushes left pending). See Flush.
func (h *Handler) FlushAll(ctx context.Context) (Flushed, error) {
	return h.flushAll(ctx, false)
}

// FlushRound is one round of a loop that flushes every list in turn, again
// and again (the local runner's flush loop): FlushAll, except in two ways.
// A (list, op) sends at most one partial call a round: rows recorded while
// it is sent wait for the next round (the loop runs one whenever a batch
// was recorded), so a list whose rows keep coming takes one turn, not the
// round. And under a backlog, when the write budget and not the connector
// sets the pace, a (list, op) with fewer pending rows than one call carries
// keeps them pending (Flushed.Deferred) until it has a full call's worth,
// the backlog is over or it has waited backlogMaxWait: a partial call would
// spend a call of the budget on fewer records than a later one carries.
// The caller must flush again at once when Deferred > 0. A backlog is a
// full call in the previous round, or in this round for the same list and
// op. Without one, every pair sends its full calls and then one call as
// full as it is.
func (h *Handler) FlushRound(ctx context.Context) (Flushed, error) {
	return h.flushAll(ctx, true)
}

// backlogMaxWait is how long FlushRound lets a (list, op) keep a partial
// call pending under a backlog. A backfill of 10 million members takes
// about five minutes at Pinterest's budget (400 calls of 5,000 records a
// minute).
const backlogMaxWait = 5 * time.Minute

// rounds is what FlushRound carries from one round to the next.
type rounds struct {
	mu sync.Mutex
	// full: the last round sent a full call (a backlog).
	full bool
	// waiting: since when each list and op ("key op") has kept a partial
	// call pending.
	waiting map[string]time.Time
}

// mayWait reports whether key may keep its partial call pending at now,
// and starts its wait if it has none.
func (rs *rounds) mayWait(key string, now time.Time) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	since, ok := rs.waiting[key]
	if !ok {
		if rs.waiting == nil {
			rs.waiting = map[string]time.Time{}
		}
		rs.waiting[key] = now
		return true
	}
	return now.Sub(since) < backlogMaxWait
}

// sent ends key's wait: its rows went out.
func (rs *rounds) sent(key string) {
	rs.mu.Lock()
	delete(rs.waiting, key)
	rs.mu.Unlock()
}

func (rs *rounds) lastFull() bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.full
}

func (rs *rounds) end(full bool) {
	rs.mu.Lock()
	rs.full = full
	rs.mu.Unlock()
}

func (h *Handler) flushAll(ctx context.Context, deferRemainders bool) (Flushed, error) {
	lists, err := h.o.Ledger.PendingLists(ctx)
	if err != nil {
		err = fmt.Errorf("flush all: list the lists with pending rows: %w", err)
		h.o.Logger.LogAttrs(ctx, slog.LevelError, "flush failed", slog.String("error", err.Error()))
		return Flushed{}, err
	}
	if lists, err = h.withRetiring(ctx, lists); err != nil {
		err = fmt.Errorf("flush all: %w", err)
		h.o.Logger.LogAttrs(ctx, slog.LevelError, "flush failed", slog.String("error", err.Error()))
		return Flushed{}, err
	}
	f, err := h.flush(ctx, h.o.Logger, lists, deferRemainders)
	h.writeMetrics(ctx, h.o.Logger, f.metrics())
	return f, err
}

// flush is Flush without the metrics line; deferRemainders is FlushRound's.
func (h *Handler) flush(ctx context.Context, logger *slog.Logger, lists []ledger.List, deferRemainders bool) (Flushed, error) {
	lists = slices.Clone(lists)
	slices.SortFunc(lists, func(x, y ledger.List) int { return cmp.Compare(x.Key(), y.Key()) })
	lists = slices.Compact(lists)

	start := h.o.Now()
	before := h.o.Client.Stats()
	r, cancel := h.newRun(ctx)
	defer cancel()
	if deferRemainders {
		r.round = &roundRun{backlog: h.rounds.lastFull()}
		defer func() { h.rounds.end(r.round.full) }()
	}
	var errs []error
	if err := r.loadRetired(); err != nil {
		// Without it a retired list could be written to: flush nothing.
		r.flushed.NotFlushed = len(lists)
		errs = append(errs, err)
		lists = nil
	}
	for i, l := range lists {
		err := r.flushList(l)
		if err == nil {
			r.flushed.Lists++
			continue
		}
		if r.stop != nil && errors.Is(err, r.stop) {
			// Not this list's fault: this list and every one after it
			// would meet the same stop.
			r.flushed.NotFlushed = len(lists) - i
			errs = append(errs, fmt.Errorf("flush stopped at list %s, %d lists not flushed: %w", l.Key(), len(lists)-i, r.stop))
			break
		}
		r.flushed.Lists++
		r.flushed.ListFailures++
		errs = append(errs, fmt.Errorf("flush list %s: %w", l.Key(), err))
		logger.LogAttrs(ctx, slog.LevelWarn, "list not flushed; its rows stay pending",
			slog.String("list", l.Key()), slog.String("error", err.Error()))
	}
	stats := h.o.Client.Stats()
	r.flushed.APICalls, r.flushed.Retries = stats.Calls-before.Calls, stats.Retries-before.Retries
	r.flushed.RateLimited = stats.RateLimited - before.RateLimited
	f := r.flushed
	err := errors.Join(errs...)
	level := slog.LevelInfo
	switch {
	case err != nil:
		level = slog.LevelWarn
	case f.Lists == 0 && f.APICalls == 0:
		level = slog.LevelDebug // an idle sweep: nothing to say at info
	}
	attrs := []slog.Attr{
		slog.Int("lists", f.Lists),
		slog.Int64("records_sent", f.RecordsSent),
		slog.Int64("list_calls", f.ListCalls),
		slog.Int("lists_created", f.ListsCreated),
		slog.Int("list_failures", f.ListFailures),
		slog.Int("not_flushed", f.NotFlushed),
		slog.Int64("api_calls", f.APICalls),
		slog.Int64("retries", f.Retries),
		slog.Int64("rate_limited", f.RateLimited),
		slog.Int("lists_repaired", f.ListsRepaired),
		slog.Int("lists_retired", f.ListsRetired),
		slog.Int("deferred", f.Deferred),
		slog.Int("held", f.Held),
		slog.Duration("duration", h.o.Now().Sub(start)),
	}
	if r.stop != nil {
		attrs = append(attrs, slog.String("stopped", r.stop.Error()))
	}
	logger.LogAttrs(ctx, level, "flush done", attrs...)
	return f, err
}

// flushListOnce sends l's pending rows: the ADDs first, so that a list that
// does not exist yet is created with its first records, then the REMOVEs.
func (r *run) flushListOnce(l ledger.List) error {
	k := listKey{l.Audience.Key(), l.Type}
	defer r.h.lockList(k)()
	info, existed, err := r.findList(k)
	if err != nil {
		return err
	}
	if !existed {
		if err := r.repairIfVanished(l); err != nil {
			return err
		}
	} else if err := r.checkOwner(l, info.id); err != nil {
		return err
	}
	var name *ledger.AudienceName // read once, when a list or audience is made
	naming := func() (ledger.AudienceName, error) {
		if name == nil {
			n, err := r.h.o.Names.Name(r.ctx, l.Audience)
			if err != nil {
				return n, fmt.Errorf("read the audience's name: %w", err)
			}
			name = &n
		}
		return *name, nil
	}
	if existed {
		if info, err = r.ensureAudience(k, info, naming); err != nil {
			return err
		}
	}
	exists, created := existed, false
	// added is what this flush put into a list that did not exist when it
	// began: all such a list can hold.
	added := map[string]bool{}
	err = r.drain(l, audience.OpAdd, func(records []string) error {
		if !existed {
			for _, h := range records {
				added[h] = true
			}
		}
		if exists {
			return r.update(info.id, pinterest.OpAdd, records)
		}
		n, err := naming()
		if err != nil {
			return err
		}
		var dup bool
		if info, dup, err = r.createList(l, n, records); err != nil {
			return err
		}
		exists = true
		if dup {
			// Another process made the list first: the records go there
			// too, and its audience is that process's to make (the next
			// flush checks it, info.hasAudience being false).
			return r.update(info.id, pinterest.OpAdd, records)
		}
		created = true
		return nil
	})
	if created {
		// Created in this flush (its records are marked sent): now its
		// audience, the one of a list it replaces (a repair, also one
		// begun in another process) or a new one. On a failure the next
		// flush finds the list by name and checks its audience then.
		var nerr error
		info, nerr = r.ensureAudience(k, info, naming)
		err = errors.Join(err, nerr)
	}
	if err != nil {
		return err
	}
	return r.drain(l, audience.OpRemove, func(records []string) error {
		if !existed {
			// The list did not exist when this flush began: it holds only
			// what this flush added (nobody, when it made no list). Of
			// those, a row that left while the list was being created is
			// removed; the other removals need no call.
			records = slices.DeleteFunc(records, func(h string) bool { return !added[h] })
			if len(records) == 0 {
				return nil
			}
		}
		return r.update(info.id, pinterest.OpRemove, records)
	})
}

// drain reads up to MaxRecordsPerRequest pending rows of l for op, hands
// their hashes to send and marks them sent, until l has no row pending for
// op. It stops at the first error. Rows are marked as being sent
// (ledger.Store.Sending) before their call.
//
// In a round (FlushRound) a partial call ends the pair's turn: rows
// recorded while it was sent go in the next round, which follows at once,
// so a list whose rows keep coming cannot keep every other list waiting.
// Under a backlog a partial call is deferred: its rows stay pending (see
// FlushRound). So is one of a list an Apply is still writing (see
// holdPartial).
func (r *run) drain(l ledger.List, op audience.Op, send func(records []string) error) error {
	store := r.h.o.Ledger
	limit := r.h.o.MaxRecordsPerRequest
	key := l.Key() + " " + string(op)
	var last map[string]string // the previous round's rows: hash → precedence
	sentFull := false
	for {
		rows, err := store.Pending(r.ctx, l, op, limit)
		if err != nil {
			return fmt.Errorf("read pending %s rows: %w", op, err)
		}
		if len(rows) == 0 {
			return nil
		}
		if len(rows) > limit {
			return fmt.Errorf("read pending %s rows: the ledger returned %d rows, over the limit of %d", op, len(rows), limit)
		}
		partial := len(rows) < limit
		if partial && r.round != nil && (sentFull || r.round.backlog) && r.h.rounds.mayWait(key, r.h.o.Now()) {
			r.flushed.Deferred++
			return nil
		}
		if partial {
			hold, err := r.holdPartial(l)
			if err != nil {
				return err
			}
			if hold {
				r.flushed.Held++
				return nil
			}
		}
		if sameRows(last, rows) {
			// MarkSent cleared none of them, and nothing changed them since:
			// sending them again would loop for ever.
			return fmt.Errorf("mark %d %s rows sent: the ledger still holds them pending, unchanged", len(rows), op)
		}
		records := make([]string, len(rows))
		last = make(map[string]string, len(rows))
		for i, p := range rows {
			records[i] = p.Hash
			last[p.Hash] = p.Precedence
		}
		// From here on Pinterest may have them in op's state, whatever the
		// call answers.
		if err := store.Sending(r.ctx, l, op, rows); err != nil {
			return fmt.Errorf("mark %d %s rows as being sent: %w", len(rows), op, err)
		}
		if err := send(records); err != nil {
			return err
		}
		if err := store.MarkSent(r.ctx, l, op, rows); err != nil {
			// Pinterest has them; they are sent again next time, which
			// ADD and REMOVE (set operations) make harmless.
			return fmt.Errorf("mark %d %s rows sent: %w", len(rows), op, err)
		}
		if r.round != nil {
			r.h.rounds.sent(key)
			if partial {
				return nil
			}
			sentFull, r.round.full = true, true
		}
	}
}

// applyHoldMax is how long at most a list's partial calls wait for Applies
// still writing it (ledger.Applying): the apply function's timeout in
// template.yaml, so one Apply is always waited for, and applies that keep
// overlapping (a backlog in the changes queue) delay a list's last records
// by no more than that.
const applyHoldMax = 2 * time.Minute

// holdPartial reports whether l's partial calls wait for an Apply that is
// still writing l (ledger.Applying; never with a store that applies
// atomically), asking the ledger once per list and run.
func (r *run) holdPartial(l ledger.List) (bool, error) {
	if r.h.applying == nil {
		return false, nil
	}
	key := l.Key()
	if hold, ok := r.holds[key]; ok {
		return hold, nil
	}
	hold, err := r.h.applying.HoldPartial(r.ctx, l, applyHoldMax)
	if err != nil {
		return false, fmt.Errorf("read whether an apply is writing the list: %w", err)
	}
	if r.holds == nil {
		r.holds = map[string]bool{}
	}
	r.holds[key] = hold
	return hold, nil
}

// sameRows reports whether every row of rows was in last with the same
// precedence.
func sameRows(last map[string]string, rows []ledger.Pending) bool {
	if len(last) == 0 {
		return false
	}
	for _, p := range rows {
		if prec, ok := last[p.Hash]; !ok || prec != p.Precedence {
			return false
		}
	}
	return true
}

// update sends one customer list update call.
func (r *run) update(id string, op pinterest.Operation, records []string) error {
	err := r.call(func(ctx context.Context) error {
		_, err := r.h.o.Client.UpdateCustomerList(ctx, id, op, records)
		return err
	})
	if err != nil {
		var apiErr *pinterest.APIError
		if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound {
			// The list is gone (deleted in Ads Manager?): forget it, so the
			// next flush looks for it again instead of failing on the
			// cached ID for the life of the container.
			r.h.forget(id)
		}
		return fmt.Errorf("%s %d records to customer list %s: %w", op, len(records), id, err)
	}
	r.flushed.ListCalls++
	r.flushed.RecordsSent += int64(len(records))
	return nil
}
