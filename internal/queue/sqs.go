package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// sqsAPI is the part of the SQS client that SQS uses.
type sqsAPI interface {
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, opts ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
	GetQueueUrl(ctx context.Context, in *sqs.GetQueueUrlInput, opts ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
}

var _ sqsAPI = (*sqs.Client)(nil)

// ErrNoDeadLetterQueue is returned by DeadLetterURL for a queue without a
// redrive policy.
var ErrNoDeadLetterQueue = errors.New("queue has no dead-letter queue")

const (
	// redriveDedupPrefix starts the deduplication ID of a redriven message;
	// the rest is the dead letter's message ID.
	redriveDedupPrefix = "redrive-"
	// releaseTimeout bounds the best-effort release of dead letters that a
	// failed or cancelled redrive had received but not moved.
	releaseTimeout = 5 * time.Second
)

// SQS is an Amazon SQS queue (standard or FIFO): the production Sender, its
// depth, and the redrive of its dead letters. It is safe for concurrent use.
type SQS struct {
	client sqsAPI
	url    string
	name   string // the last element of url, for error messages
	// fifo: the queue's name ends in ".fifo" (SQS requires it of FIFO
	// queues). Only a FIFO queue takes message group and deduplication IDs:
	// a standard queue refuses a deduplication ID.
	fifo bool

	// redriveWait is how long, in seconds, a redrive receive waits for dead
	// letters before deciding the dead-letter queue is empty (long polling:
	// a short poll may miss messages in AWS).
	redriveWait int32
	// redriveVisibility is how long, in seconds, a dead letter received by a
	// redrive stays hidden; after an interrupted redrive it is visible again
	// once this has passed.
	redriveVisibility int32
}

var _ Sender = (*SQS)(nil)

// NewSQS returns the queue at queueURL. client is usually an *sqs.Client.
func NewSQS(client sqsAPI, queueURL string) *SQS {
	return &SQS{
		client:            client,
		url:               queueURL,
		name:              path.Base(queueURL),
		fifo:              strings.HasSuffix(queueURL, ".fifo"),
		redriveWait:       1,
		redriveVisibility: 30,
	}
}

// URL is the queue's URL.
func (q *SQS) URL() string { return q.url }

// MaxBatchBytes is SQS's limit on the sum of the bodies in one
// SendMessageBatch call (1 MiB, the same as its per-message limit).
const MaxBatchBytes = 1 << 20

// SendBatch enqueues up to MaxBatch messages, each with its MessageGroupId and
// MessageDeduplicationId (left out when empty, and always on a standard
// queue, which refuses them; the ledger behind it orders and deduplicates). The messages go in order, in
// as few SendMessageBatch calls as SQS's MaxBatchBytes limit on a call's
// total payload allows (ten 256 KiB messages take three calls). failed holds
// the indices of the entries SQS did not accept; a sender-fault entry (for
// example a body SQS refuses) fails again on a retry, so callers bound their
// retries. When a call fails after earlier ones succeeded, its entries and
// every later one are reported failed (not sent, so a group's order holds);
// err is set only when nothing was sent.
func (q *SQS) SendBatch(ctx context.Context, msgs []Outgoing) (failed []int, err error) {
	if len(msgs) > MaxBatch {
		return nil, fmt.Errorf("send %d messages to %s: at most %d per batch", len(msgs), q.name, MaxBatch)
	}
	for start := 0; start < len(msgs); {
		end, size := start, 0
		for end < len(msgs) && (end == start || size+len(msgs[end].Body) <= MaxBatchBytes) {
			size += len(msgs[end].Body)
			end++
		}
		callFailed, err := q.sendCall(ctx, msgs[start:end])
		if err != nil {
			if start == 0 {
				return nil, err
			}
			for i := start; i < len(msgs); i++ {
				failed = append(failed, i)
			}
			return failed, nil
		}
		for _, i := range callFailed {
			failed = append(failed, start+i)
		}
		start = end
	}
	return failed, nil
}

// sendCall sends msgs in one SendMessageBatch call.
func (q *SQS) sendCall(ctx context.Context, msgs []Outgoing) (failed []int, err error) {
	entries := make([]types.SendMessageBatchRequestEntry, len(msgs))
	for i, m := range msgs {
		entries[i] = types.SendMessageBatchRequestEntry{
			Id:          aws.String(strconv.Itoa(i)),
			MessageBody: aws.String(string(m.Body)),
		}
		if q.fifo {
			entries[i].MessageGroupId = optional(m.GroupID)
			entries[i].MessageDeduplicationId = optional(m.DedupID)
		}
	}
	out, err := q.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.url), Entries: entries})
	if err != nil {
		return nil, fmt.Errorf("send %d messages to %s: %w", len(msgs), q.name, err)
	}
	// An entry counts as sent only when SQS names it among the successful
	// ones; one it names nowhere is treated as failed.
	sent := make([]bool, len(msgs))
	for _, s := range out.Successful {
		if i, err := strconv.Atoi(aws.ToString(s.Id)); err == nil && i >= 0 && i < len(msgs) {
			sent[i] = true
		}
	}
	for i, ok := range sent {
		if !ok {
			failed = append(failed, i)
		}
	}
	return failed, nil
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

