package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/queue"
	"github.com/pinlist/pinlist/internal/wire"
)

// DefaultAudienceNamespace is the namespace of a POST /v1/audiences body that
// names none: AEP's segmentation service.
const DefaultAudienceNamespace = "ups"

// Limits of the audience metadata fields, in characters.
const (
	MaxAudienceNameChars        = 255
	MaxAudienceDescriptionChars = 1024
)

// audienceRequest is the body of POST /v1/audiences: AEP's audience metadata
// call. Unknown fields are ignored (the metadata template may send more).
type audienceRequest struct {
	ID          *string `json:"id"`
	Name        *string `json:"name"`
	Description *string `json:"description"`
	Namespace   *string `json:"namespace"`
}

// audienceResponse is the 202 answer: the audience key, which AEP keeps as
// the audience's alias.
type audienceResponse struct {
	ExternalAudienceID string `json:"externalAudienceId"`
}

// fieldError is a 400 naming the field at fault.
type fieldError struct {
	code, path, message string
}

// audience serves POST /v1/audiences: validate the metadata and enqueue an
// "audience" message in the audience's group, so the upload step names the
// lists before (or as) members arrive.
func (h *Handler) audience(w http.ResponseWriter, r *http.Request, body []byte, log *slog.Logger) []any {
	ref, name, desc, ferr := parseAudienceRequest(body)
	if ferr != nil {
		writeError(w, http.StatusBadRequest, ferr.code, ferr.message, ferr.path)
		return nil
	}
	msg, err := wire.EncodeAudience(ref, name, desc)
	if err != nil {
		log.ErrorContext(r.Context(), "encode audience message", "error", err.Error())
		writeError(w, http.StatusInternalServerError, codeInternal, "the audience message could not be encoded", "")
		return nil
	}
	return h.sendAudienceMessage(w, r, ref, msg, "the audience could not be enqueued; retry the request", log)
}

// sendAudienceMessage enqueues one message about audience ref (its name, or
// its retirement) and answers 202 with its externalAudienceId, or 503 with
// unsent when the queue did not take it.
func (h *Handler) sendAudienceMessage(w http.ResponseWriter, r *http.Request, ref audience.Ref, msg []byte, unsent string, log *slog.Logger) []any {
	res := h.sendAll(r.Context(), []queue.Outgoing{outgoing(ref, msg)}, log)
	attrs := []any{"audience", ref.Key(), "sendAttempts", res.attempts}
	if len(res.unsent) > 0 {
		writeUnavailable(w, h.retryAfter, unsent)
		return attrs
	}
	writeJSON(w, http.StatusAccepted, audienceResponse{ExternalAudienceID: ref.Key()})
	return attrs
}

// parseAudienceRequest decodes and validates a POST /v1/audiences body.
func parseAudienceRequest(body []byte) (audience.Ref, string, string, *fieldError) {
	var req audienceRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return audience.Ref{}, "", "", decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return audience.Ref{}, "", "", &fieldError{audience.ErrMalformedJSON, "$", "unexpected data after the JSON object"}
	}

	ref := audience.Ref{Namespace: DefaultAudienceNamespace}
	if req.Namespace != nil && *req.Namespace != "" {
		ref.Namespace = *req.Namespace
	}
	if req.ID == nil || *req.ID == "" {
		return audience.Ref{}, "", "", &fieldError{codeInvalid, "$.id", "id is required"}
	}
	ref.ID = *req.ID
	if !printableNoSpace(ref.Namespace) || strings.Contains(ref.Namespace, ":") {
		return audience.Ref{}, "", "", &fieldError{codeInvalid, "$.namespace", "namespace must be printable ASCII without spaces or ':'"}
	}
	if !printableNoSpace(ref.ID) {
		return audience.Ref{}, "", "", &fieldError{codeInvalid, "$.id", "id must be printable ASCII without spaces"}
	}
	if len(ref.Key()) > audience.MaxRefKey {
		return audience.Ref{}, "", "", &fieldError{codeInvalid, "$.id", fmt.Sprintf("id is too long: namespace, ':' and id together must be at most %d characters", audience.MaxRefKey)}
	}
	if err := ref.Validate(); err != nil {
		return audience.Ref{}, "", "", &fieldError{codeInvalid, "$.id", err.Error()}
	}

	if req.Name == nil || strings.TrimSpace(*req.Name) == "" {
		return audience.Ref{}, "", "", &fieldError{codeInvalid, "$.name", "name is required"}
	}
	name := strings.TrimSpace(*req.Name)
	if ferr := checkText("$.name", "name", name, MaxAudienceNameChars); ferr != nil {
		return audience.Ref{}, "", "", ferr
	}
	var desc string
	if req.Description != nil {
		desc = strings.TrimSpace(*req.Description)
		if ferr := checkText("$.description", "description", desc, MaxAudienceDescriptionChars); ferr != nil {
			return audience.Ref{}, "", "", ferr
		}
	}
	return ref, name, desc, nil
}

// decodeError turns an encoding/json error into a 400 naming the field.
func decodeError(err error) *fieldError {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field == "" {
			return &fieldError{audience.ErrWrongType, "$", "the body must be a JSON object"}
		}
		return &fieldError{audience.ErrWrongType, "$." + te.Field, te.Field + " must be a string"}
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return &fieldError{audience.ErrMalformedJSON, "$", fmt.Sprintf("the body is not valid JSON (byte offset %d)", se.Offset)}
	}
	return &fieldError{audience.ErrMalformedJSON, "$", "the body is not valid JSON"}
}

func printableNoSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// checkText bounds a free-text field and rejects control characters.
func checkText(path, field, s string, maxChars int) *fieldError {
	if utf8.RuneCountInString(s) > maxChars {
		return &fieldError{codeInvalid, path, fmt.Sprintf("%s is longer than %d characters", field, maxChars)}
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		return &fieldError{codeInvalid, path, field + " must not contain control characters"}
	}
	return nil
}
