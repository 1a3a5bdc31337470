package ingest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// errorBody is the JSON shape of every error response:
// {"error":{"code","message","path"}}. Path names the offending part of the
// request body (a JSON path such as "profiles[3].identityMap") and is empty
// when no part of the body is at fault.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Path    string `json:"path"`
}

// Error codes; each belongs to one HTTP status.
const (
	codeUnauthorized     = "unauthorized"           // 401
	codeNotFound         = "not_found"              // 404
	codeMethodNotAllowed = "method_not_allowed"     // 405
	codeTooLarge         = "payload_too_large"      // 413
	codeUnsupportedType  = "unsupported_media_type" // 415
	codeInvalid          = "invalid_request"        // 400
	codeUnavailable      = "unavailable"            // 503
	codeInternal         = "internal"               // 500
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own response types are marshalled; they always encode.
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"could not encode the response","path":""}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, code, message, path string) {
	writeJSON(w, status, errorBody{Error: errorDetail{Code: code, Message: message, Path: path}})
}

// writeUnavailable answers 503 with Retry-After in whole seconds (at least 1).
func writeUnavailable(w http.ResponseWriter, retryAfter time.Duration, message string) {
	secs := int((retryAfter + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	writeError(w, http.StatusServiceUnavailable, codeUnavailable, message, "")
}