// SQSStats is a snapshot of a queue's approximate message counts, as
// GetQueueAttributes reports them.
//
// SQS has no attribute for the age of the oldest message: in AWS that is the
// CloudWatch metric ApproximateAgeOfOldestMessage (AWS/SQS, dimension
// QueueName), which moto does not produce; a status report that wants it asks
// CloudWatch.
type SQSStats struct {
	Visible  int // ApproximateNumberOfMessages: waiting to be received
	InFlight int // ApproximateNumberOfMessagesNotVisible: received, not yet deleted
	Delayed  int // ApproximateNumberOfMessagesDelayed: not yet deliverable
}

// Depth returns the queue's approximate message counts. For the dead-letter
// queue's depth, call it on NewSQS(client, dlqURL).
func (q *SQS) Depth(ctx context.Context) (SQSStats, error) {
	names := []types.QueueAttributeName{
		types.QueueAttributeNameApproximateNumberOfMessages,
		types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
	}
	out, err := q.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(q.url), AttributeNames: names})
	if err != nil {
		return SQSStats{}, fmt.Errorf("get depth of %s: %w", q.name, err)
	}
	var s SQSStats
	for i, dest := range []*int{&s.Visible, &s.InFlight, &s.Delayed} {
		raw, ok := out.Attributes[string(names[i])]
		if !ok {
			return SQSStats{}, fmt.Errorf("get depth of %s: no attribute %s in the answer", q.name, names[i])
		}
		if *dest, err = strconv.Atoi(raw); err != nil {
			return SQSStats{}, fmt.Errorf("get depth of %s: attribute %s: %w", q.name, names[i], err)
		}
	}
	return s, nil
}

// DeadLetterURL returns the URL of the queue's dead-letter queue, from its
// RedrivePolicy; ErrNoDeadLetterQueue when it has none.
func (q *SQS) DeadLetterURL(ctx context.Context) (string, error) {
	out, err := q.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(q.url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameRedrivePolicy},
	})
	if err != nil {
		return "", fmt.Errorf("get redrive policy of %s: %w", q.name, err)
	}
	raw := out.Attributes[string(types.QueueAttributeNameRedrivePolicy)]
	if raw == "" {
		return "", fmt.Errorf("find dead-letter queue of %s: %w", q.name, ErrNoDeadLetterQueue)
	}
	var policy struct {
		DeadLetterTargetArn string `json:"deadLetterTargetArn"`
	}
	if err := json.Unmarshal([]byte(raw), &policy); err != nil {
		return "", fmt.Errorf("decode redrive policy of %s: %w", q.name, err)
	}
	// arn:aws:sqs:REGION:ACCOUNT:NAME
	parts := strings.Split(policy.DeadLetterTargetArn, ":")
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "sqs" || parts[5] == "" {
		return "", fmt.Errorf("redrive policy of %s: dead-letter target %q is not an SQS queue ARN", q.name, policy.DeadLetterTargetArn)
	}
	u, err := q.client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{
		QueueName:              aws.String(parts[5]),
		QueueOwnerAWSAccountId: aws.String(parts[4]),
	})
	if err != nil {
		return "", fmt.Errorf("get URL of dead-letter queue %s: %w", parts[5], err)
	}
	return aws.ToString(u.QueueUrl), nil
}

