package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"
)

// sqsReceived is what a test reads back from a queue.
type sqsReceived struct {
	Group, Dedup, Body string
}

// drainSQS receives and deletes everything visible in the queue, in delivery
// order, and returns it with the dead-letter-relevant attributes.
func drainSQS(t *testing.T, queueURL string) []sqsReceived {
	t.Helper()
	client := moto.SQS()
	var got []sqsReceived
	for {
		out, err := client.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(queueURL),
			MaxNumberOfMessages:         10,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		})
		if err != nil {
			t.Fatalf("receive from %s: %v", queueURL, err)
		}
		if len(out.Messages) == 0 {
			return got
		}
		for _, m := range out.Messages {
			got = append(got, sqsReceived{
				Group: m.Attributes["MessageGroupId"],
				Dedup: m.Attributes["MessageDeduplicationId"],
				Body:  aws.ToString(m.Body),
			})
			if _, err := client.DeleteMessage(t.Context(), &sqs.DeleteMessageInput{QueueUrl: aws.String(queueURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatalf("delete from %s: %v", queueURL, err)
			}
		}
	}
}

// sqsByGroup keeps each group's messages in their delivery order; the order
// between groups is not defined.
func sqsByGroup(rs []sqsReceived) map[string][]sqsReceived {
	m := map[string][]sqsReceived{}
	for _, r := range rs {
		m[r.Group] = append(m[r.Group], r)
	}
	return m
}

func sqsMsg(group, dedup, body string) Outgoing {
	return Outgoing{GroupID: group, DedupID: dedup, Body: []byte(body)}
}

