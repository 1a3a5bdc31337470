package local

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/audience/audiencetest"
)

// BenchmarkApplyOverhead measures what the local runner adds to each batch
// around upload.HandleSQS (here a no-op): the SQS event with its MD5s, the
// change count, the delete. A full batch: ten messages at ingest's 256 KB
// bound.
func BenchmarkApplyOverhead(b *testing.B) {
	changes := make([]audience.Change, 4000)
	for i := range changes {
		changes[i] = audience.Change{
			Audience: audience.Ref{Namespace: "ups", ID: "g"}, List: audience.ListEmail, Op: audience.OpAdd,
			Hash: fmt.Sprintf("%064x", i), EventTime: t0,
		}
	}
	packed, err := audiencetest.Pack(changes, 256<<10)
	if err != nil {
		b.Fatal(err)
	}
	batch := testBatch("g", 10, 1, 0)
	for i := range batch.Messages {
		batch.Messages[i].Body = packed[0].Body
	}
	h := &fakeHandler{fail: func(context.Context, events.SQSEvent) ([]string, error) { return nil, nil }}
	b.SetBytes(int64(len(packed[0].Body) * len(batch.Messages)))
	b.ReportAllocs()
	for b.Loop() {
		h.events = h.events[:0]
		w := newTestWorkers(&fakeQueue{}, h)
		w.apply(context.Background(), batch)
	}
	b.ReportMetric(float64(packed[0].Records*len(batch.Messages)), "changes/batch")
}
