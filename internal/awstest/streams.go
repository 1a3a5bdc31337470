package awstest

import (
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

// DynamoDBStreams is a DynamoDB Streams client for the server.
func (m *Moto) DynamoDBStreams() *dynamodbstreams.Client { return dynamodbstreams.NewFromConfig(m.cfg) }

// Stream reads a table's DynamoDB stream the way Lambda's event source
// mapping does, as events.DynamoDBEvent batches. moto 5.2 keeps one shard per
// table and has quirks a consumer must not lean on: UpdateItem on a new item
// writes a key-only INSERT before the real one, and an unchanged write is
// still a MODIFY record.
type Stream struct {
	m         *Moto
	streamARN string
	shards    map[string]string // shard ID → next iterator ("" before the first read)
}

// DynamoDBStream opens the stream of table (which must have one) at its oldest
// record.
func (m *Moto) DynamoDBStream(t testing.TB, table string) *Stream {
	t.Helper()
	d, err := m.DynamoDB().DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatalf("describe table %s: %v", table, err)
	}
	arn := aws.ToString(d.Table.LatestStreamArn)
	if arn == "" {
		t.Fatalf("table %s has no stream", table)
	}
	return &Stream{m: m, streamARN: arn, shards: map[string]string{}}
}

// ARN is the stream's ARN.
func (s *Stream) ARN() string { return s.streamARN }

// Next returns the records written since the last call (all of them on the
// first), in shard order, keeping only those keep accepts (nil keeps all):
// what an event source filter would pass.
func (s *Stream) Next(t testing.TB, keep func(events.DynamoDBEventRecord) bool) events.DynamoDBEvent {
	t.Helper()
	ctx := t.Context()
	client := s.m.DynamoDBStreams()
	desc, err := client.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(s.streamARN)})
	if err != nil {
		t.Fatalf("describe stream %s: %v", s.streamARN, err)
	}
	ev := events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{}}
	for _, sh := range desc.StreamDescription.Shards {
		id := aws.ToString(sh.ShardId)
		it, seen := s.shards[id]
		if !seen {
			out, err := client.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{
				StreamArn: aws.String(s.streamARN), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
			})
			if err != nil {
				t.Fatalf("shard iterator of %s: %v", id, err)
			}
			it = aws.ToString(out.ShardIterator)
		}
		for it != "" {
			out, err := client.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: aws.String(it)})
			if err != nil {
				t.Fatalf("get records of shard %s: %v", id, err)
			}
			next := aws.ToString(out.NextShardIterator)
			if len(out.Records) == 0 || next == "" {
				if next != "" {
					it = next
				}
				break
			}
			it = next
			for _, r := range out.Records {
				rec := s.record(t, r)
				if keep == nil || keep(rec) {
					ev.Records = append(ev.Records, rec)
				}
			}
		}
		s.shards[id] = it
	}
	return ev
}

// record converts one stream record to Lambda's shape.
func (s *Stream) record(t testing.TB, r types.Record) events.DynamoDBEventRecord {
	t.Helper()
	c := r.Dynamodb
	rec := events.DynamoDBEventRecord{
		AWSRegion:      Region,
		EventID:        aws.ToString(r.EventID),
		EventName:      string(r.EventName),
		EventSource:    "aws:dynamodb",
		EventVersion:   aws.ToString(r.EventVersion),
		EventSourceArn: s.streamARN,
		Change: events.DynamoDBStreamRecord{
			Keys:           attrs(t, c.Keys),
			NewImage:       attrs(t, c.NewImage),
			OldImage:       attrs(t, c.OldImage),
			SequenceNumber: aws.ToString(c.SequenceNumber),
			SizeBytes:      aws.ToInt64(c.SizeBytes),
			StreamViewType: string(c.StreamViewType),
		},
	}
	if c.ApproximateCreationDateTime != nil {
		rec.Change.ApproximateCreationDateTime = events.SecondsEpochTime{Time: *c.ApproximateCreationDateTime}
	}
	return rec
}

func attrs(t testing.TB, in map[string]types.AttributeValue) map[string]events.DynamoDBAttributeValue {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]events.DynamoDBAttributeValue, len(in))
	for k, v := range in {
		out[k] = attr(t, v)
	}
	return out
}

func attr(t testing.TB, v types.AttributeValue) events.DynamoDBAttributeValue {
	t.Helper()
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return events.NewStringAttribute(v.Value)
	case *types.AttributeValueMemberN:
		return events.NewNumberAttribute(v.Value)
	case *types.AttributeValueMemberB:
		return events.NewBinaryAttribute(v.Value)
	case *types.AttributeValueMemberBOOL:
		return events.NewBooleanAttribute(v.Value)
	case *types.AttributeValueMemberNULL:
		return events.NewNullAttribute()
	case *types.AttributeValueMemberSS:
		return events.NewStringSetAttribute(v.Value)
	case *types.AttributeValueMemberNS:
		return events.NewNumberSetAttribute(v.Value)
	case *types.AttributeValueMemberL:
		l := make([]events.DynamoDBAttributeValue, len(v.Value))
		for i, x := range v.Value {
			l[i] = attr(t, x)
		}
		return events.NewListAttribute(l)
	case *types.AttributeValueMemberM:
		return events.NewMapAttribute(attrs(t, v.Value))
	default:
		t.Fatalf("stream attribute of type %T not supported", v)
		return events.DynamoDBAttributeValue{}
	}
}