func TestSQSSendBatch(t *testing.T) {
	tests := []struct {
		name string
		msgs []Outgoing
		want []sqsReceived
	}{
		{
			name: "groups keep their order",
			msgs: []Outgoing{sqsMsg("aud-1", "h1", `{"n":1}`), sqsMsg("aud-2", "h2", `{"n":2}`), sqsMsg("aud-1", "h3", `{"n":3}`)},
			want: []sqsReceived{{"aud-1", "h1", `{"n":1}`}, {"aud-1", "h3", `{"n":3}`}, {"aud-2", "h2", `{"n":2}`}},
		},
		{
			name: "a resend with the same dedup id is absorbed",
			msgs: []Outgoing{sqsMsg("aud-1", "same", "first"), sqsMsg("aud-1", "same", "again")},
			want: []sqsReceived{{"aud-1", "same", "first"}},
		},
		{
			name: "ten entries, one batch",
			msgs: func() []Outgoing {
				var ms []Outgoing
				for i := range MaxBatch {
					ms = append(ms, sqsMsg("aud-9", "d"+strconv.Itoa(i), "b"+strconv.Itoa(i)))
				}
				return ms
			}(),
			want: func() []sqsReceived {
				var rs []sqsReceived
				for i := range MaxBatch {
					rs = append(rs, sqsReceived{"aud-9", "d" + strconv.Itoa(i), "b" + strconv.Itoa(i)})
				}
				return rs
			}(),
		},
		{name: "an empty batch sends nothing", msgs: nil, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, _ := moto.CreateFIFOQueueWithDLQ(t, "send", 3, 30*time.Second)
			failed, err := NewSQS(moto.SQS(), url).SendBatch(t.Context(), tt.msgs)
			if err != nil || failed != nil {
				t.Fatalf("SendBatch = %v, %v; want no failures", failed, err)
			}
			if diff := cmp.Diff(sqsByGroup(tt.want), sqsByGroup(drainSQS(t, url))); diff != "" {
				t.Fatalf("queue content (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSQSSendBatchRefusesMoreThanMaxBatch(t *testing.T) {
	calls := &countingSQS{sqsAPI: moto.SQS()}
	msgs := make([]Outgoing, MaxBatch+1)
	for i := range msgs {
		msgs[i] = sqsMsg("g", "d"+strconv.Itoa(i), "b")
	}
	failed, err := NewSQS(calls, "http://127.0.0.1:1/123456789012/never.fifo").SendBatch(t.Context(), msgs)
	if err == nil || failed != nil || calls.sends != 0 {
		t.Fatalf("SendBatch of %d = %v, %v after %d calls; want an error and no call", len(msgs), failed, err, calls.sends)
	}
}

func TestSQSSendBatchCallFailure(t *testing.T) {
	url, _ := moto.CreateFIFOQueueWithDLQ(t, "gone", 3, 30*time.Second)
	tests := []struct {
		name string
		url  string
		msgs []Outgoing
	}{
		{"queue does not exist", strings.TrimSuffix(url, ".fifo") + "-nope.fifo", []Outgoing{sqsMsg("g", "d", "b")}},
		{"FIFO entry without a group", url, []Outgoing{sqsMsg("g", "d1", "b"), sqsMsg("", "d2", "b")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			failed, err := NewSQS(moto.SQS(), tt.url).SendBatch(t.Context(), tt.msgs)
			if err == nil || failed != nil {
				t.Fatalf("SendBatch = %v, %v; want an error for the whole call", failed, err)
			}
		})
	}
	if got := drainSQS(t, url); len(got) != 0 {
		t.Fatalf("queue holds %v after failed calls, want nothing", got)
	}
}

// partialSQS stands in for SQS answering a batch in part (moto never does):
// it forwards the entries it is not told to fail to the real queue and
// reports the others as Failed, or leaves them out of the answer entirely.
type partialSQS struct {
	sqsAPI
	fail, omit []string // entry IDs
}

func (p *partialSQS) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	fwd := *in
	fwd.Entries = nil
	var failed []types.BatchResultErrorEntry
	for _, e := range in.Entries {
		switch id := aws.ToString(e.Id); {
		case slices.Contains(p.fail, id):
			failed = append(failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String("ThrottlingException"), SenderFault: false})
		case slices.Contains(p.omit, id):
		default:
			fwd.Entries = append(fwd.Entries, e)
		}
	}
	res, err := p.sqsAPI.SendMessageBatch(ctx, &fwd, opts...)
	if err != nil {
		return nil, err
	}
	res.Failed = append(res.Failed, failed...)
	return res, nil
}

func TestSQSSendBatchReportsFailedEntries(t *testing.T) {
	url, _ := moto.CreateFIFOQueueWithDLQ(t, "partial", 3, 30*time.Second)
	client := &partialSQS{sqsAPI: moto.SQS(), fail: []string{"1", "3"}, omit: []string{"4"}}
	msgs := []Outgoing{sqsMsg("a", "d0", "b0"), sqsMsg("a", "d1", "b1"), sqsMsg("b", "d2", "b2"), sqsMsg("b", "d3", "b3"), sqsMsg("c", "d4", "b4")}
	failed, err := NewSQS(client, url).SendBatch(t.Context(), msgs)
	if err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	if want := []int{1, 3, 4}; !slices.Equal(failed, want) {
		t.Fatalf("failed = %v, want %v", failed, want)
	}
	want := []sqsReceived{{"a", "d0", "b0"}, {"b", "d2", "b2"}}
	if diff := cmp.Diff(sqsByGroup(want), sqsByGroup(drainSQS(t, url))); diff != "" {
		t.Fatalf("queue content (-want +got):\n%s", diff)
	}
}

func TestSQSDepth(t *testing.T) {
	url, dlq := moto.CreateFIFOQueueWithDLQ(t, "depth", 3, 30*time.Second)
	q := NewSQS(moto.SQS(), url)
	if _, err := q.SendBatch(t.Context(), []Outgoing{sqsMsg("a", "1", "x"), sqsMsg("b", "2", "x"), sqsMsg("c", "3", "x")}); err != nil {
		t.Fatalf("send: %v", err)
	}
	if _, err := moto.SQS().ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 1}); err != nil {
		t.Fatalf("receive: %v", err)
	}
	tests := []struct {
		name string
		url  string
		want SQSStats
	}{
		{"queue with one in flight", url, SQSStats{Visible: 2, InFlight: 1}},
		{"empty dead-letter queue", dlq, SQSStats{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewSQS(moto.SQS(), tt.url).Depth(t.Context())
			if err != nil {
				t.Fatalf("Depth: %v", err)
			}
			if got != tt.want {
				t.Fatalf("Depth = %+v, want %+v", got, tt.want)
			}
		})
	}
	if _, err := NewSQS(moto.SQS(), url+"-nope").Depth(t.Context()); err == nil {
		t.Fatal("Depth of a missing queue: want an error")
	}
}

