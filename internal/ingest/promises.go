package ingest

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/queue"
	"github.com/pinlist/pinlist/internal/wire"
)

// PathErasure is the erasure route (POST); an audience is deleted with
// DELETE PathAudiences + "/{id}".
const PathErasure = "/v1/erasure"

// routeAudience is how DELETE /v1/audiences/{id} is logged.
const routeAudience = PathAudiences + "/{id}"

// erasureResponse is the 202 answer to POST /v1/erasure: the mapping
// report's counters (profiles, identities mapped, excluded and failed by
// reason, the first failures), how many distinct identifiers are erased
// and in how many messages.
type erasureResponse struct {
	audience.Report
	IdentifiersErased int `json:"identifiersErased"`
	Messages          int `json:"messages"`
}

// erasure serves POST /v1/erasure: the body's identities are normalised
// and hashed as in /v1/profiles and enqueued as "erasure" messages (one
// FIFO group), which the upload step records in the ledger (every list of
// each identifier's type) and flushes to Pinterest. Memberships are
// ignored. Bad bodies get /v1/profiles' answers.
func (h *Handler) erasure(w http.ResponseWriter, r *http.Request, body []byte, log *slog.Logger) []any {
	ctx := r.Context()
	m := h.mappers.Get().(*audience.Mapper)
	ids, report, err := m.MapErasure(body)
	h.mappers.Put(m)
	if err != nil {
		h.writeRequestError(w, r, err, log)
		return nil
	}
	bodies, err := wire.EncodeErasure(ids, h.now(), h.maxMessageBytes)
	if err != nil {
		log.ErrorContext(ctx, "pack erasure messages", "error", err.Error())
		writeError(w, http.StatusInternalServerError, codeInternal, "the erasure could not be packed into messages", "")
		return nil
	}
	msgs := make([]queue.Outgoing, len(bodies))
	for i, b := range bodies {
		msgs[i] = outgoing(audience.Ref{}, b)
		msgs[i].GroupID = wire.ErasureGroup
	}
	res := h.sendAll(ctx, msgs, log)
	attrs := []any{
		"profiles", report.Profiles,
		"identitiesErased", len(ids),
		"identitiesFailed", sum(report.Failed),
		"identitiesExcluded", sum(report.Excluded),
		"messages", len(msgs),
		"sendAttempts", res.attempts,
	}
	if len(res.unsent) > 0 {
		attrs = append(attrs, "messagesUnsent", len(res.unsent))
		writeUnavailable(w, h.retryAfter, fmt.Sprintf("%d of %d messages could not be enqueued; retry the request", len(res.unsent), len(msgs)))
		return attrs
	}
	writeJSON(w, http.StatusAccepted, erasureResponse{Report: report, IdentifiersErased: len(ids), Messages: len(msgs)})
	return attrs
}

// deleteAudience serves DELETE /v1/audiences/{id} (AEP's audience-metadata
// delete, {id} being the externalAudienceId POST /v1/audiences answered,
// "ns:id", or a bare ID in DefaultAudienceNamespace): it enqueues a
// "retire" message in the audience's group, after the audience's changes.
func (h *Handler) deleteAudience(w http.ResponseWriter, r *http.Request, log *slog.Logger) []any {
	ref, ferr := parseAudiencePath(strings.TrimPrefix(r.URL.Path, PathAudiences+"/"))
	if ferr != nil {
		writeError(w, http.StatusBadRequest, ferr.code, ferr.message, ferr.path)
		return nil
	}
	msg, err := wire.EncodeRetire(ref)
	if err != nil {
		log.ErrorContext(r.Context(), "encode retire message", "error", err.Error())
		writeError(w, http.StatusInternalServerError, codeInternal, "the retirement could not be encoded", "")
		return nil
	}
	return h.sendAudienceMessage(w, r, ref, msg, "the audience's deletion could not be enqueued; retry the request", log)
}

// parseAudiencePath reads the {id} of DELETE /v1/audiences/{id}.
func parseAudiencePath(s string) (audience.Ref, *fieldError) {
	ref := audience.Ref{Namespace: DefaultAudienceNamespace, ID: s}
	if ns, id, ok := strings.Cut(s, ":"); ok {
		ref = audience.Ref{Namespace: ns, ID: id}
	}
	switch {
	case ref.ID == "" || ref.Namespace == "":
		return audience.Ref{}, &fieldError{codeInvalid, "$.id", "the path must end in the audience's ID (namespace:id or id)"}
	case !printableNoSpace(ref.Namespace) || !printableNoSpace(ref.ID) || strings.Contains(ref.ID, "/"):
		return audience.Ref{}, &fieldError{codeInvalid, "$.id", "the audience ID must be printable ASCII without spaces or '/'"}
	case len(ref.Key()) > audience.MaxRefKey:
		return audience.Ref{}, &fieldError{codeInvalid, "$.id", fmt.Sprintf("the audience key is longer than %d characters", audience.MaxRefKey)}
	}
	if err := ref.Validate(); err != nil {
		return audience.Ref{}, &fieldError{codeInvalid, "$.id", err.Error()}
	}
	return ref, nil
}
