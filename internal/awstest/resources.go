package awstest

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// DLQRetention is the dead-letter queue's message retention: 14 days, the
// SQS maximum, as in template.yaml.
const DLQRetention = 14 * 24 * time.Hour

// maxNameBase bounds the readable part of a generated name, so that with the
// counter, "-dlq" and ".fifo" it stays within SQS's 80 characters.
const maxNameBase = 48

// UniqueName returns prefix made safe for SQS, SNS and Secrets Manager names
// (letters, digits, '-' and '_') with a suffix unique within this server.
func (m *Moto) UniqueName(prefix string) string {
	base := strings.TrimSuffix(prefix, ".fifo")
	base = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		default:
			return '-'
		}
	}, base)
	if len(base) > maxNameBase {
		base = base[:maxNameBase]
	}
	if base == "" {
		base = "t"
	}
	return base + "-" + strconv.FormatInt(m.names.Add(1), 10)
}

// CreateFIFOQueueWithDLQ creates, under a unique name derived from name, a
// FIFO queue whose RedrivePolicy moves a message to a FIFO dead-letter queue
// (14 days' retention) after maxReceiveCount receives. visibilityTimeout is
// rounded down to whole seconds.
func (m *Moto) CreateFIFOQueueWithDLQ(t testing.TB, name string, maxReceiveCount int, visibilityTimeout time.Duration) (queueURL, dlqURL string) {
	t.Helper()
	ctx := t.Context()
	client := m.SQS()
	base := m.UniqueName(name)

	dlq, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName: aws.String(base + "-dlq.fifo"),
		Attributes: map[string]string{
			string(types.QueueAttributeNameFifoQueue):              "true",
			string(types.QueueAttributeNameMessageRetentionPeriod): strconv.Itoa(int(DLQRetention.Seconds())),
		},
	})
	if err != nil {
		t.Fatalf("create dead-letter queue %s-dlq.fifo: %v", base, err)
	}
	dlqARN := m.QueueARN(t, *dlq.QueueUrl)
	policy, err := json.Marshal(map[string]any{
		"deadLetterTargetArn": dlqARN,
		"maxReceiveCount":     maxReceiveCount,
	})
	if err != nil {
		t.Fatalf("encode redrive policy: %v", err)
	}
	q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName: aws.String(base + ".fifo"),
		Attributes: map[string]string{
			string(types.QueueAttributeNameFifoQueue):         "true",
			string(types.QueueAttributeNameVisibilityTimeout): strconv.Itoa(int(visibilityTimeout / time.Second)),
			string(types.QueueAttributeNameRedrivePolicy):     string(policy),
		},
	})
	if err != nil {
		t.Fatalf("create queue %s.fifo: %v", base, err)
	}
	return *q.QueueUrl, *dlq.QueueUrl
}

// CreateQueueWithDLQ is CreateFIFOQueueWithDLQ for standard queues (the
// AWS shape's changes queue and its dead-letter queue).
func (m *Moto) CreateQueueWithDLQ(t testing.TB, name string, maxReceiveCount int, visibilityTimeout time.Duration) (queueURL, dlqURL string) {
	t.Helper()
	ctx := t.Context()
	client := m.SQS()
	base := m.UniqueName(name)
	dlq, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName: aws.String(base + "-dlq"),
		Attributes: map[string]string{
			string(types.QueueAttributeNameMessageRetentionPeriod): strconv.Itoa(int(DLQRetention.Seconds())),
		},
	})
	if err != nil {
		t.Fatalf("create dead-letter queue %s-dlq: %v", base, err)
	}
	policy, err := json.Marshal(map[string]any{
		"deadLetterTargetArn": m.QueueARN(t, *dlq.QueueUrl),
		"maxReceiveCount":     maxReceiveCount,
	})
	if err != nil {
		t.Fatalf("encode redrive policy: %v", err)
	}
	q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName: aws.String(base),
		Attributes: map[string]string{
			string(types.QueueAttributeNameVisibilityTimeout): strconv.Itoa(int(visibilityTimeout / time.Second)),
			string(types.QueueAttributeNameRedrivePolicy):     string(policy),
		},
	})
	if err != nil {
		t.Fatalf("create queue %s: %v", base, err)
	}
	return *q.QueueUrl, *dlq.QueueUrl
}

// QueueARN returns the ARN of the queue at queueURL.
func (m *Moto) QueueARN(t testing.TB, queueURL string) string {
	t.Helper()
	out, err := m.SQS().GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(queueURL),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
	})
	if err != nil {
		t.Fatalf("get ARN of queue %s: %v", queueURL, err)
	}
	return out.Attributes[string(types.QueueAttributeNameQueueArn)]
}

// CreateSecret creates, under a unique name derived from name, a secret whose
// current value is value, and returns its ARN (usable as a SecretId).
func (m *Moto) CreateSecret(t testing.TB, name, value string) (arn string) {
	t.Helper()
	out, err := m.SecretsManager().CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{
		Name:         aws.String(m.UniqueName(name)),
		SecretString: aws.String(value),
	})
	if err != nil {
		t.Fatalf("create secret %s: %v", name, err)
	}
	return *out.ARN
}

