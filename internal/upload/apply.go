package upload

import (
	"cmp"
	"context"

	"fmt"
	"log/slog"
	"slices"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/emf"
	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/wire"
)

// Recorder is where Apply records a batch: the ledger's Apply for the
// changes, the name store's SetName for the audience names. The Handler's
// own Options.Ledger and Options.Names make one (Apply); the local runner
// passes one bound to its SQLite transaction (ApplyTo), so that recording a
// batch and deleting it from the local queue commit together, e.g.
//
//	upload.RecorderFuncs{
//		ApplyFunc:   func(ctx context.Context, cs []audience.Change) (ledger.Result, error) { return store.ApplyTx(ctx, tx, cs) },
//		SetNameFunc: func(ctx context.Context, a audience.Ref, n ledger.AudienceName) error { return names.SetNameTx(ctx, tx, a, n) },
//	}
//
// Apply must be idempotent (ledger.Store's is): a batch whose recording
// failed part way is recorded again when its messages are delivered again.
type Recorder interface {
	Apply(ctx context.Context, changes []audience.Change) (ledger.Result, error)
	SetName(ctx context.Context, a audience.Ref, n ledger.AudienceName) error
}

// RecorderFuncs is a Recorder made of two functions.
type RecorderFuncs struct {
	ApplyFunc   func(ctx context.Context, changes []audience.Change) (ledger.Result, error)
	SetNameFunc func(ctx context.Context, a audience.Ref, n ledger.AudienceName) error
	// EraseFunc and RetireFunc record "erasure" and "retire" messages
	// (see Eraser, Retirer); nil fails such messages.
	EraseFunc  func(ctx context.Context, erasures []ledger.Erasure) (ledger.Erased, error)
	RetireFunc func(ctx context.Context, a audience.Ref) ([]ledger.List, error)
}

// Apply calls f.ApplyFunc.
func (f RecorderFuncs) Apply(ctx context.Context, changes []audience.Change) (ledger.Result, error) {
	return f.ApplyFunc(ctx, changes)
}

// SetName calls f.SetNameFunc.
func (f RecorderFuncs) SetName(ctx context.Context, a audience.Ref, n ledger.AudienceName) error {
	return f.SetNameFunc(ctx, a, n)
}

// stores is the Handler's own Recorder.
type stores struct {
	ledger.Store
	ledger.Names
}

// Failure is a message Apply did not record.
type Failure struct {
	// ID is the message's MessageId.
	ID string
	// Permanent is true when the message can never be recorded (it cannot
	// be decoded): it fails on every delivery until the queue moves it to
	// its dead-letter queue. Otherwise a store failed: deliver it again.
	Permanent bool
	// Err says why; it never quotes the message's content.
	Err error
}

// Applied is what Apply did with a batch.
type Applied struct {
	// Messages is how many messages the batch had.
	Messages int
	// Failed are the messages not recorded, in batch order; every other
	// message was recorded and may be deleted from the queue.
	Failed []Failure
	// Lists are the lists the recorded changes concern, sorted by key:
	// what a flush after this batch has to look at.
	Lists []ledger.List
	// Result counts what the ledger did with the recorded changes.
	Result ledger.Result
	// Names is how many audience names were recorded.
	Names int
	// Erasures is how many identifiers "erasure" messages erased;
	// ErasedRows how many ledger rows they flipped out. Retired is how
	// many audiences "retire" messages retired.
	Erasures, ErasedRows, Retired int
}

// Apply decodes a batch of queue messages (SQS records; only MessageId and
// Body are read) and records it in the Handler's ledger and name store. See
// ApplyTo.
func (h *Handler) Apply(ctx context.Context, records []events.SQSMessage) Applied {
	a := h.apply(ctx, stores{h.o.Ledger, h.o.Names}, records)
	h.logApplied(ctx, h.o.Logger, a)
	h.writeMetrics(ctx, h.o.Logger, appliedMetrics(a))
	return a
}

// ApplyTo decodes a batch of queue messages (SQS records; only MessageId
// and Body are read) and records it in rec: the changes of every "changes"
// message in one rec.Apply call (the ledger orders changes by precedence, so
// the order and grouping of the messages do not matter), the name of every
// "audience" message with rec.SetName. It writes nothing to Pinterest (see
// Flush). A message that cannot be decoded fails alone, permanently; when
// rec.Apply fails, every "changes" message fails; when a SetName fails, its
// message fails. It uses nothing but rec (so a rec bound to a transaction
// on a one-connection database does not deadlock). It logs a summary and
// writes one EMF line.
//
// When rec writes in a transaction and any Failure is not Permanent, roll
// the transaction back (ledger.SQLite.ApplyTx requires it after an error)
// and deliver the whole batch again; otherwise commit it together with the
// deletion of every message not in Failed.
func (h *Handler) ApplyTo(ctx context.Context, rec Recorder, records []events.SQSMessage) Applied {
	a := h.apply(ctx, rec, records)
	h.logApplied(ctx, h.o.Logger, a)
	h.writeMetrics(ctx, h.o.Logger, appliedMetrics(a))
	return a
}

