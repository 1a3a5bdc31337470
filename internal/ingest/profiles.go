package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/emf"
	"github.com/pinlist/pinlist/internal/queue"
	"github.com/pinlist/pinlist/internal/wire"
)

// profilesResponse is the 202 answer to POST /v1/profiles: the mapping report
// (profiles, identitiesActivated, excluded, failed, failures) and what was
// enqueued.
type profilesResponse struct {
	audience.Report
	ChangesEnqueued int `json:"changesEnqueued"`
	Messages        int `json:"messages"`
}

// profiles serves POST /v1/profiles: map the body to hashed changes, coalesce
// them, pack them per audience and enqueue the messages. It answers 202 only
// once every message is enqueued, 503 when one could not be. It returns the
// attributes for the request log line (counts only, never identifiers).
func (h *Handler) profiles(w http.ResponseWriter, r *http.Request, body []byte, log *slog.Logger) []any {
	ctx := r.Context()
	m := h.mappers.Get().(*audience.Mapper)
	defer h.mappers.Put(m)
	// Map parses, normalises, hashes and coalesces in one pass; Pack gives
	// the same bodies for the same changes, so the same dedup IDs.
	report, err := m.Map(body, h.now())
	if err != nil {
		h.writeRequestError(w, r, err, log)
		return nil
	}
	changes := m.Len()
	packed, err := wire.Pack(m, h.maxMessageBytes)
	if err != nil {
		log.ErrorContext(ctx, "pack messages", "error", err.Error())
		writeError(w, http.StatusInternalServerError, codeInternal, "the changes could not be packed into messages", "")
		return nil
	}
	msgs := make([]queue.Outgoing, len(packed))
	for i, p := range packed {
		msgs[i] = outgoing(p.Audience, p.Body)
	}
	res := h.sendAll(ctx, msgs, log)
	received := changes
	if len(res.unsent) > 0 {
		received = 0 // the caller is told to send the request again
	}
	h.writeMetrics(ctx, log, report, received)
	attrs := []any{
		"profiles", report.Profiles,
		"identitiesActivated", report.Activated,
		"identitiesFailed", sum(report.Failed),
		"identitiesExcluded", sum(report.Excluded),
		"changes", changes,
		"messages", len(msgs),
		"sendAttempts", res.attempts,
		"messagesRetried", res.retried,
	}
	if len(res.unsent) > 0 {
		attrs = append(attrs, "messagesUnsent", len(res.unsent))
		writeUnavailable(w, h.retryAfter, fmt.Sprintf("%d of %d messages could not be enqueued; retry the request", len(res.unsent), len(msgs)))
		return attrs
	}
	writeJSON(w, http.StatusAccepted, profilesResponse{Report: report, ChangesEnqueued: changes, Messages: len(msgs)})
	return attrs
}

// writeRequestError answers a parse failure: 413 when the body is over a
// size limit, 400 naming the path otherwise. The messages of
// *audience.RequestError never quote the body.
func (h *Handler) writeRequestError(w http.ResponseWriter, r *http.Request, err error, log *slog.Logger) {
	re, ok := errors.AsType[*audience.RequestError](err)
	if !ok {
		log.ErrorContext(r.Context(), "parse profiles", "error", err.Error())
		writeError(w, http.StatusInternalServerError, codeInternal, "the request could not be processed", "")
		return
	}
	if re.Kind == audience.ErrTooLarge {
		writeError(w, http.StatusRequestEntityTooLarge, codeTooLarge, re.Message, re.Path)
		return
	}
	writeError(w, http.StatusBadRequest, re.Kind, re.Message, re.Path)
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// writeMetrics writes the request's EMF line: ChangesReceived (changes the
// request was answered 202 for, after coalescing within the request; 0 after
// a 503, whose retry counts them), IdentitiesFailed and IdentitiesExcluded
// (from the mapping report). A write failure is logged: the request's work is
// done.
func (h *Handler) writeMetrics(ctx context.Context, log *slog.Logger, report audience.Report, received int) {
	if h.metrics == nil {
		return
	}
	err := emf.Write(h.metrics, h.now(), h.connection, []emf.Metric{
		{Name: "ChangesReceived", Value: float64(received), Unit: "Count"},
		{Name: "IdentitiesFailed", Value: float64(sum(report.Failed)), Unit: "Count"},
		{Name: "IdentitiesExcluded", Value: float64(sum(report.Excluded)), Unit: "Count"},
	})
	if err != nil {
		log.WarnContext(ctx, "could not write the request metrics", "error", err.Error())
	}
}
