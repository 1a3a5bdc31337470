package local

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/pinlist/pinlist/internal/awstest"
	"github.com/pinlist/pinlist/internal/queue"
	"github.com/pinlist/pinlist/internal/token"
)

// This test binary's one moto_server, started by the first test that needs
// it (most tests here never do, nor do fuzz workers), stopped by TestMain.
var lazyMoto awstest.Lazy

// startMoto returns the server, starting it on first use. A missing
// moto_server fails the test with how to install it.
func startMoto(t *testing.T) *awstest.Moto { t.Helper(); return lazyMoto.Get(t) }

func TestMain(m *testing.M) { os.Exit(awstest.MainLazy(m, &lazyMoto)) }

// sqsStatusNow is the injected clock of the SQS status tests; the
// CloudWatch datapoints they put are relative to it.
var sqsStatusNow = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// putAge puts ApproximateAgeOfOldestMessage datapoints (seconds, at
// sqsStatusNow minus the given offset) for the queue at queueURL.
func putAge(t *testing.T, cw *cloudwatch.Client, queueURL string, points map[time.Duration]float64) {
	t.Helper()
	var data []cwtypes.MetricDatum
	for ago, v := range points {
		data = append(data, cwtypes.MetricDatum{
			MetricName: aws.String(ageMetric),
			Dimensions: []cwtypes.Dimension{{Name: aws.String(ageDimension), Value: aws.String(filepath.Base(queueURL))}},
			Timestamp:  aws.Time(sqsStatusNow.Add(-ago)),
			Value:      aws.Float64(v),
			Unit:       cwtypes.StandardUnitSeconds,
		})
	}
	if _, err := cw.PutMetricData(t.Context(), &cloudwatch.PutMetricDataInput{Namespace: aws.String(ageNamespace), MetricData: data}); err != nil {
		t.Fatalf("put metric data: %v", err)
	}
}

// TestStatusOfAnSQSQueue: the depths of a moto FIFO queue and its DLQ, and
// the age of the oldest message from CloudWatch (through the client
// NewCloudWatch makes, as pinlist status does): unknown without a
// datapoint, else the latest one of the last 15 minutes.
func TestStatusOfAnSQSQueue(t *testing.T) {
	moto := startMoto(t)
	cw := NewCloudWatch(moto.Config())
	tests := []struct {
		name     string
		points   map[time.Duration]float64
		giveDLQ  bool
		wantAge  *float64
		wantAt   time.Time
		wantText string
	}{
		{name: "no datapoint", wantText: "oldest message:  " + AgeUnknownNoData},
		{name: "no datapoint in the last 15 minutes", points: map[time.Duration]float64{16 * time.Minute: 900}, wantText: AgeUnknownNoData},
		{
			name:    "the latest datapoint, DLQ given",
			points:  map[time.Duration]float64{20 * time.Minute: 9000, 10 * time.Minute: 600, 2 * time.Minute: 125},
			giveDLQ: true,
			wantAge: aws.Float64(125), wantAt: sqsStatusNow.Add(-2 * time.Minute),
			wantText: "oldest message:  2m5s old  (CloudWatch, 2026-11-20 11:58 UTC)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			queueURL, dlqURL := moto.CreateFIFOQueueWithDLQ(t, "local-status", 1, 30*time.Second)
			deadLetter(t, moto, queueURL, dlqURL)
			sendSQS(t, moto.SQS(), queueURL, "g1", "g2")
			if tc.points != nil {
				putAge(t, cw, queueURL, tc.points)
			}
			opts := SQSStatusOptions{Client: moto.SQS(), QueueURL: queueURL, CloudWatch: cw}
			if tc.giveDLQ {
				opts.DeadLetterURL = dlqURL
			}
			st := ReadStatus(t.Context(), StatusOptions{
				DataDir: t.TempDir(), SQS: &opts, SkipLists: "test",
				TokenStore: healthyToken(t), TokenStoreName: "file:test",
				Now: func() time.Time { return sqsStatusNow },
			})
			q := st.Queue
			if q == nil {
				t.Fatalf("no queue status: %s", st.QueueError)
			}
			if q.Kind != QueueKindSQS || q.URL != queueURL || q.DeadLetterURL != dlqURL || q.Waiting != 2 || q.Depth != 2 || q.DeadLetters != 1 || q.Audiences != nil {
				t.Errorf("queue status %+v, want sqs %s with 2 waiting and 1 dead letter in %s", *q, queueURL, dlqURL)
			}
			switch {
			case tc.wantAge == nil && (q.OldestAgeSeconds != nil || q.OldestAgeUnknown != AgeUnknownNoData):
				t.Errorf("oldest age %v (%q), want unknown", q.OldestAgeSeconds, q.OldestAgeUnknown)
			case tc.wantAge != nil && (q.OldestAgeSeconds == nil || *q.OldestAgeSeconds != *tc.wantAge || !q.OldestAgeAt.Equal(tc.wantAt)):
				t.Errorf("oldest age %v at %v (%q), want %v at %v", q.OldestAgeSeconds, q.OldestAgeAt, q.OldestAgeUnknown, *tc.wantAge, tc.wantAt)
			}
			if st.Healthy || len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "1 dead letter") {
				t.Errorf("healthy %v, warnings %q; want the dead letter", st.Healthy, st.Warnings)
			}
			var text strings.Builder
			if err := st.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"Queue (SQS)", "2 messages (2 waiting, 0 in flight, 0 delayed)", "dead letters:    1", tc.wantText, "not read: test"} {
				if !strings.Contains(text.String(), want) {
					t.Errorf("status text lacks %q:\n%s", want, text.String())
				}
			}
			if st.DataDir != "" {
				t.Errorf("data dir %q in a status of SQS and a given token store", st.DataDir)
			}
		})
	}
}