// apply is ApplyTo without the log and metrics lines.
func (h *Handler) apply(ctx context.Context, rec Recorder, records []events.SQSMessage) Applied {
	a := Applied{Messages: len(records)}
	var changes []audience.Change
	var changeMsgs []string // the IDs of the messages in changes
	var erasures []ledger.Erasure
	var erasureMsgs []string
	lists := map[ledger.List]bool{}
	for _, r := range records {
		m, err := wire.Decode([]byte(r.Body))
		if err != nil {
			a.Failed = append(a.Failed, Failure{ID: r.MessageId, Permanent: true, Err: fmt.Errorf("decode message %s: %w", r.MessageId, err)})
			continue
		}
		switch m.Kind {
		case wire.KindChanges:
			// The ledger orders by precedence, not Seq: no arrival order to keep.
			for _, c := range m.Changes(0) {
				changes = append(changes, c)
				lists[ledger.List{Audience: c.Audience, Type: c.List}] = true
			}
			changeMsgs = append(changeMsgs, r.MessageId)
		case wire.KindAudience:
			err := rec.SetName(ctx, m.Audience, ledger.AudienceName{Name: m.Name, Description: m.Description})
			if err != nil {
				a.Failed = append(a.Failed, Failure{ID: r.MessageId, Err: fmt.Errorf("record audience message %s: %w", r.MessageId, err)})
				continue
			}
			a.Names++
		case wire.KindErasure:
			erasures = append(erasures, erasuresOf(m)...)
			erasureMsgs = append(erasureMsgs, r.MessageId)
		case wire.KindRetire:
			ls, err := applyRetire(ctx, rec, m.Audience)
			if err != nil {
				a.Failed = append(a.Failed, Failure{ID: r.MessageId, Err: fmt.Errorf("record retire message %s: %w", r.MessageId, err)})
				continue
			}
			for _, l := range ls {
				lists[l] = true
			}
			a.Retired++
		}
	}
	if len(changes) > 0 {
		res, err := rec.Apply(ctx, changes)
		if err != nil {
			err = fmt.Errorf("record %d changes of %d messages in the ledger: %w", len(changes), len(changeMsgs), err)
			for _, id := range changeMsgs {
				a.Failed = append(a.Failed, Failure{ID: id, Err: err})
			}
			clear(lists)
		}
		a.Result = res
	}
	applyErasures(ctx, rec, erasures, erasureMsgs, &a, lists)
	// Back in batch order.
	pos := make(map[string]int, len(records))
	for i, r := range records {
		pos[r.MessageId] = i
	}
	slices.SortStableFunc(a.Failed, func(x, y Failure) int { return cmp.Compare(pos[x.ID], pos[y.ID]) })
	for l := range lists {
		a.Lists = append(a.Lists, l)
	}
	slices.SortFunc(a.Lists, func(x, y ledger.List) int { return cmp.Compare(x.Key(), y.Key()) })
	return a
}

// logApplied logs a's outcome: one warning per failed message (its ID and
// why, never its content) and one summary line.
func (h *Handler) logApplied(ctx context.Context, logger *slog.Logger, a Applied) {
	for _, f := range a.Failed {
		msg := "message not recorded; it will be delivered again"
		if f.Permanent {
			msg = "message cannot be decoded; it fails on every delivery until the dead-letter queue takes it"
		}
		logger.LogAttrs(ctx, slog.LevelWarn, msg, slog.String("message_id", f.ID), slog.String("error", f.Err.Error()))
	}
	logger.LogAttrs(ctx, slog.LevelInfo, "batch recorded in the ledger",
		slog.Int("messages", a.Messages),
		slog.Int("failed_messages", len(a.Failed)),
		slog.Int("lists", len(a.Lists)),
		slog.Int("changes_flipped", a.Result.Flipped),
		slog.Int("changes_noop", a.Result.NoOps),
		slog.Int("changes_stale", a.Result.Stale),
		slog.Int("names", a.Names),
		slog.Int("erasures", a.Erasures),
		slog.Int("erased_rows", a.ErasedRows),
		slog.Int("audiences_retired", a.Retired))
}

// appliedMetrics are Apply's EMF metrics.
func appliedMetrics(a Applied) []emf.Metric {
	return []emf.Metric{
		count("MessageFailures", int64(len(a.Failed))),
		count("ChangesFlipped", int64(a.Result.Flipped)),
		count("ChangesNoOp", int64(a.Result.NoOps)),
		count("ChangesStale", int64(a.Result.Stale)),
	}
}

// HandleSQS applies and flushes in one invocation (an SQS event, with
// ReportBatchItemFailures); the deployed stack splits the two halves into
// HandleApply and Flusher. It records the batch in the ledger (Apply), then
// flushes the lists the batch touched to Pinterest (Flush). Only messages
// that were not recorded are reported in BatchItemFailures, to be delivered
// again; a flush failure fails no message, since its rows stay pending in
// the ledger and the next flush of their list (a later batch's, or the
// schedule's FlushAll) sends them. It never returns an error. It logs a
// summary and writes one EMF line for the whole invocation.
func (h *Handler) HandleSQS(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	logger := h.o.Logger
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		logger = logger.With(slog.String("request_id", lc.AwsRequestID))
	}
	a := h.apply(ctx, stores{h.o.Ledger, h.o.Names}, ev.Records)
	h.logApplied(ctx, logger, a)
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	for _, f := range a.Failed {
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: f.ID})
	}
	f, err := h.flush(ctx, logger, a.Lists, false)
	if err != nil {
		logger.LogAttrs(ctx, slog.LevelWarn, "flush after the batch incomplete; the rows left stay pending in the ledger",
			slog.String("error", err.Error()))
	}
	h.writeMetrics(ctx, logger, append(appliedMetrics(a), f.metrics()...))
	return resp, nil
}
