package ingest

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// apiEvent is an HTTP API (payload 2.0) event as API Gateway sends it:
// lowercased header names, the $default stage.
func apiEvent(method, path, body string, headers map[string]string) events.APIGatewayV2HTTPRequest {
	return events.APIGatewayV2HTTPRequest{
		Version:  "2.0",
		RouteKey: "$default",
		RawPath:  path,
		Headers:  headers,
		Body:     body,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			Stage:      "$default",
			RequestID:  "apigw-req",
			DomainName: "abc123.execute-api.us-east-1.amazonaws.com",
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method: method, Path: path, Protocol: "HTTP/1.1", SourceIP: "192.0.2.1",
			},
		},
	}
}

func lowerAuthJSON() map[string]string {
	return map[string]string{"authorization": "Bearer " + testToken, "content-type": "application/json"}
}

func TestHandleAPIGateway(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString([]byte(goodProfile))
	tests := []struct {
		name   string
		event  func() events.APIGatewayV2HTTPRequest
		status int
		code   string // error code, for error statuses
		allow  string
	}{
		{name: "profiles", status: 202, event: func() events.APIGatewayV2HTTPRequest {
			return apiEvent("POST", PathProfiles, goodProfile, lowerAuthJSON())
		}},
		{name: "base64 body", status: 202, event: func() events.APIGatewayV2HTTPRequest {
			ev := apiEvent("POST", PathProfiles, b64, lowerAuthJSON())
			ev.IsBase64Encoded = true
			return ev
		}},
		{name: "bad base64", status: 400, code: codeInvalid, event: func() events.APIGatewayV2HTTPRequest {
			ev := apiEvent("POST", PathProfiles, "!!not base64!!", lowerAuthJSON())
			ev.IsBase64Encoded = true
			return ev
		}},
		{name: "base64 not decoded is not JSON", status: 400, code: "malformed_json", event: func() events.APIGatewayV2HTTPRequest {
			return apiEvent("POST", PathProfiles, b64, lowerAuthJSON())
		}},
		{name: "named stage prefix", status: 202, event: func() events.APIGatewayV2HTTPRequest {
			ev := apiEvent("POST", "/prod"+PathProfiles, goodProfile, lowerAuthJSON())
			ev.RequestContext.Stage = "prod"
			return ev
		}},
		{name: "path from the request context", status: 202, event: func() events.APIGatewayV2HTTPRequest {
			ev := apiEvent("POST", PathProfiles, goodProfile, lowerAuthJSON())
			ev.RawPath = ""
			return ev
		}},
		{name: "query string ignored", status: 200, event: func() events.APIGatewayV2HTTPRequest {
			ev := apiEvent("GET", PathHealth, "", nil)
			ev.RawQueryString = "a=1&b=%20"
			return ev
		}},
		{name: "no headers", status: 401, code: codeUnauthorized, event: func() events.APIGatewayV2HTTPRequest {
			return apiEvent("POST", PathAudiences, `{"id":"a","name":"n"}`, nil)
		}},
		{name: "lowercase content type rejected", status: 415, code: codeUnsupportedType, event: func() events.APIGatewayV2HTTPRequest {
			return apiEvent("POST", PathAudiences, `{"id":"a","name":"n"}`, map[string]string{"authorization": "Bearer " + testToken, "content-type": "text/csv"})
		}},
		{name: "method not allowed", status: 405, code: codeMethodNotAllowed, allow: "POST", event: func() events.APIGatewayV2HTTPRequest {
			return apiEvent("DELETE", PathAudiences, "", lowerAuthJSON())
		}},
		{name: "unknown path", status: 404, code: codeNotFound, event: func() events.APIGatewayV2HTTPRequest {
			return apiEvent("GET", "/v2/x", "", nil)
		}},
		{name: "no method", status: 400, code: codeInvalid, event: func() events.APIGatewayV2HTTPRequest {
			return apiEvent("", PathHealth, "", nil)
		}},
		{name: "malformed method", status: 400, code: codeInvalid, event: func() events.APIGatewayV2HTTPRequest {
			return apiEvent("GE T", PathHealth, "", nil)
		}},
		{name: "path not absolute", status: 400, code: codeInvalid, event: func() events.APIGatewayV2HTTPRequest {
			return apiEvent("GET", "healthz", "", nil)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hs := newHarness(t, nil)
			ctx := lambdacontext.NewContext(t.Context(), &lambdacontext.LambdaContext{AwsRequestID: "lambda-req-1"})
			resp, err := hs.h.HandleAPIGateway(ctx, tc.event())
			if err != nil {
				t.Fatalf("HandleAPIGateway returned an error: %v", err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.status, resp.Body)
			}
			if resp.Headers["Content-Type"] != "application/json" {
				t.Errorf("Content-Type %q", resp.Headers["Content-Type"])
			}
			if resp.Headers[headerRequestID] != "lambda-req-1" {
				t.Errorf("X-Request-Id %q, want the Lambda request ID", resp.Headers[headerRequestID])
			}
			if resp.Headers["Allow"] != tc.allow {
				t.Errorf("Allow %q, want %q", resp.Headers["Allow"], tc.allow)
			}
			if resp.IsBase64Encoded {
				t.Error("response marked base64")
			}
			if tc.code != "" {
				if e := decodeErrorBody(t, []byte(resp.Body)); e.Code != tc.code {
					t.Errorf("code %q, want %q", e.Code, tc.code)
				}
			} else if !json.Valid([]byte(resp.Body)) {
				t.Errorf("body %q is not JSON", resp.Body)
			}
			if !strings.Contains(hs.logs.String(), `"requestId":"lambda-req-1"`) {
				t.Errorf("log lines lack the Lambda request ID: %s", hs.logs.String())
			}
			if tc.status == 202 {
				decodeMessages(t, hs.sender.enqueued())
				if len(hs.sender.enqueued()) != 1 {
					t.Errorf("%d messages, want 1", len(hs.sender.enqueued()))
				}
			}
		})
	}
}

