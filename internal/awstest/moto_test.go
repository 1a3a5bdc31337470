package awstest

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

var moto *Moto

func TestMain(m *testing.M) { os.Exit(Main(m, &moto)) }

func TestStartWithoutMotoServerFailsWithInstallHint(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	m, err := Start()
	if err == nil {
		m.Close()
		t.Fatal("Start with no moto_server on PATH: want an error")
	}
	const want = `moto_server not found: install it with pip install "moto[server]"`
	if !errors.Is(err, ErrNotInstalled) || err.Error() != want {
		t.Fatalf("Start error = %q, want %q", err, want)
	}
}

func TestStartReportsAServerThatExits(t *testing.T) {
	fakeMotoServer(t, `echo "pyenv: moto_server: command not found" >&2; exit 127`)
	m, err := Start()
	if err == nil {
		m.Close()
		t.Fatal("Start of a server that exits: want an error")
	}
	if !strings.Contains(err.Error(), "exited before answering") || !strings.Contains(err.Error(), "command not found") {
		t.Fatalf("Start error = %q, want it to say the server exited and show its output", err)
	}
}

// fakeMotoServer puts a shell script named moto_server first on PATH.
func fakeMotoServer(t *testing.T, script string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "moto_server")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatalf("write fake moto_server: %v", err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func TestEnvPointsTheSDKDefaultConfigAtTheServer(t *testing.T) {
	for _, kv := range moto.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	cfg, err := config.LoadDefaultConfig(t.Context())
	if err != nil {
		t.Fatalf("load default config: %v", err)
	}
	name := moto.UniqueName("env")
	client := sqs.NewFromConfig(cfg)
	created, err := client.CreateQueue(t.Context(), &sqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatalf("create queue through the environment's config: %v", err)
	}
	if want := moto.Endpoint() + "/" + AccountID + "/" + name; *created.QueueUrl != want {
		t.Fatalf("queue URL = %q, want %q", *created.QueueUrl, want)
	}
}

func TestCreateFIFOQueueWithDLQ(t *testing.T) {
	q, dlq := moto.CreateFIFOQueueWithDLQ(t, "jobs", 3, 7*time.Second)
	q2, _ := moto.CreateFIFOQueueWithDLQ(t, "jobs", 3, 7*time.Second)
	if q == q2 {
		t.Fatalf("two queues made from one name share URL %s", q)
	}
	if !strings.HasSuffix(q, ".fifo") || !strings.HasSuffix(dlq, "-dlq.fifo") {
		t.Fatalf("queue %s, DLQ %s: want FIFO names", q, dlq)
	}
	attrs := queueAttributes(t, q)
	var policy struct {
		DeadLetterTargetArn string `json:"deadLetterTargetArn"`
		MaxReceiveCount     any    `json:"maxReceiveCount"`
	}
	if err := json.Unmarshal([]byte(attrs["RedrivePolicy"]), &policy); err != nil {
		t.Fatalf("decode RedrivePolicy %q: %v", attrs["RedrivePolicy"], err)
	}
	dlqAttrs := queueAttributes(t, dlq)
	checks := []struct{ name, got, want string }{
		{"queue FifoQueue", attrs["FifoQueue"], "true"},
		{"queue VisibilityTimeout", attrs["VisibilityTimeout"], "7"},
		{"redrive target", policy.DeadLetterTargetArn, dlqAttrs["QueueArn"]},
		{"redrive maxReceiveCount", strings.Trim(jsonString(t, policy.MaxReceiveCount), `"`), "3"},
		{"DLQ FifoQueue", dlqAttrs["FifoQueue"], "true"},
		{"DLQ retention", dlqAttrs["MessageRetentionPeriod"], strconv.Itoa(14 * 24 * 3600)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
}

func jsonString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode %v: %v", v, err)
	}
	return string(b)
}

func queueAttributes(t *testing.T, url string) map[string]string {
	t.Helper()
	out, err := moto.SQS().GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll},
	})
	if err != nil {
		t.Fatalf("get attributes of %s: %v", url, err)
	}
	return out.Attributes
}

func TestCreateSecret(t *testing.T) {
	arn := moto.CreateSecret(t, "tok/en", `{"k":"v"}`)
	other := moto.CreateSecret(t, "tok/en", `{"k":"w"}`)
	if arn == other {
		t.Fatalf("two secrets made from one name share ARN %s", arn)
	}
	out, err := moto.SecretsManager().GetSecretValue(t.Context(), secretValueInput(arn))
	if err != nil {
		t.Fatalf("get secret %s: %v", arn, err)
	}
	if got := aws.ToString(out.SecretString); got != `{"k":"v"}` {
		t.Fatalf("secret value = %q, want %q", got, `{"k":"v"}`)
	}
}