// TestStatusOfAnSQSQueueWithoutADLQ: a queue with no redrive policy cannot
// be vouched for: the queue error says how to name the DLQ, and it warns.
func TestStatusOfAnSQSQueueWithoutADLQ(t *testing.T) {
	moto := startMoto(t)
	out, err := moto.SQS().CreateQueue(t.Context(), &sqs.CreateQueueInput{QueueName: aws.String(moto.UniqueName("no-dlq"))})
	if err != nil {
		t.Fatalf("create queue: %v", err)
	}
	st := ReadStatus(t.Context(), StatusOptions{
		SQS:        &SQSStatusOptions{Client: moto.SQS(), QueueURL: aws.ToString(out.QueueUrl)},
		TokenStore: healthyToken(t), TokenStoreName: "file:test", SkipLists: "test",
		Now: func() time.Time { return sqsStatusNow },
	})
	if st.Queue != nil || !strings.Contains(st.QueueError, "--dlq-url") || !strings.Contains(st.QueueError, queue.ErrNoDeadLetterQueue.Error()) {
		t.Errorf("queue %+v, error %q; want none, naming --dlq-url", st.Queue, st.QueueError)
	}
	if st.Healthy || len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "the queue could not be read") {
		t.Errorf("healthy %v, warnings %q; want the unreadable queue", st.Healthy, st.Warnings)
	}
}

// fakeMetrics answers GetMetricData with out or err.
type fakeMetrics struct {
	out *cloudwatch.GetMetricDataOutput
	err error
}

func (f fakeMetrics) GetMetricData(context.Context, *cloudwatch.GetMetricDataInput, ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error) {
	return f.out, f.err
}

// TestOldestAge: what CloudWatch may answer besides moto's answers.
func TestOldestAge(t *testing.T) {
	at := func(min int) time.Time { return sqsStatusNow.Add(time.Duration(-min) * time.Minute) }
	tests := []struct {
		name    string
		cw      fakeMetrics
		wantOK  bool
		wantAge float64
		wantAt  time.Time
		wantErr string
	}{
		{
			name: "latest first, as asked",
			cw: fakeMetrics{out: &cloudwatch.GetMetricDataOutput{MetricDataResults: []cwtypes.MetricDataResult{
				{Id: aws.String("age"), Timestamps: []time.Time{at(1), at(2)}, Values: []float64{61, 45}},
			}}},
			wantOK: true, wantAge: 61, wantAt: at(1),
		},
		{
			name: "out of order",
			cw: fakeMetrics{out: &cloudwatch.GetMetricDataOutput{MetricDataResults: []cwtypes.MetricDataResult{
				{Id: aws.String("age"), Timestamps: []time.Time{at(9), at(3), at(5)}, Values: []float64{1, 2, 3}},
			}}},
			wantOK: true, wantAge: 2, wantAt: at(3),
		},
		{
			name: "fewer values than timestamps",
			cw: fakeMetrics{out: &cloudwatch.GetMetricDataOutput{MetricDataResults: []cwtypes.MetricDataResult{
				{Id: aws.String("age"), Timestamps: []time.Time{at(1), at(2)}, Values: []float64{7}},
			}}},
			wantOK: true, wantAge: 7, wantAt: at(1),
		},
		{
			name: "another query's result only",
			cw: fakeMetrics{out: &cloudwatch.GetMetricDataOutput{MetricDataResults: []cwtypes.MetricDataResult{
				{Id: aws.String("other"), Timestamps: []time.Time{at(1)}, Values: []float64{7}},
			}}},
		},
		{name: "access denied", cw: fakeMetrics{err: errors.New("AccessDenied: not authorized to perform cloudwatch:GetMetricData")}, wantErr: "cloudwatch:GetMetricData"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			age, gotAt, ok, err := oldestAge(t.Context(), tc.cw, "q.fifo", sqsStatusNow)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "q.fifo") {
					t.Errorf("err = %v, want one naming the queue and %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || ok != tc.wantOK || age != tc.wantAge || !gotAt.Equal(tc.wantAt) {
				t.Errorf("oldestAge = %v at %v, ok %v, err %v; want %v at %v, ok %v", age, gotAt, ok, err, tc.wantAge, tc.wantAt, tc.wantOK)
			}
		})
	}
}

