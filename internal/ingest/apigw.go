package ingest

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// HandleAPIGateway is the Lambda entry point behind an API Gateway HTTP API
// (payload format 2.0): it turns the event into an *http.Request, serves it
// with ServeHTTP and turns the recorded response back into an event. It never
// returns an error: every failure is an HTTP response, so API Gateway never
// answers a bare 500.
func (h *Handler) HandleAPIGateway(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		ctx = withRequestID(ctx, lc.AwsRequestID)
	}
	w := newRecorder()
	req, err := requestFromEvent(ctx, ev)
	if err != nil {
		// The request never reached ServeHTTP: answer here, with the same
		// error shape and request ID header.
		id := h.requestID(ctx)
		w.Header().Set(headerRequestID, id)
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error(), "")
		h.logger.WarnContext(ctx, "request rejected", "requestId", id, "status", http.StatusBadRequest, "error", err.Error())
		return w.event(), nil
	}
	h.ServeHTTP(w, req)
	return w.event(), nil
}

// requestFromEvent builds the *http.Request an API Gateway HTTP API event
// describes. Header names arrive lowercased (and repeated headers joined with
// commas); http.Header canonicalises them again.
func requestFromEvent(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (*http.Request, error) {
	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(ev.Body)
		if err != nil {
			return nil, errString("the request body is not valid base64")
		}
		body = b
	}

	path := ev.RawPath
	if path == "" {
		path = ev.RequestContext.HTTP.Path
	}
	if stage := ev.RequestContext.Stage; stage != "" && stage != "$default" {
		// With a named stage the path starts with it; the routes do not.
		if rest, ok := strings.CutPrefix(path, "/"+stage); ok && (rest == "" || rest[0] == '/') {
			path = rest
		}
	}
	if path == "" {
		path = "/"
	}
	u, err := url.ParseRequestURI(path)
	if err != nil || u.Host != "" || u.Scheme != "" {
		return nil, errString("the request path is malformed")
	}
	u.RawQuery = ev.RawQueryString

	method := ev.RequestContext.HTTP.Method
	if method == "" {
		return nil, errString("the request has no method")
	}
	req, err := http.NewRequestWithContext(ctx, method, "/", bytes.NewReader(body))
	if err != nil {
		return nil, errString("the request method is malformed")
	}
	req.URL = u
	req.RequestURI = u.RequestURI()
	req.Host = ev.RequestContext.DomainName
	req.RemoteAddr = ev.RequestContext.HTTP.SourceIP
	if p := ev.RequestContext.HTTP.Protocol; p != "" {
		if major, minor, ok := http.ParseHTTPVersion(p); ok {
			req.Proto, req.ProtoMajor, req.ProtoMinor = p, major, minor
		}
	}
	for k, v := range ev.Headers {
		req.Header.Add(k, v)
	}
	for _, c := range ev.Cookies {
		req.Header.Add("Cookie", c)
	}
	req.ContentLength = int64(len(body))
	return req, nil
}

// errString is an error whose text is safe to show the caller.
type errString string

func (e errString) Error() string { return string(e) }

// recorder is the http.ResponseWriter HandleAPIGateway hands to ServeHTTP: it
// keeps the status, headers and body for the response event.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(p)
}

// event is the recorded response as an API Gateway HTTP API response. Repeated
// headers are joined with commas (the 2.0 format has no multi-value headers),
// except Set-Cookie, which goes to Cookies.
func (r *recorder) event() events.APIGatewayV2HTTPResponse {
	status := r.status
	if status == 0 {
		status = http.StatusOK
	}
	resp := events.APIGatewayV2HTTPResponse{
		StatusCode: status,
		Headers:    make(map[string]string, len(r.header)),
		Body:       r.body.String(),
	}
	for k, vs := range r.header {
		if k == "Set-Cookie" {
			resp.Cookies = append(resp.Cookies, vs...)
			continue
		}
		resp.Headers[k] = strings.Join(vs, ", ")
	}
	return resp
}