// TestReceiveEventAndSettle walks one message through what Lambda's event
// source mapping does: delivered with its group, failed, redelivered with a
// higher receive count, failed again, and then moved to the dead-letter queue.
func TestReceiveEventAndSettle(t *testing.T) {
	q, dlq := moto.CreateFIFOQueueWithDLQ(t, "settle", 2, 30*time.Second)
	send(t, q, "aud-1", "a1")
	send(t, q, "aud-2", "b1")

	ev := moto.ReceiveEvent(t, q, 10)
	if len(ev.Records) != 2 {
		t.Fatalf("first receive: %d records, want 2", len(ev.Records))
	}
	var failing events.SQSMessage
	for _, r := range ev.Records {
		if r.EventSource != "aws:sqs" || r.EventSourceARN != moto.QueueARN(t, q) || r.AWSRegion != Region {
			t.Errorf("record %s: source %q %q %q", r.MessageId, r.EventSource, r.EventSourceARN, r.AWSRegion)
		}
		if r.Attributes["ApproximateReceiveCount"] != "1" || r.Attributes["MessageGroupId"] == "" {
			t.Errorf("record %s attributes %v: want receive count 1 and a group", r.MessageId, r.Attributes)
		}
		if r.Attributes["MessageGroupId"] == "aud-1" {
			failing = r
		}
	}
	if failing.Body != "a1" {
		t.Fatalf("record of group aud-1 has body %q, want a1", failing.Body)
	}
	fail := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{{ItemIdentifier: failing.MessageId}}}
	moto.Settle(t, q, ev, fail)

	again := moto.ReceiveEvent(t, q, 10)
	if len(again.Records) != 1 || again.Records[0].MessageId != failing.MessageId ||
		again.Records[0].Attributes["ApproximateReceiveCount"] != "2" {
		t.Fatalf("second receive = %+v, want only %s with receive count 2", again.Records, failing.MessageId)
	}
	fail.BatchItemFailures[0].ItemIdentifier = again.Records[0].MessageId
	moto.Settle(t, q, again, fail)

	if got := moto.ReceiveEvent(t, q, 10); len(got.Records) != 0 {
		t.Fatalf("third receive = %d records, want 0 (the message is past maxReceiveCount)", len(got.Records))
	}
	dead := moto.ReceiveEvent(t, dlq, 10)
	if len(dead.Records) != 1 || dead.Records[0].Body != "a1" || dead.Records[0].Attributes["MessageGroupId"] != "aud-1" {
		t.Fatalf("dead-letter queue holds %+v, want the aud-1 message", dead.Records)
	}
}

func send(t *testing.T, queueURL, group, body string) {
	t.Helper()
	_, err := moto.SQS().SendMessage(t.Context(), &sqs.SendMessageInput{
		QueueUrl:               aws.String(queueURL),
		MessageBody:            aws.String(body),
		MessageGroupId:         aws.String(group),
		MessageDeduplicationId: aws.String(group + "-" + body),
	})
	if err != nil {
		t.Fatalf("send %s to %s: %v", body, queueURL, err)
	}
}

func TestCreateTopicWithQueue(t *testing.T) {
	topic, q := moto.CreateTopicWithQueue(t, "alerts")
	_, err := moto.SNS().Publish(t.Context(), &sns.PublishInput{
		TopicArn: aws.String(topic), Subject: aws.String("pinlist: reconnect"), Message: aws.String("run pinlist connect"),
	})
	if err != nil {
		t.Fatalf("publish to %s: %v", topic, err)
	}
	got := moto.ReceiveNotifications(t, q)
	want := []Notification{{Subject: "pinlist: reconnect", Message: "run pinlist connect"}}
	if len(got) != 1 || got[0] != want[0] {
		t.Fatalf("notifications = %+v, want %+v", got, want)
	}
	if again := moto.ReceiveNotifications(t, q); len(again) != 0 {
		t.Fatalf("notifications after reading = %+v, want none (they are deleted)", again)
	}
}

func TestUniqueName(t *testing.T) {
	tests := []struct {
		name, prefix, wantPrefix string
	}{
		{"plain", "jobs", "jobs-"},
		{"fifo suffix dropped", "jobs.fifo", "jobs-"},
		{"test name with slashes", "TestX/case_1", "TestX-case_1-"},
		{"empty", "", "t-"},
		{"long", strings.Repeat("a", 100), strings.Repeat("a", maxNameBase) + "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := moto.UniqueName(tt.prefix)
			if !strings.HasPrefix(got, tt.wantPrefix) || len(got)+len("-dlq.fifo") > 80 {
				t.Fatalf("UniqueName(%q) = %q, want prefix %q and room for -dlq.fifo in 80 characters", tt.prefix, got, tt.wantPrefix)
			}
		})
	}
	if a, b := moto.UniqueName("x"), moto.UniqueName("x"); a == b {
		t.Fatalf("UniqueName gave %q twice", a)
	}
}

// TestReset runs last in this file: it wipes the shared server.
func TestReset(t *testing.T) {
	q, _ := moto.CreateFIFOQueueWithDLQ(t, "reset", 1, 0)
	if err := moto.Reset(t.Context()); err != nil {
		t.Fatalf("reset: %v", err)
	}
	_, err := moto.SQS().GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(q)})
	var missing *types.QueueDoesNotExist
	if !errors.As(err, &missing) {
		t.Fatalf("queue %s after reset: err = %v, want QueueDoesNotExist", q, err)
	}
}

func secretValueInput(id string) *secretsmanager.GetSecretValueInput {
	return &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)}
}