func TestSQSDeadLetterURL(t *testing.T) {
	url, dlq := moto.CreateFIFOQueueWithDLQ(t, "dlqurl", 3, 30*time.Second)
	got, err := NewSQS(moto.SQS(), url).DeadLetterURL(t.Context())
	if err != nil || got != dlq {
		t.Fatalf("DeadLetterURL = %q, %v; want %q", got, err, dlq)
	}
	_, err = NewSQS(moto.SQS(), dlq).DeadLetterURL(t.Context())
	if !errors.Is(err, ErrNoDeadLetterQueue) {
		t.Fatalf("DeadLetterURL of the DLQ itself: err = %v, want ErrNoDeadLetterQueue", err)
	}
}

// sqsSendDirect puts messages straight into a queue (for dead letters without
// going through maxReceiveCount receives).
func sqsSendDirect(t *testing.T, queueURL string, msgs ...Outgoing) {
	t.Helper()
	failed, err := NewSQS(moto.SQS(), queueURL).SendBatch(t.Context(), msgs)
	if err != nil || failed != nil {
		t.Fatalf("send to %s: %v, %v", queueURL, failed, err)
	}
}

// newSQSRedriver returns the source queue with a redrive that does not long
// poll (moto answers an empty short poll reliably).
func newSQSRedriver(client sqsAPI, url string) *SQS {
	q := NewSQS(client, url)
	q.redriveWait = 0
	return q
}

// TestSQSRedriveAfterMaxReceiveCount follows a message that upload fails
// every time: after maxReceiveCount receives SQS moves it to the DLQ; a
// redrive puts it back with its group and body and a redrive dedup id; it is
// then delivered from the source queue and the DLQ is empty.
func TestSQSRedriveAfterMaxReceiveCount(t *testing.T) {
	url, dlq := moto.CreateFIFOQueueWithDLQ(t, "redrive", 2, 30*time.Second)
	sqsSendDirect(t, url, sqsMsg("aud-7", "h1", `{"changes":[1]}`))
	for range 2 { // sqsReceived and failed twice
		ev := moto.ReceiveEvent(t, url, 10)
		if len(ev.Records) != 1 {
			t.Fatalf("receive: %d records, want 1", len(ev.Records))
		}
		moto.Settle(t, url, ev, sqsFailAll(ev))
	}
	if ev := moto.ReceiveEvent(t, url, 10); len(ev.Records) != 0 {
		t.Fatalf("receive after maxReceiveCount: %d records, want 0", len(ev.Records))
	}
	if d, err := NewSQS(moto.SQS(), dlq).Depth(t.Context()); err != nil || d.Visible != 1 {
		t.Fatalf("DLQ depth = %+v, %v; want 1 visible", d, err)
	}
	deadID := sqsPeekID(t, dlq)

	q := newSQSRedriver(moto.SQS(), url)
	moved, err := q.Redrive(t.Context(), dlq, 0)
	if err != nil || moved != 1 {
		t.Fatalf("Redrive = %d, %v; want 1 moved", moved, err)
	}
	want := []sqsReceived{{"aud-7", "redrive-" + deadID, `{"changes":[1]}`}}
	if diff := cmp.Diff(want, drainSQS(t, url)); diff != "" {
		t.Fatalf("source queue after redrive (-want +got):\n%s", diff)
	}
	if got := drainSQS(t, dlq); len(got) != 0 {
		t.Fatalf("DLQ after redrive holds %v, want nothing", got)
	}
	if moved, err := q.Redrive(t.Context(), dlq, 0); err != nil || moved != 0 {
		t.Fatalf("second Redrive = %d, %v; want 0 moved", moved, err)
	}
	if moved, err := q.Redrive(t.Context(), url, 0); err == nil || moved != 0 {
		t.Fatalf("Redrive from the queue to itself = %d, %v; want an error", moved, err)
	}
}

