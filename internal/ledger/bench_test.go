package ledger

import (
	"fmt"
	"testing"

	"github.com/pinlist/pinlist/internal/audience"
)

// BenchmarkApply applies batches of changes to every store: new rows (each
// a flip and a member count change) and the same batch again (a retry:
// every change stale). The changes/s metric is what counts.
//
// Against moto the numbers say little about DynamoDB: moto copies the whole
// table for every TransactWriteItems (a flip costs O(table)) and the tests
// serialize its requests, so its batches are small and its runs short
// (-benchtime 3x).
func BenchmarkApply(b *testing.B) {
	for _, be := range backends {
		benchBatch := 500
		if be.name == "dynamodb" {
			benchBatch = 50
		}
		b.Run(be.name+"/new", func(b *testing.B) {
			s := be.open(b)
			n := 0
			for b.Loop() {
				batch := make([]audience.Change, benchBatch)
				for i := range batch {
					batch[i] = change(listA, hashOf(fmt.Sprint(n)), add, 10)
					n++
				}
				res, err := s.Apply(b.Context(), batch)
				if err != nil || res.Flipped != benchBatch {
					b.Fatalf("Apply = %+v, %v; want %d flipped", res, err, benchBatch)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "changes/s")
		})
		b.Run(be.name+"/retry", func(b *testing.B) {
			s := be.open(b)
			batch := make([]audience.Change, benchBatch)
			for i := range batch {
				batch[i] = change(listA, hashOf(fmt.Sprint(i)), add, 10)
			}
			if _, err := s.Apply(b.Context(), batch); err != nil {
				b.Fatalf("Apply: %v", err)
			}
			n := 0
			for b.Loop() {
				res, err := s.Apply(b.Context(), batch)
				if err != nil || res.Stale != benchBatch {
					b.Fatalf("Apply = %+v, %v; want %d stale", res, err, benchBatch)
				}
				n += benchBatch
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "changes/s")
		})
	}
}
