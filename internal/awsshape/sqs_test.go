package awsshape

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/pinlist/pinlist/internal/awstest"
)

var moto *awstest.Moto

func TestMain(m *testing.M) { os.Exit(awstest.Main(m, &moto)) }

// manualTimer hands out batching-window timers the test fires by hand.
type manualTimer struct {
	mu      sync.Mutex
	pending []chan time.Time
	started chan time.Duration
}

func newManualTimer() *manualTimer { return &manualTimer{started: make(chan time.Duration, 100)} }

func (m *manualTimer) After(d time.Duration) <-chan time.Time {
	c := make(chan time.Time, 1)
	m.mu.Lock()
	m.pending = append(m.pending, c)
	m.mu.Unlock()
	m.started <- d
	return c
}

// fire ends every window started so far.
func (m *manualTimer) fire() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.pending {
		c <- time.Time{}
	}
	m.pending = nil
}

func createQueue(t *testing.T) string {
	t.Helper()
	out, err := moto.SQS().CreateQueue(t.Context(), &sqs.CreateQueueInput{
		QueueName:  aws.String(moto.UniqueName("awsshape")),
		Attributes: map[string]string{string(types.QueueAttributeNameVisibilityTimeout): "30"},
	})
	if err != nil {
		t.Fatalf("create queue: %v", err)
	}
	return aws.ToString(out.QueueUrl)
}

func sendMessages(t *testing.T, url string, bodies ...string) {
	t.Helper()
	for start := 0; start < len(bodies); start += 10 {
		var entries []types.SendMessageBatchRequestEntry
		for i, b := range bodies[start:min(start+10, len(bodies))] {
			entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(b)})
		}
		if _, err := moto.SQS().SendMessageBatch(t.Context(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries}); err != nil {
			t.Fatalf("send messages: %v", err)
		}
	}
}

// recorder is a function that remembers its batches (as bodies) and fails
// the messages fail says.
type recorder struct {
	mu      sync.Mutex
	batches [][]string
	fail    func(body string, delivery int) bool
	seen    map[string]int
	calls   chan struct{}
}

func newRecorder(fail func(string, int) bool) *recorder {
	return &recorder{fail: fail, seen: map[string]int{}, calls: make(chan struct{}, 1000)}
}

func (r *recorder) handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	if _, ok := ctx.Deadline(); !ok {
		return events.SQSEventResponse{}, errors.New("no deadline: the function's timeout is missing")
	}
	r.mu.Lock()
	var bodies []string
	resp := events.SQSEventResponse{}
	for _, m := range ev.Records {
		bodies = append(bodies, m.Body)
		r.seen[m.Body]++
		if r.fail != nil && r.fail(m.Body, r.seen[m.Body]) {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
		}
	}
	r.batches = append(r.batches, bodies)
	r.mu.Unlock()
	r.calls <- struct{}{}
	return resp, nil
}

func (r *recorder) snapshot() ([][]string, map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := make([][]string, len(r.batches))
	for i := range r.batches {
		b[i] = slices.Clone(r.batches[i])
	}
	seen := make(map[string]int, len(r.seen))
	for k, v := range r.seen {
		seen[k] = v
	}
	return b, seen
}

func runDriver(t *testing.T, run func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("driver: %v", err)
		}
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func bodies(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%02d", prefix, i)
	}
	return out
}

