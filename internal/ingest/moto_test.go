package ingest

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/pinlist/pinlist/internal/awstest"
	"github.com/pinlist/pinlist/internal/fake"
	"github.com/pinlist/pinlist/internal/queue"
	"github.com/pinlist/pinlist/internal/wire"
)

// This test binary's one moto_server, started by the first test that needs
// it (most tests here never do, nor do fuzz workers), stopped by TestMain.
var lazyMoto awstest.Lazy

// startMoto returns the server, starting it on first use. A missing
// moto_server fails the test with how to install it.
func startMoto(t *testing.T) *awstest.Moto { t.Helper(); return lazyMoto.Get(t) }

func TestMain(m *testing.M) { os.Exit(awstest.MainLazy(m, &lazyMoto)) }

// recordingSender passes messages to next and keeps the ones it accepted.
type recordingSender struct {
	next queue.Sender
	sent []queue.Outgoing
}

func (r *recordingSender) SendBatch(ctx context.Context, msgs []queue.Outgoing) ([]int, error) {
	failed, err := r.next.SendBatch(ctx, msgs)
	if err != nil {
		return nil, err
	}
	for i, m := range msgs {
		if !containsInt(failed, i) {
			r.sent = append(r.sent, m)
		}
	}
	return failed, nil
}

// received is one message as SQS delivered it, with its system attributes.
type received struct {
	groupID, dedupID string
	body             []byte
}

// receiveAll receives and deletes every message of the queue. FIFO group
// locking holds back later messages of a group while one is in flight, so
// each receive's messages are deleted before the next receive.
func receiveAll(t *testing.T, client *sqs.Client, queueURL string) []received {
	t.Helper()
	var out []received
	for range 100 {
		res, err := client.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(queueURL),
			MaxNumberOfMessages:         10,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		})
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if len(res.Messages) == 0 {
			return out
		}
		for _, m := range res.Messages {
			out = append(out, received{
				groupID: m.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)],
				dedupID: m.Attributes[string(types.MessageSystemAttributeNameMessageDeduplicationId)],
				body:    []byte(aws.ToString(m.Body)),
			})
			if _, err := client.DeleteMessage(t.Context(), &sqs.DeleteMessageInput{QueueUrl: aws.String(queueURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatalf("delete: %v", err)
			}
		}
	}
	t.Fatal("the queue did not drain in 100 receives")
	return nil
}

// invoke sends body to path through HandleAPIGateway as API Gateway would:
// an HTTP API 2.0 event, lowercased headers, base64 when asked.
func invoke(t *testing.T, h *Handler, path, token, body string, base64Body bool) events.APIGatewayV2HTTPResponse {
	t.Helper()
	ev := apiEvent(http.MethodPost, path, body, map[string]string{"authorization": "Bearer " + token, "content-type": "application/json"})
	if base64Body {
		ev = apiEvent(http.MethodPost, path, b64(body), ev.Headers)
		ev.IsBase64Encoded = true
	}
	ctx := lambdacontext.NewContext(t.Context(), &lambdacontext.LambdaContext{AwsRequestID: "moto-" + path})
	resp, err := h.HandleAPIGateway(ctx, ev)
	if err != nil {
		t.Fatalf("HandleAPIGateway: %v", err)
	}
	return resp
}

