package local

import (
	"context"
	"fmt"
	"path"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwschemas "github.com/aws/aws-sdk-go-v2/service/cloudwatch/schemas"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/transport/http/protocol/awsquery"

	"github.com/pinlist/pinlist/internal/queue"
)

// The CloudWatch metric for the age of a queue's oldest message: SQS's
// GetQueueAttributes has no such attribute.
const (
	ageNamespace = "AWS/SQS"
	ageMetric    = "ApproximateAgeOfOldestMessage"
	ageDimension = "QueueName"
	// ageWindow is how far back ReadStatus looks for a datapoint; SQS
	// publishes its metrics every minute (ageResolution) while a queue is
	// active.
	ageWindow     = 15 * time.Minute
	ageResolution = 60 // seconds

	// AgeUnknownNoData is the oldest message's age when CloudWatch has no
	// datapoint for the last 15 minutes: a new or idle queue, or moto, which
	// does not produce SQS metrics. Never a made-up number.
	AgeUnknownNoData = "unknown (no CloudWatch datapoint yet)"
)

// SQSStatusOptions say which SQS queue ReadStatus reports.
type SQSStatusOptions struct {
	Client   *sqs.Client
	QueueURL string
	// DeadLetterURL is its dead-letter queue; default: the target of the
	// queue's RedrivePolicy.
	DeadLetterURL string
	// CloudWatch reads the age of the oldest message (usually from
	// NewCloudWatch). Nil: the age is reported unknown. It needs
	// cloudwatch:GetMetricData, a permission of the operator running
	// `pinlist status`, not of any function.
	CloudWatch MetricsAPI
}

// MetricsAPI is the part of the CloudWatch client ReadStatus uses.
type MetricsAPI interface {
	GetMetricData(ctx context.Context, in *cloudwatch.GetMetricDataInput, opts ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error)
}

var _ MetricsAPI = (*cloudwatch.Client)(nil)

// NewCloudWatch returns a CloudWatch client for cfg that speaks CloudWatch's
// original awsQuery protocol instead of the SDK's default, Smithy RPC v2
// CBOR: every CloudWatch endpoint serves awsQuery, and moto 5.2 serves only
// awsQuery and JSON (it answers CBOR requests with 404), so the code that
// runs against AWS is the code the tests run against moto.
func NewCloudWatch(cfg aws.Config, optFns ...func(*cloudwatch.Options)) *cloudwatch.Client {
	return cloudwatch.NewFromConfig(cfg, append([]func(*cloudwatch.Options){func(o *cloudwatch.Options) {
		o.Protocol = awsquery.New(cwschemas.GraniteServiceVersion20100801)
	}}, optFns...)...)
}

// readSQSStatus reads the depth of the queue and of its dead-letter queue
// (GetQueueAttributes) and the age of its oldest message (CloudWatch).
func readSQSStatus(ctx context.Context, opts SQSStatusOptions, now time.Time) (*QueueStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, statusCallTimeout)
	defer cancel()
	q := queue.NewSQS(opts.Client, opts.QueueURL)
	depth, err := q.Depth(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the queue: %w", err)
	}
	dlqURL := opts.DeadLetterURL
	if dlqURL == "" {
		if dlqURL, err = q.DeadLetterURL(ctx); err != nil {
			return nil, fmt.Errorf("read the dead-letter queue (give it with --dlq-url if the redrive policy does not name it): %w", err)
		}
	}
	dead, err := queue.NewSQS(opts.Client, dlqURL).Depth(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the dead-letter queue: %w", err)
	}
	st := &QueueStatus{
		Kind:          QueueKindSQS,
		URL:           opts.QueueURL,
		DeadLetterURL: dlqURL,
		Depth:         depth.Visible + depth.InFlight + depth.Delayed,
		Waiting:       depth.Visible,
		InFlight:      depth.InFlight,
		Delayed:       depth.Delayed,
		DeadLetters:   dead.Visible + dead.InFlight + dead.Delayed,
	}
	if opts.CloudWatch == nil {
		st.OldestAgeUnknown = "unknown (no CloudWatch client)"
		return st, nil
	}
	age, at, ok, err := oldestAge(ctx, opts.CloudWatch, path.Base(opts.QueueURL), now)
	switch {
	case err != nil:
		st.OldestAgeUnknown = "unknown (" + err.Error() + ")"
	case !ok:
		st.OldestAgeUnknown = AgeUnknownNoData
	default:
		st.OldestAgeSeconds, st.OldestAgeAt = &age, at
	}
	return st, nil
}

// oldestAge returns the latest datapoint of the queue's
// ApproximateAgeOfOldestMessage (the maximum of its minute) in the
// ageWindow before now, in seconds, and its time; ok is false when there is
// none.
func oldestAge(ctx context.Context, cw MetricsAPI, queueName string, now time.Time) (age float64, at time.Time, ok bool, err error) {
	const id = "age"
	out, err := cw.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(now.Add(-ageWindow)),
		EndTime:   aws.Time(now),
		ScanBy:    cwtypes.ScanByTimestampDescending,
		MetricDataQueries: []cwtypes.MetricDataQuery{{
			Id: aws.String(id),
			MetricStat: &cwtypes.MetricStat{
				Metric: &cwtypes.Metric{
					Namespace:  aws.String(ageNamespace),
					MetricName: aws.String(ageMetric),
					Dimensions: []cwtypes.Dimension{{Name: aws.String(ageDimension), Value: aws.String(queueName)}},
				},
				Period: aws.Int32(ageResolution),
				Stat:   aws.String(string(cwtypes.StatisticMaximum)),
			},
		}},
	})
	if err != nil {
		return 0, time.Time{}, false, fmt.Errorf("CloudWatch %s of %s: %w", ageMetric, queueName, err)
	}
	for _, r := range out.MetricDataResults {
		if aws.ToString(r.Id) != id {
			continue
		}
		// Descending by request, but pick the latest anyway: the order is
		// the service's promise, the answer is what counts.
		for i, ts := range r.Timestamps {
			if i < len(r.Values) && (!ok || ts.After(at)) {
				age, at, ok = r.Values[i], ts.UTC(), true
			}
		}
	}
	return age, at, ok, nil
}