func TestSQSBatchSizeAndWindow(t *testing.T) {
	t.Parallel()
	url := createQueue(t)
	sendMessages(t, url, bodies("m", 25)...)
	rec := newRecorder(nil)
	timer := newManualTimer()
	d, err := NewSQS(SQSOptions{
		Client: moto.SQS(), QueueURL: url, Handler: rec.handle, Concurrency: 1,
		Source:   SQSSource{BatchSize: 10, Window: 5 * time.Second, ReportBatchItemFailures: true},
		Function: Function{Name: "Apply", Timeout: time.Minute},
		After:    timer.After,
	})
	if err != nil {
		t.Fatal(err)
	}
	runDriver(t, d.Run)
	// Two full batches go without waiting for their windows; the third (5
	// messages) waits for its window to end.
	<-rec.calls
	<-rec.calls
	if got := <-timer.started; got != 5*time.Second {
		t.Errorf("window %s, want the template's 5s", got)
	}
	<-timer.started
	<-timer.started // the third batch's window
	waitFor(t, "the last 5 messages received", func() bool { return d.Stats().Received == 25 })
	if b, _ := rec.snapshot(); len(b) != 2 {
		t.Fatalf("%d invocations before the window ended, want 2", len(b))
	}
	timer.fire()
	<-rec.calls
	b, seen := rec.snapshot()
	var sizes []int
	for _, x := range b {
		sizes = append(sizes, len(x))
	}
	if !slices.Equal(sizes, []int{10, 10, 5}) {
		t.Errorf("batch sizes %v, want [10 10 5]", sizes)
	}
	if len(seen) != 25 {
		t.Errorf("%d distinct messages delivered, want 25", len(seen))
	}
	waitFor(t, "deletes", func() bool { return d.Stats().Deleted == 25 && d.Idle() })
}

func TestSQSPartialBatchFailureRedeliversOnlyTheFailed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		report   bool
		fail     func(body string, delivery int) bool
		wantSeen map[string]int
	}{
		{
			name:   "ReportBatchItemFailures: only the failed message comes back",
			report: true,
			fail:   func(body string, delivery int) bool { return body == "p-02" && delivery == 1 },
			wantSeen: map[string]int{
				"p-00": 1, "p-01": 1, "p-02": 2, "p-03": 1, "p-04": 1,
			},
		},
		{
			name:   "without ReportBatchItemFailures the response is ignored",
			report: false,
			fail:   func(body string, delivery int) bool { return body == "p-02" && delivery == 1 },
			wantSeen: map[string]int{
				"p-00": 1, "p-01": 1, "p-02": 1, "p-03": 1, "p-04": 1,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := createQueue(t)
			sendMessages(t, url, bodies("p", 5)...)
			rec := newRecorder(tc.fail)
			d, err := NewSQS(SQSOptions{
				Client: moto.SQS(), QueueURL: url, Handler: rec.handle, Concurrency: 1,
				Source:         SQSSource{BatchSize: 10, ReportBatchItemFailures: tc.report},
				Function:       Function{Name: "Apply", Timeout: time.Minute},
				RedeliverAfter: time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			runDriver(t, d.Run)
			total := 0
			for _, n := range tc.wantSeen {
				total += n
			}
			waitFor(t, "every delivery", func() bool {
				_, seen := rec.snapshot()
				n := 0
				for _, v := range seen {
					n += v
				}
				return n >= total && d.Idle() && d.Stats().Deleted == 5
			})
			_, seen := rec.snapshot()
			for body, want := range tc.wantSeen {
				if seen[body] != want {
					t.Errorf("%s delivered %d times, want %d", body, seen[body], want)
				}
			}
		})
	}
}

func TestSQSErrorRedeliversTheWholeBatch(t *testing.T) {
	t.Parallel()
	url := createQueue(t)
	sendMessages(t, url, bodies("e", 3)...)
	var mu sync.Mutex
	calls := 0
	seen := map[string]int{}
	h := func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		for _, m := range ev.Records {
			seen[m.Body]++
		}
		if calls == 1 {
			panic("a crash in the function")
		}
		return events.SQSEventResponse{}, nil
	}
	d, err := NewSQS(SQSOptions{
		Client: moto.SQS(), QueueURL: url, Handler: h, Concurrency: 1,
		Source:   SQSSource{BatchSize: 10, ReportBatchItemFailures: true},
		Function: Function{Name: "Apply", Timeout: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	runDriver(t, d.Run)
	waitFor(t, "redelivery", func() bool { return d.Stats().Deleted == 3 && d.Idle() })
	mu.Lock()
	defer mu.Unlock()
	for _, b := range bodies("e", 3) {
		if seen[b] != 2 {
			t.Errorf("%s delivered %d times, want 2 (once failed with the batch, once more)", b, seen[b])
		}
	}
	if st := d.Stats(); st.Errors != 1 || st.Failed != 3 {
		t.Errorf("stats %+v, want 1 error and 3 failed", st)
	}
}
