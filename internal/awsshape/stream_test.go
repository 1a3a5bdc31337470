package awsshape

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
)

// flipFilter is the template's filter (ledger.DynamoStreamFilter).
const flipFilter = `{"dynamodb":{"NewImage":{"f":{"S":[{"exists":true}]}}}}`

// createStreamTable creates a table (pk, sk) with a NEW_IMAGE stream and
// returns its name and stream ARN.
func createStreamTable(t *testing.T) (string, string) {
	t.Helper()
	name := moto.UniqueName("awsshape")
	s := func(n string) types.AttributeDefinition {
		return types.AttributeDefinition{AttributeName: aws.String(n), AttributeType: types.ScalarAttributeTypeS}
	}
	out, err := moto.DynamoDB().CreateTable(t.Context(), &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{s("pk"), s("sk")},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
		},
		StreamSpecification: &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewImage},
	})
	if err != nil {
		t.Fatalf("create table: %v", err)
	}
	return name, aws.ToString(out.TableDescription.LatestStreamArn)
}

// put writes item (pk, sk, v, and f when flip).
func put(t *testing.T, table, pk string, v int, flip bool) {
	t.Helper()
	item := map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: pk},
		"sk": &types.AttributeValueMemberS{Value: "list"},
		"v":  &types.AttributeValueMemberN{Value: strconv.Itoa(v)},
	}
	if flip {
		item["f"] = &types.AttributeValueMemberS{Value: "p" + strconv.Itoa(v)}
	}
	if _, err := moto.DynamoDB().PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
		t.Fatalf("put item: %v", err)
	}
}

// seenRecord is one record as the function saw it.
type seenRecord struct {
	pk  string
	v   int
	seq string
}

// streamRecorder remembers every record delivered, per delivery.
type streamRecorder struct {
	mu        sync.Mutex
	delivered []seenRecord
	batches   int
	respond   func(batch []seenRecord, call int) (events.DynamoDBEventResponse, error)
}

func (r *streamRecorder) handle(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	if _, ok := ctx.Deadline(); !ok {
		return events.DynamoDBEventResponse{}, errors.New("no deadline")
	}
	var batch []seenRecord
	for _, rec := range ev.Records {
		v, _ := strconv.Atoi(rec.Change.NewImage["v"].Number())
		batch = append(batch, seenRecord{pk: rec.Change.Keys["pk"].String(), v: v, seq: rec.Change.SequenceNumber})
	}
	r.mu.Lock()
	r.batches++
	call := r.batches
	r.mu.Unlock()
	resp, err := events.DynamoDBEventResponse{}, error(nil)
	if r.respond != nil {
		resp, err = r.respond(batch, call)
	}
	if err == nil {
		r.mu.Lock()
		failedFrom := len(batch)
		for _, f := range resp.BatchItemFailures {
			for i, b := range batch {
				if b.seq == f.ItemIdentifier {
					failedFrom = min(failedFrom, i)
				}
			}
		}
		r.delivered = append(r.delivered, batch[:failedFrom]...)
		r.mu.Unlock()
	}
	return resp, err
}

func (r *streamRecorder) done() []seenRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seenRecord(nil), r.delivered...)
}