// Redrive moves up to max dead letters (all when max <= 0) from the queue at
// dlqURL back to this queue for another try, and returns how many it moved.
// Each dead letter is received, sent here with its message group, body and
// message attributes and the deduplication ID "redrive-" + its message ID,
// then deleted from the dead-letter queue; one at a time, so a group's order
// is kept. (SQS's StartMessageMoveTask would do this, but moto answers it
// with a 500, and this path works for FIFO queues everywhere.)
//
// It is safe to interrupt and run again. A run that stops between the send
// and the delete of a dead letter (a crash, a cancelled context, a failed
// delete) leaves that dead letter in the dead-letter queue, where it is
// visible again once the redrive's visibility timeout (30 s) has passed, or
// at once when the run could release it on the way out. The next run sends it
// again with the same deduplication ID, which SQS drops within its 5-minute
// deduplication interval, so the source queue gets one copy; after that
// interval, at most that one message is duplicated per interruption. A dead
// letter that fails again comes back to the dead-letter queue as a new
// message with a new message ID, so its next redrive is never mistaken for a
// duplicate.
func (q *SQS) Redrive(ctx context.Context, dlqURL string, max int) (moved int, err error) {
	dlqName := path.Base(dlqURL)
	if dlqURL == q.url {
		return 0, fmt.Errorf("redrive from %s to itself: want the dead-letter queue's URL", q.name)
	}
	for max <= 0 || moved < max {
		if err := ctx.Err(); err != nil {
			return moved, fmt.Errorf("redrive from %s to %s: %w", dlqName, q.name, err)
		}
		n := int32(MaxBatch)
		if max > 0 {
			n = int32(min(MaxBatch, max-moved))
		}
		out, err := q.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(dlqURL),
			MaxNumberOfMessages:         n,
			WaitTimeSeconds:             q.redriveWait,
			VisibilityTimeout:           q.redriveVisibility,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameMessageGroupId},
			MessageAttributeNames:       []string{"All"},
		})
		if err != nil {
			return moved, fmt.Errorf("receive dead letters from %s: %w", dlqName, err)
		}
		if len(out.Messages) == 0 {
			return moved, nil
		}
		for i, m := range out.Messages {
			err := ctx.Err()
			if err != nil {
				err = fmt.Errorf("redrive from %s to %s: %w", dlqName, q.name, err)
			} else {
				err = q.redriveOne(ctx, dlqURL, m)
			}
			if err != nil {
				return moved, errors.Join(err, q.release(ctx, dlqURL, out.Messages[i:]))
			}
			moved++
		}
	}
	return moved, nil
}

// redriveOne sends one dead letter to this queue and deletes it from the
// dead-letter queue.
func (q *SQS) redriveOne(ctx context.Context, dlqURL string, m types.Message) error {
	id := aws.ToString(m.MessageId)
	group := m.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)]
	in := &sqs.SendMessageInput{
		QueueUrl:          aws.String(q.url),
		MessageBody:       m.Body,
		MessageAttributes: m.MessageAttributes,
	}
	// To a FIFO queue with the group; a standard queue (also when the dead
	// letters come from a FIFO queue: an upgrade moving the legacy queue's
	// messages) refuses deduplication IDs.
	if q.fifo && group != "" {
		in.MessageGroupId = aws.String(group)
		in.MessageDeduplicationId = aws.String(redriveDedupPrefix + id)
	}
	if _, err := q.client.SendMessage(ctx, in); err != nil {
		return fmt.Errorf("redrive dead letter %s to %s: %w", id, q.name, err)
	}
	if _, err := q.client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(dlqURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
		return fmt.Errorf("delete redriven dead letter %s from %s: %w", id, path.Base(dlqURL), err)
	}
	return nil
}

// release makes dead letters that a stopped redrive received but did not
// move visible again at once, so the next run need not wait out their
// visibility timeout. It runs even when ctx is cancelled (that is usually why
// the redrive stopped), bounded by releaseTimeout.
func (q *SQS) release(ctx context.Context, dlqURL string, msgs []types.Message) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(msgs))
	for i, m := range msgs {
		entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{
			Id:                aws.String(strconv.Itoa(i)),
			ReceiptHandle:     m.ReceiptHandle,
			VisibilityTimeout: 0,
		}
	}
	out, err := q.client.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(dlqURL), Entries: entries})
	if err != nil {
		return fmt.Errorf("release %d dead letters in %s: %w", len(msgs), path.Base(dlqURL), err)
	}
	if len(out.Failed) > 0 {
		return fmt.Errorf("release dead letters in %s: %d of %d not released (visible again after %d s)",
			path.Base(dlqURL), len(out.Failed), len(msgs), q.redriveVisibility)
	}
	return nil
}