// CreateTopicWithQueue creates, under unique names derived from name, an SNS
// topic and a standard SQS queue subscribed to it, so a test can read back
// what was published (see [Moto.ReceiveNotifications]).
func (m *Moto) CreateTopicWithQueue(t testing.TB, name string) (topicARN, queueURL string) {
	t.Helper()
	ctx := t.Context()
	base := m.UniqueName(name)
	topic, err := m.SNS().CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(base)})
	if err != nil {
		t.Fatalf("create topic %s: %v", base, err)
	}
	q, err := m.SQS().CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(base + "-sub")})
	if err != nil {
		t.Fatalf("create queue %s-sub: %v", base, err)
	}
	_, err = m.SNS().Subscribe(ctx, &sns.SubscribeInput{
		TopicArn: topic.TopicArn,
		Protocol: aws.String("sqs"),
		Endpoint: aws.String(m.QueueARN(t, *q.QueueUrl)),
	})
	if err != nil {
		t.Fatalf("subscribe queue %s-sub to topic %s: %v", base, base, err)
	}
	return *topic.TopicArn, *q.QueueUrl
}

// Notification is one SNS message as delivered to a subscribed queue.
type Notification struct {
	Subject string `json:"Subject"`
	Message string `json:"Message"`
}

// ReceiveNotifications receives and deletes what is waiting in a queue made
// by [Moto.CreateTopicWithQueue] (at most 10 notifications).
func (m *Moto) ReceiveNotifications(t testing.TB, queueURL string) []Notification {
	t.Helper()
	ctx := t.Context()
	client := m.SQS()
	out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:            aws.String(queueURL),
		MaxNumberOfMessages: 10,
	})
	if err != nil {
		t.Fatalf("receive notifications from %s: %v", queueURL, err)
	}
	var got []Notification
	for _, msg := range out.Messages {
		var n Notification
		if err := json.Unmarshal([]byte(aws.ToString(msg.Body)), &n); err != nil {
			t.Fatalf("decode SNS envelope from %s: %v", queueURL, err)
		}
		got = append(got, n)
		if _, err := client.DeleteMessage(ctx, &sqs.DeleteMessageInput{
			QueueUrl: aws.String(queueURL), ReceiptHandle: msg.ReceiptHandle,
		}); err != nil {
			t.Fatalf("delete notification from %s: %v", queueURL, err)
		}
	}
	return got
}

// ReceiveEvent receives up to max (at most 10) messages from queueURL and
// returns them as the SQS event Lambda's event source mapping would deliver:
// system attributes (MessageGroupId, ApproximateReceiveCount, ...), message
// attributes, receipt handles and the queue's ARN. The messages stay in flight
// until [Moto.Settle] or their visibility timeout.
func (m *Moto) ReceiveEvent(t testing.TB, queueURL string, max int) events.SQSEvent {
	t.Helper()
	out, err := m.SQS().ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(queueURL),
		MaxNumberOfMessages:         int32(max),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"},
	})
	if err != nil {
		t.Fatalf("receive from %s: %v", queueURL, err)
	}
	arn := m.QueueARN(t, queueURL)
	var ev events.SQSEvent
	for _, msg := range out.Messages {
		rec := events.SQSMessage{
			MessageId:              aws.ToString(msg.MessageId),
			ReceiptHandle:          aws.ToString(msg.ReceiptHandle),
			Body:                   aws.ToString(msg.Body),
			Md5OfBody:              aws.ToString(msg.MD5OfBody),
			Md5OfMessageAttributes: aws.ToString(msg.MD5OfMessageAttributes),
			Attributes:             msg.Attributes,
			EventSourceARN:         arn,
			EventSource:            "aws:sqs",
			AWSRegion:              Region,
		}
		if len(msg.MessageAttributes) > 0 {
			rec.MessageAttributes = make(map[string]events.SQSMessageAttribute, len(msg.MessageAttributes))
			for k, v := range msg.MessageAttributes {
				rec.MessageAttributes[k] = events.SQSMessageAttribute{
					StringValue:      v.StringValue,
					BinaryValue:      v.BinaryValue,
					StringListValues: v.StringListValues,
					BinaryListValues: v.BinaryListValues,
					DataType:         aws.ToString(v.DataType),
				}
			}
		}
		ev.Records = append(ev.Records, rec)
	}
	return ev
}

// Settle does what Lambda does after a batch handler returns resp: it deletes
// every record of ev not named in resp.BatchItemFailures. The failed records
// are made visible again at once, standing in for their visibility timeout
// passing (each later receive still counts toward maxReceiveCount).
func (m *Moto) Settle(t testing.TB, queueURL string, ev events.SQSEvent, resp events.SQSEventResponse) {
	t.Helper()
	ctx := t.Context()
	client := m.SQS()
	failed := make(map[string]bool, len(resp.BatchItemFailures))
	for _, f := range resp.BatchItemFailures {
		failed[f.ItemIdentifier] = true
	}
	for _, rec := range ev.Records {
		if failed[rec.MessageId] {
			_, err := client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
				QueueUrl: aws.String(queueURL), ReceiptHandle: aws.String(rec.ReceiptHandle), VisibilityTimeout: 0,
			})
			if err != nil {
				t.Fatalf("release failed message %s on %s: %v", rec.MessageId, queueURL, err)
			}
			continue
		}
		_, err := client.DeleteMessage(ctx, &sqs.DeleteMessageInput{
			QueueUrl: aws.String(queueURL), ReceiptHandle: aws.String(rec.ReceiptHandle),
		})
		if err != nil {
			t.Fatalf("delete message %s from %s: %v", rec.MessageId, queueURL, err)
		}
	}
}