func newStreamDriver(t *testing.T, arn string, src StreamSource, shards int, h StreamHandler) *StreamDriver {
	t.Helper()
	src.StartingPosition = "TRIM_HORIZON"
	if src.BatchSize == 0 {
		src.BatchSize = 100
	}
	if src.ParallelizationFactor == 0 {
		src.ParallelizationFactor = 1
	}
	d, err := NewStream(StreamOptions{
		Client: dynamodbstreams.NewFromConfig(moto.Config()), StreamARN: arn, PartitionKey: "pk",
		Source: src, Function: Function{Name: "Upload", Timeout: time.Minute}, Handler: h,
		Shards: shards, PollInterval: 20 * time.Millisecond, RetryDelay: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestStreamFilterDropsNonMatching(t *testing.T) {
	t.Parallel()
	table, arn := createStreamTable(t)
	for i := range 10 {
		put(t, table, "k"+strconv.Itoa(i), i, i%2 == 0)
	}
	f, err := NewFilter(flipFilter)
	if err != nil {
		t.Fatal(err)
	}
	rec := &streamRecorder{}
	d := newStreamDriver(t, arn, StreamSource{Filter: f, ReportBatchItemFailures: true}, 2, rec.handle)
	runDriver(t, d.Run)
	waitFor(t, "the stream read", func() bool { return d.Stats().Read == 10 && d.Idle() })
	got := rec.done()
	if len(got) != 5 {
		t.Fatalf("%d records delivered, want the 5 with f", len(got))
	}
	for _, r := range got {
		if r.v%2 != 0 {
			t.Errorf("record %s v=%d has no f but was delivered", r.pk, r.v)
		}
	}
	if st := d.Stats(); st.Dropped != 5 {
		t.Errorf("dropped %d, want 5", st.Dropped)
	}
}

func TestStreamShardsKeepPerKeyOrder(t *testing.T) {
	t.Parallel()
	table, arn := createStreamTable(t)
	const keys, versions = 8, 6
	for v := range versions {
		for k := range keys {
			put(t, table, "key"+strconv.Itoa(k), v, true)
		}
	}
	var mu sync.Mutex
	inFlight, maxInFlight := 0, 0
	rec := &streamRecorder{}
	rec.respond = func([]seenRecord, int) (events.DynamoDBEventResponse, error) {
		mu.Lock()
		inFlight++
		maxInFlight = max(maxInFlight, inFlight)
		mu.Unlock()
		time.Sleep(5 * time.Millisecond) // lets the other shards' batches overlap
		mu.Lock()
		inFlight--
		mu.Unlock()
		return events.DynamoDBEventResponse{}, nil
	}
	d := newStreamDriver(t, arn, StreamSource{BatchSize: 3}, 4, rec.handle)
	runDriver(t, d.Run)
	waitFor(t, "every record", func() bool { return len(rec.done()) == keys*versions && d.Idle() })
	last := map[string]int{}
	for _, r := range rec.done() {
		if prev, ok := last[r.pk]; ok && r.v != prev+1 {
			t.Errorf("%s: version %d after %d, want %d", r.pk, r.v, prev, prev+1)
		}
		last[r.pk] = r.v
	}
	if got := d.Stats().Invocations; got < int64(keys*versions/3) {
		t.Errorf("%d invocations, want batches of at most 3", got)
	}
	t.Logf("at most %d batches at once over %d virtual shards", maxInFlight, d.Shards())
}

func TestStreamFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		src     StreamSource
		respond func(batch []seenRecord, call int) (events.DynamoDBEventResponse, error)
		// want is how often each v was delivered (as part of a batch that
		// did not fail it); wantParked the records given up on.
		wantDeliveries map[int]int
		wantParked     int64
	}{
		{
			name: "BatchItemFailures retry from the failed record on",
			src:  StreamSource{ReportBatchItemFailures: true, MaxRetries: -1},
			respond: func(batch []seenRecord, call int) (events.DynamoDBEventResponse, error) {
				if call == 1 {
					return events.DynamoDBEventResponse{BatchItemFailures: []events.DynamoDBBatchItemFailure{{ItemIdentifier: batch[2].seq}}}, nil
				}
				return events.DynamoDBEventResponse{}, nil
			},
			wantDeliveries: map[int]int{0: 1, 1: 1, 2: 1, 3: 1, 4: 1},
		},
		{
			name: "an error with bisect parks only the poison record",
			src:  StreamSource{ReportBatchItemFailures: true, Bisect: true, MaxRetries: 4},
			respond: func(batch []seenRecord, call int) (events.DynamoDBEventResponse, error) {
				for _, r := range batch {
					if r.v == 3 {
						return events.DynamoDBEventResponse{}, errors.New("poison")
					}
				}
				return events.DynamoDBEventResponse{}, nil
			},
			wantDeliveries: map[int]int{0: 1, 1: 1, 2: 1, 4: 1},
			wantParked:     1,
		},
		{
			name: "an error without bisect parks the batch once retries run out",
			src:  StreamSource{MaxRetries: 2},
			respond: func(batch []seenRecord, call int) (events.DynamoDBEventResponse, error) {
				return events.DynamoDBEventResponse{}, fmt.Errorf("down (call %d)", call)
			},
			wantDeliveries: map[int]int{},
			wantParked:     5,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			table, arn := createStreamTable(t)
			for v := range 5 {
				put(t, table, "k"+strconv.Itoa(v), v, true)
			}
			rec := &streamRecorder{respond: tc.respond}
			var parked sync.Map
			d := newStreamDriver(t, arn, tc.src, 1, rec.handle)
			d.o.OnFailure = func(rs []events.DynamoDBEventRecord) {
				for _, r := range rs {
					parked.Store(r.Change.Keys["pk"].String(), true)
				}
			}
			runDriver(t, d.Run)
			waitFor(t, "the stream handled", func() bool { return d.Stats().Read == 5 && d.Idle() })
			got := map[int]int{}
			for _, r := range rec.done() {
				got[r.v]++
			}
			for v := range 5 {
				if got[v] != tc.wantDeliveries[v] {
					t.Errorf("v=%d delivered %d times, want %d", v, got[v], tc.wantDeliveries[v])
				}
			}
			if st := d.Stats(); st.Parked != tc.wantParked {
				t.Errorf("parked %d, want %d (stats %+v)", st.Parked, tc.wantParked, st)
			}
		})
	}
}
