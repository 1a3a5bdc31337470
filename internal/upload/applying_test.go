package upload_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/ledger"
)

// pausingDynamo lets `after` transactions (the row writes of an Apply that
// move a member count) through, then holds the next one until resume is
// closed, having closed paused: an apply invocation caught in the middle.
type pausingDynamo struct {
	ledger.DynamoAPI
	after          int32
	seen           atomic.Int32
	paused, resume chan struct{}
}

func (p *pausingDynamo) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, o ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	if p.seen.Add(1) == p.after+1 {
		close(p.paused)
		<-p.resume
	}
	return p.DynamoAPI.TransactWriteItems(ctx, in, o...)
}

// TestFlushWaitsForTheApplyStillWritingTheList: an apply invocation writes
// a list's rows one by one (for seconds in AWS). A flush that comes by
// meanwhile sends the full calls of what is written and keeps the partial
// rest pending while the Apply's mark is on the list; the Apply's end
// reaches the flusher through the stream (the list item's record), and the
// rest goes out then, with the rows written after the flush, in one call.
// Without the hold the batch would take three calls, not two.
func TestFlushWaitsForTheApplyStillWritingTheList(t *testing.T) {
	a := newAWSEnvWith(t, envConfig{maxRecords: 5})
	aud := ref("aaaa")
	hs := hashes("a", 7)
	p := &pausingDynamo{DynamoAPI: a.dynamo, after: 6, paused: make(chan struct{}), resume: make(chan struct{})}
	applier, err := ledger.NewDynamo(ledger.DynamoOptions{Client: p, Table: a.table, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := applier.Apply(context.Background(), changes(aud, audience.ListEmail, audience.OpAdd, t0, hs...))
		done <- err
	}()
	select {
	case <-p.paused:
	case err := <-done:
		t.Fatalf("Apply ended before its seventh row: %v", err)
	}

	sweep, err := a.flusher.HandleSchedule(t.Context(), events.EventBridgeEvent{DetailType: "Scheduled Event"})
	if err != nil {
		t.Fatalf("HandleSchedule: %v", err)
	}
	if sweep.RecordsSent != 5 || len(a.reqs.ok()) != 1 {
		t.Fatalf("while the Apply writes: %d records sent in %d calls; want one full call of 5", sweep.RecordsSent, len(a.reqs.ok()))
	}
	list := ledger.List{Audience: aud, Type: audience.ListEmail}
	if rows, err := a.ledger.Pending(t.Context(), list, audience.OpAdd, 100); err != nil || len(rows) != 1 {
		t.Fatalf("pending after the flush: %d rows, %v; want the sixth row kept pending", len(rows), err)
	}

	close(p.resume)
	if err := <-done; err != nil {
		t.Fatalf("Apply: %v", err)
	}
	ev := a.stream.Next(t, flips)
	resp, err := a.flusher.HandleStream(t.Context(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("HandleStream = %+v, %v; want no failures", resp, err)
	}
	writes := a.reqs.ok()
	if len(writes) != 2 || len(writes[1].records) != 2 {
		t.Errorf("calls %+v; want the full call, then one call of the two rows left", writes)
	}
	if got := a.membership()["pinlist ups:aaaa EMAIL"]; len(got) != 7 {
		t.Errorf("the list holds %d members, want 7", len(got))
	}
	if lists, err := a.ledger.PendingLists(t.Context()); err != nil || len(lists) != 0 {
		t.Errorf("lists still pending: %v, %v", lists, err)
	}
}