func TestRequestFromEvent(t *testing.T) {
	ev := apiEvent("POST", PathProfiles, "body", map[string]string{
		"content-type": "application/json", "x-forwarded-for": "192.0.2.1, 198.51.100.2", "accept": "a/b,c/d",
	})
	ev.RawQueryString = "q=1"
	ev.Cookies = []string{"a=1", "b=2"}
	req, err := requestFromEvent(t.Context(), ev)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ what, got, want string }{
		{"method", req.Method, "POST"},
		{"path", req.URL.Path, PathProfiles},
		{"query", req.URL.RawQuery, "q=1"},
		{"host", req.Host, "abc123.execute-api.us-east-1.amazonaws.com"},
		{"remote", req.RemoteAddr, "192.0.2.1"},
		{"content type", req.Header.Get("Content-Type"), "application/json"},
		{"accept", req.Header.Get("Accept"), "a/b,c/d"},
		{"cookies", strings.Join(req.Header.Values("Cookie"), ";"), "a=1;b=2"},
		{"proto", req.Proto, "HTTP/1.1"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if req.ContentLength != 4 {
		t.Errorf("ContentLength %d, want 4", req.ContentLength)
	}
}

func TestRecorderEvent(t *testing.T) {
	r := newRecorder()
	r.Header().Add("X-A", "1")
	r.Header().Add("X-A", "2")
	r.Header().Add("Set-Cookie", "c=1")
	r.WriteHeader(http.StatusTeapot)
	r.WriteHeader(http.StatusOK) // ignored, as net/http does
	_, _ = r.Write([]byte("hi"))
	ev := r.event()
	if ev.StatusCode != http.StatusTeapot || ev.Body != "hi" || ev.Headers["X-A"] != "1, 2" || len(ev.Cookies) != 1 || ev.Cookies[0] != "c=1" {
		t.Errorf("event = %+v", ev)
	}
	if _, ok := ev.Headers["Set-Cookie"]; ok {
		t.Error("Set-Cookie left in Headers")
	}
	if e := newRecorder().event(); e.StatusCode != http.StatusOK {
		t.Errorf("empty response status %d, want 200", e.StatusCode)
	}
}