func sqsFailAll(ev events.SQSEvent) events.SQSEventResponse {
	var r events.SQSEventResponse
	for _, rec := range ev.Records {
		r.BatchItemFailures = append(r.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
	}
	return r
}

// sqsPeekID returns the ID of the only message in a queue and makes it visible
// again.
func sqsPeekID(t *testing.T, queueURL string) string {
	t.Helper()
	ev := moto.ReceiveEvent(t, queueURL, 10)
	if len(ev.Records) != 1 {
		t.Fatalf("peek %s: %d messages, want 1", queueURL, len(ev.Records))
	}
	moto.Settle(t, queueURL, ev, sqsFailAll(ev))
	return ev.Records[0].MessageId
}

func TestSQSRedriveLimitAndOrder(t *testing.T) {
	tests := []struct {
		name      string
		max       int
		wantMoved int
		wantLeft  int
	}{
		{"all when max is 0", 0, 13, 0},
		{"up to max", 4, 4, 9},
		{"max above what there is", 50, 13, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, dlq := moto.CreateFIFOQueueWithDLQ(t, "limit", 3, 30*time.Second)
			var dead []Outgoing
			for i := range 13 { // more than one receive batch
				group := []string{"a", "b"}[i%2]
				dead = append(dead, sqsMsg(group, "d"+strconv.Itoa(i), group+strconv.Itoa(i)))
			}
			sqsSendDirect(t, dlq, dead[:10]...)
			sqsSendDirect(t, dlq, dead[10:]...)
			moved, err := newSQSRedriver(moto.SQS(), url).Redrive(t.Context(), dlq, tt.max)
			if err != nil || moved != tt.wantMoved {
				t.Fatalf("Redrive(max %d) = %d, %v; want %d moved", tt.max, moved, err, tt.wantMoved)
			}
			got := drainSQS(t, url)
			if len(got) != tt.wantMoved {
				t.Fatalf("source queue holds %d, want %d", len(got), tt.wantMoved)
			}
			for group, rs := range sqsByGroup(got) {
				var bodies []string
				for _, r := range rs {
					bodies = append(bodies, r.Body)
				}
				if !slices.IsSortedFunc(bodies, func(a, b string) int { return sqsBodyNum(a) - sqsBodyNum(b) }) {
					t.Errorf("group %s arrived as %v, want its original order", group, bodies)
				}
			}
			if left := drainSQS(t, dlq); len(left) != tt.wantLeft {
				t.Fatalf("DLQ keeps %d, want %d", len(left), tt.wantLeft)
			}
		})
	}
}

func sqsBodyNum(body string) int {
	n, _ := strconv.Atoi(body[1:])
	return n
}

// interruptingSQS forwards to the real queue but fails the first DeleteMessage
// after sending (a crash between send and delete, as far as SQS can tell) or
// cancels the context after a number of deletes (an operator's Ctrl-C).
type interruptingSQS struct {
	sqsAPI
	mu           sync.Mutex
	failDeletes  int // fail this many DeleteMessage calls
	cancelAfter  int // cancel after this many successful deletes (0: never)
	cancel       context.CancelFunc
	deletes      int
	visibilities int // ChangeMessageVisibilityBatch entries seen
}