func TestSQSEndToEnd(t *testing.T) {
	moto := startMoto(t)
	queueURL, _ := moto.CreateFIFOQueueWithDLQ(t, "ingest", 3, 30*time.Second)
	secretID := moto.CreateSecret(t, "ingest-token", testToken+"\n")
	logs := &syncBuffer{}
	rec := &recordingSender{next: queue.NewSQS(moto.SQS(), queueURL)}
	h, err := New(Options{
		Sender:      rec,
		IngestToken: NewSecretIngestToken(moto.SecretsManager(), secretID),
		Logger:      slog.New(slog.NewJSONHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}

	files, _ := filepath.Glob("testdata/aep/*.json")
	bodies := []string{mixedBody}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, string(b))
	}
	for i, body := range bodies {
		resp := invoke(t, h, PathProfiles, testToken, body, i%2 == 1)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("body %d: status %d, %s", i, resp.StatusCode, resp.Body)
		}
		var pr profilesResponse
		if err := json.Unmarshal([]byte(resp.Body), &pr); err != nil {
			t.Fatal(err)
		}
	}
	// A caller's retry of the first request, while its messages are still
	// queued: SQS drops the copies (the dedup ID is the body's hash). Two of
	// the AEP examples hold the same memberships, so their messages are
	// identical too and only one copy of each is kept.
	handed := len(rec.sent)
	if resp := invoke(t, h, PathProfiles, testToken, mixedBody, false); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("retried request: status %d, %s", resp.StatusCode, resp.Body)
	}
	resp := invoke(t, h, PathAudiences, testToken, `{"id":"aud-1","name":"High-value shoppers","description":"Two orders"}`, false)
	if resp.StatusCode != http.StatusAccepted || !strings.Contains(resp.Body, `"externalAudienceId":"ups:aud-1"`) {
		t.Fatalf("audience: status %d, %s", resp.StatusCode, resp.Body)
	}
	if n := len(rec.sent) - handed; n != 3 {
		t.Fatalf("the retry and the audience handed %d messages to SQS, want 3 (2 + 1)", n)
	}
	distinct := map[string]queue.Outgoing{}
	wantRecords := 0
	for _, o := range rec.sent {
		if _, ok := distinct[o.DedupID]; !ok {
			dm, err := wire.Decode(o.Body)
			if err != nil {
				t.Fatal(err)
			}
			wantRecords += len(dm.Records)
		}
		distinct[o.DedupID] = o
	}
	if len(distinct) >= len(rec.sent) {
		t.Fatalf("no repeated message among the %d sent: the test proves no dedup", len(rec.sent))
	}

	msgs := receiveAll(t, moto.SQS(), queueURL)
	if len(msgs) != len(distinct) {
		t.Fatalf("received %d messages, want one per distinct body (%d of %d sent)", len(msgs), len(distinct), len(rec.sent))
	}
	records, audiences := 0, 0
	groups := map[string]int{}
	for i, m := range msgs {
		dm, err := wire.Decode(m.body)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if m.groupID != dm.Audience.Key() {
			t.Errorf("message %d: group %q, want the audience key %q", i, m.groupID, dm.Audience.Key())
		}
		if m.dedupID != sha256Hex(m.body) {
			t.Errorf("message %d: dedup ID %q, want the body's SHA-256", i, m.dedupID)
		}
		if o, ok := distinct[m.dedupID]; !ok || string(o.Body) != string(m.body) || o.GroupID != m.groupID {
			t.Errorf("message %d is not one the handler sent", i)
		}
		delete(distinct, m.dedupID)
		groups[m.groupID]++
		records += len(dm.Records)
		if dm.Kind == wire.KindAudience {
			audiences++
			if dm.Name != "High-value shoppers" || dm.Audience.Key() != "ups:aud-1" {
				t.Errorf("audience message %+v", dm)
			}
		}
		for _, id := range append(plainIdentifiers, "johndoe@example.com", "jd@example.com", "harry.p@example.com", "jane.doe@example.com", "123456") {
			if leaks(m.body, id) {
				t.Errorf("message %d holds the plain identifier %q", i, id)
			}
		}
	}
	if records != wantRecords || audiences != 1 {
		t.Errorf("%d records and %d audience messages, want %d and 1", records, audiences, wantRecords)
	}
	for _, g := range []string{"ups:aud-1", "ups:aud-2", "ups:36a51c13-9dd6-4d2c-8aa3-07d785ea5075", "ups:788d8874-8007-4253-92b7-ee6b6c20c6f3", "ups:8f812592-3f06-416b-bd50-e7831848a31a"} {
		if groups[g] == 0 {
			t.Errorf("no message in group %s (groups %v)", g, groups)
		}
	}
	if len(groups) != 5 {
		t.Errorf("groups %v, want 5", groups)
	}
	if strings.Contains(logs.String(), testToken) {
		t.Error("the ingest token reached a log line")
	}
}

func TestSecretRotation(t *testing.T) {
	moto := startMoto(t)
	queueURL, _ := moto.CreateFIFOQueueWithDLQ(t, "ingest-rotation", 3, 30*time.Second)
	secretID := moto.CreateSecret(t, "ingest-token-rotation", "first-token")
	clock := fake.NewClock(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
	h, err := New(Options{
		Sender:       queue.NewSQS(moto.SQS(), queueURL),
		IngestToken:  NewSecretIngestToken(moto.SecretsManager(), secretID),
		Now:          clock.Now,
		TokenRefresh: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	body := `{"id":"aud-r","name":"Rotation"}`
	if resp := invoke(t, h, PathAudiences, "first-token", body, false); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("first token: status %d, %s", resp.StatusCode, resp.Body)
	}
	if _, err := moto.SecretsManager().PutSecretValue(t.Context(), &secretsmanager.PutSecretValueInput{SecretId: aws.String(secretID), SecretString: aws.String("second-token")}); err != nil {
		t.Fatal(err)
	}
	// Within the refresh interval the cached token still rules.
	if resp := invoke(t, h, PathAudiences, "second-token", body, false); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("rotated token within the interval: status %d, want 401", resp.StatusCode)
	}
	clock.Advance(time.Minute)
	if resp := invoke(t, h, PathAudiences, "second-token", body, false); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("rotated token after the interval: status %d, %s", resp.StatusCode, resp.Body)
	}
	if resp := invoke(t, h, PathAudiences, "first-token", body, false); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("old token after rotation: status %d, want 401", resp.StatusCode)
	}

	// A secret that does not exist: 503, never 2xx, never 401.
	h2, _ := New(Options{Sender: queue.NewSQS(moto.SQS(), queueURL), IngestToken: NewSecretIngestToken(moto.SecretsManager(), "no-such-secret")})
	if resp := invoke(t, h2, PathAudiences, "first-token", body, false); resp.StatusCode != http.StatusServiceUnavailable || resp.Headers["Retry-After"] == "" {
		t.Fatalf("missing secret: status %d (Retry-After %q), want 503", resp.StatusCode, resp.Headers["Retry-After"])
	}
}
