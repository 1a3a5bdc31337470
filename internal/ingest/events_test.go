package ingest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/google/go-cmp/cmp"

	"github.com/pinlist/pinlist/internal/wire"
)

// eventsToken is the published test token of the sample events (events/README.md).
const eventsToken = "local-test-ingest-token-0c6f9e2a7b1d4e58"

// TestSampleEvents replays the repository's sample API Gateway events through
// the handler the way lambda.Start does (JSON in, JSON out), and checks that
// the profiles and audience requests produce exactly the queue messages of
// events/sqs-batch.json, the upload function's sample input.
func TestSampleEvents(t *testing.T) {
	tests := []struct {
		file   string
		status int
	}{
		{"apigw-audience.json", 202},
		{"apigw-profiles.json", 202},
		{"apigw-profiles-base64.json", 202},
		{"apigw-bad-body.json", 400},
		{"apigw-unauthorized.json", 401},
		{"apigw-healthz.json", 200},
	}
	hs := newHarness(t, func(o *Options) { o.IngestToken = StaticIngestToken(eventsToken) })
	invoke := lambda.NewHandler(hs.h.HandleAPIGateway)
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			payload, err := os.ReadFile(filepath.Join("..", "..", "events", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			ctx := lambdacontext.NewContext(t.Context(), &lambdacontext.LambdaContext{AwsRequestID: "sample-" + tc.file})
			out, err := invoke.Invoke(ctx, payload)
			if err != nil {
				t.Fatalf("invoke: %v", err)
			}
			var resp events.APIGatewayV2HTTPResponse
			if err := json.Unmarshal(out, &resp); err != nil {
				t.Fatalf("response %s: %v", out, err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, resp.Body)
			}
			if resp.StatusCode >= 400 {
				decodeErrorBody(t, []byte(resp.Body))
			}
		})
	}

	payload, err := os.ReadFile(filepath.Join("..", "..", "events", "sqs-batch.json"))
	if err != nil {
		t.Fatal(err)
	}
	var batch events.SQSEvent
	if err := json.Unmarshal(payload, &batch); err != nil {
		t.Fatal(err)
	}
	// Compared as decoded messages with their records in a fixed order: the
	// sample's bodies were written by hand and need not match byte for byte.
	type msg struct {
		Group   string
		Message wire.Message
	}
	normal := func(group string, body []byte) msg {
		m, err := wire.Decode(body)
		if err != nil {
			t.Fatalf("message of group %s: %v", group, err)
		}
		slices.SortFunc(m.Records, func(a, b wire.Record) int {
			return strings.Compare(string(a.List)+string(a.Op)+a.Hash, string(b.List)+string(b.Op)+b.Hash)
		})
		return msg{group, m}
	}
	var want []msg
	for _, r := range batch.Records {
		want = append(want, normal(r.Attributes["MessageGroupId"], []byte(r.Body)))
	}
	// The base64 request repeats the plain one: its messages are the same
	// bytes (the queue drops them by dedup ID), so each is counted once.
	var got []msg
	seen := map[string]bool{}
	for _, o := range hs.sender.enqueued() {
		if !seen[o.DedupID] {
			seen[o.DedupID] = true
			got = append(got, normal(o.GroupID, o.Body))
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("enqueued messages differ from events/sqs-batch.json (-want +got):\n%s", diff)
	}
	if n := len(hs.sender.enqueued()); n != 5 {
		t.Errorf("%d messages enqueued, want 5 (1 audience + 2 per profiles request)", n)
	}
}