func (s *interruptingSQS) DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failDeletes > 0 {
		s.failDeletes--
		return nil, errors.New("connection reset")
	}
	res, err := s.sqsAPI.DeleteMessage(ctx, in, opts...)
	if err == nil {
		s.deletes++
		if s.deletes == s.cancelAfter {
			s.cancel()
		}
	}
	return res, err
}

func (s *interruptingSQS) ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error) {
	s.mu.Lock()
	s.visibilities += len(in.Entries)
	s.mu.Unlock()
	return s.sqsAPI.ChangeMessageVisibilityBatch(ctx, in, opts...)
}

// TestSQSRedriveInterruptedBetweenSendAndDelete: the delete fails after the
// send; the dead letter is released, and the next run sends it again with the
// same dedup id, so the source queue still gets one copy.
func TestSQSRedriveInterruptedBetweenSendAndDelete(t *testing.T) {
	url, dlq := moto.CreateFIFOQueueWithDLQ(t, "crash", 3, 30*time.Second)
	sqsSendDirect(t, dlq, sqsMsg("a", "d1", "a1"), sqsMsg("a", "d2", "a2"))
	client := &interruptingSQS{sqsAPI: moto.SQS(), failDeletes: 1}
	q := newSQSRedriver(client, url)

	moved, err := q.Redrive(t.Context(), dlq, 0)
	if err == nil || moved != 0 {
		t.Fatalf("interrupted Redrive = %d, %v; want 0 moved and an error", moved, err)
	}
	if client.visibilities != 2 {
		t.Fatalf("released %d dead letters, want 2 (the unsent one and the undeleted one)", client.visibilities)
	}
	moved, err = q.Redrive(t.Context(), dlq, 0)
	if err != nil || moved != 2 {
		t.Fatalf("Redrive run again = %d, %v; want 2 moved", moved, err)
	}
	got := drainSQS(t, url)
	var bodies []string
	for _, r := range got {
		bodies = append(bodies, r.Body)
	}
	if want := []string{"a1", "a2"}; !slices.Equal(bodies, want) {
		t.Fatalf("source queue got %v, want %v (one copy each, in order)", bodies, want)
	}
}

func TestSQSRedriveCancelled(t *testing.T) {
	url, dlq := moto.CreateFIFOQueueWithDLQ(t, "cancel", 3, 30*time.Second)
	sqsSendDirect(t, dlq, sqsMsg("a", "d1", "a1"), sqsMsg("b", "d2", "b1"), sqsMsg("c", "d3", "c1"))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	client := &interruptingSQS{sqsAPI: moto.SQS(), cancelAfter: 1, cancel: cancel}
	q := newSQSRedriver(client, url)

	moved, err := q.Redrive(ctx, dlq, 0)
	if !errors.Is(err, context.Canceled) || moved != 1 {
		t.Fatalf("cancelled Redrive = %d, %v; want 1 moved and context.Canceled", moved, err)
	}
	moved, err = q.Redrive(t.Context(), dlq, 0)
	if err != nil || moved != 2 {
		t.Fatalf("Redrive run again = %d, %v; want the other 2 moved", moved, err)
	}
	if got := drainSQS(t, url); len(got) != 3 {
		t.Fatalf("source queue holds %v, want 3 messages", got)
	}
}

// countingSQS counts SendMessageBatch calls.
type countingSQS struct {
	sqsAPI
	sends int
}

func (c *countingSQS) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	c.sends++
	return c.sqsAPI.SendMessageBatch(ctx, in, opts...)
}

// sizeCheckingSQS refuses, as SQS does, a call whose bodies sum to more than
// MaxBatchBytes (moto does not enforce it), records each call's entry count,
// and fails the call numbered failCall (1-based) when set.
type sizeCheckingSQS struct {
	sqsAPI
	calls    []int
	failCall int
}