// TestStatusWithoutCloudWatch: an SQS status whose CloudWatch read fails
// says so in the age, and that alone is no warning.
func TestStatusWithoutCloudWatch(t *testing.T) {
	moto := startMoto(t)
	queueURL, _ := moto.CreateFIFOQueueWithDLQ(t, "local-status-cw", 3, 30*time.Second)
	st := ReadStatus(t.Context(), StatusOptions{
		SQS: &SQSStatusOptions{Client: moto.SQS(), QueueURL: queueURL,
			CloudWatch: fakeMetrics{err: errors.New("AccessDenied: no cloudwatch:GetMetricData")}},
		TokenStore: healthyToken(t), TokenStoreName: "file:test", SkipLists: "test",
		Now: func() time.Time { return sqsStatusNow },
	})
	if st.Queue == nil || st.Queue.OldestAgeSeconds != nil || !strings.Contains(st.Queue.OldestAgeUnknown, "unknown (CloudWatch ApproximateAgeOfOldestMessage") {
		t.Fatalf("queue %+v (%s), want the age unknown with CloudWatch's error", st.Queue, st.QueueError)
	}
	if !st.Healthy {
		t.Errorf("warnings %q, want none: the age is a report", st.Warnings)
	}
}

// healthyToken is a token file far from expiry, as of sqsStatusNow.
func healthyToken(t *testing.T) token.Store {
	t.Helper()
	store := token.FileStore{Path: filepath.Join(t.TempDir(), "token.json")}
	err := store.Save(context.Background(), token.Token{
		ClientID: "c", ClientSecret: "s", AccessToken: "a", RefreshToken: "r",
		AccessTokenExpiresAt: sqsStatusNow.Add(20 * 24 * time.Hour), RefreshTokenExpiresAt: sqsStatusNow.Add(50 * 24 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// sendSQS sends one message to each group.
func sendSQS(t *testing.T, client *sqs.Client, queueURL string, groups ...string) {
	t.Helper()
	var msgs []queue.Outgoing
	for _, g := range groups {
		msgs = append(msgs, queue.Outgoing{GroupID: g, DedupID: "d-" + g, Body: []byte(`{"group":"` + g + `"}`)})
	}
	if failed, err := queue.NewSQS(client, queueURL).SendBatch(t.Context(), msgs); err != nil || len(failed) > 0 {
		t.Fatalf("send: %v, %v", failed, err)
	}
}

// deadLetter sends one message to a queue whose maxReceiveCount is 1 and
// fails its delivery until it is in the dead-letter queue.
func deadLetter(t *testing.T, moto *awstest.Moto, queueURL, dlqURL string) {
	t.Helper()
	sendSQS(t, moto.SQS(), queueURL, "dead")
	for try := 0; ; try++ {
		d, err := queue.NewSQS(moto.SQS(), dlqURL).Depth(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if d.Visible == 1 {
			return
		}
		if try == 5 {
			t.Fatalf("the message did not reach the dead-letter queue: %+v", d)
		}
		ev := moto.ReceiveEvent(t, queueURL, 1)
		var fail events.SQSEventResponse
		for _, r := range ev.Records {
			fail.BatchItemFailures = append(fail.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
		}
		moto.Settle(t, queueURL, ev, fail)
	}
}