func (c *sizeCheckingSQS) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	c.calls = append(c.calls, len(in.Entries))
	total := 0
	for _, e := range in.Entries {
		total += len(aws.ToString(e.MessageBody))
	}
	if total > MaxBatchBytes {
		return nil, &types.BatchRequestTooLong{Message: aws.String("Batch requests cannot be longer than 1048576 bytes")}
	}
	if len(c.calls) == c.failCall {
		return nil, errors.New("connection reset")
	}
	return c.sqsAPI.SendMessageBatch(ctx, in, opts...)
}

func TestSQSSendBatchSplitsByTotalPayload(t *testing.T) {
	body := func(i int) string { return fmt.Sprintf("%02d", i) + strings.Repeat("x", 256<<10-2) }
	msgs := make([]Outgoing, MaxBatch)
	for i := range msgs {
		msgs[i] = sqsMsg("g", fmt.Sprintf("d%d", i), body(i))
	}

	t.Run("ten 256 KiB messages in calls of at most 1 MiB, in order", func(t *testing.T) {
		url, _ := moto.CreateFIFOQueueWithDLQ(t, "payload", 3, 30*time.Second)
		client := &sizeCheckingSQS{sqsAPI: moto.SQS()}
		failed, err := NewSQS(client, url).SendBatch(t.Context(), msgs)
		if err != nil || len(failed) != 0 {
			t.Fatalf("SendBatch = %v, %v; want everything sent", failed, err)
		}
		if want := []int{4, 4, 2}; !slices.Equal(client.calls, want) {
			t.Errorf("entries per call = %v, want %v", client.calls, want)
		}
		got := drainSQS(t, url)
		if len(got) != MaxBatch {
			t.Fatalf("queue holds %d messages, want %d", len(got), MaxBatch)
		}
		for i, m := range got {
			if m.Body[:2] != fmt.Sprintf("%02d", i) {
				t.Fatalf("message %d is %q…, want the group's order kept", i, m.Body[:2])
			}
		}
	})
	t.Run("a failed later call fails it and everything after it", func(t *testing.T) {
		url, _ := moto.CreateFIFOQueueWithDLQ(t, "payload-fail", 3, 30*time.Second)
		client := &sizeCheckingSQS{sqsAPI: moto.SQS(), failCall: 2}
		failed, err := NewSQS(client, url).SendBatch(t.Context(), msgs)
		if err != nil {
			t.Fatalf("SendBatch: %v (the first call succeeded, so it reports entries)", err)
		}
		if want := []int{4, 5, 6, 7, 8, 9}; !slices.Equal(failed, want) {
			t.Errorf("failed = %v, want %v", failed, want)
		}
		if got := drainSQS(t, url); len(got) != 4 {
			t.Errorf("queue holds %d messages, want the first call's 4", len(got))
		}
	})
}

// TestSQSSendBatchToAStandardQueue: a standard queue refuses deduplication
// IDs, so SendBatch leaves group and deduplication IDs out for one (ingest
// builds them for every queue).
func TestSQSSendBatchToAStandardQueue(t *testing.T) {
	url, _ := moto.CreateQueueWithDLQ(t, "send-standard", 3, 30*time.Second)
	msgs := []Outgoing{sqsMsg("aud-1", "h1", `{"n":1}`), sqsMsg("aud-2", "h2", `{"n":2}`), sqsMsg("aud-1", "h1", `{"n":1}`)}
	failed, err := NewSQS(moto.SQS(), url).SendBatch(t.Context(), msgs)
	if err != nil || failed != nil {
		t.Fatalf("SendBatch = %v, %v; want no failures", failed, err)
	}
	got := drainSQS(t, url)
	if len(got) != 3 {
		t.Fatalf("%d messages in the queue, want all 3 (a standard queue does not deduplicate)", len(got))
	}
	for _, m := range got {
		if m.Group != "" || m.Dedup != "" {
			t.Errorf("message %s arrived with group %q, dedup %q; want neither", m.Body, m.Group, m.Dedup)
		}
	}
}
