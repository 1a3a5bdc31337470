package queue

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// localBenchBody is a body of n bytes shaped like packed changes: JSON with
// SHA-256 hex identifiers.
func localBenchBody(n int) []byte {
	const rec = `"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",`
	var sb strings.Builder
	sb.WriteString(`{"adds":[`)
	for sb.Len()+len(rec) < n-2 {
		sb.WriteString(rec)
	}
	sb.WriteString(strings.Repeat(" ", n-2-sb.Len()))
	sb.WriteString("]}")
	return []byte(sb.String())
}

// BenchmarkLocalSendReceive measures one message of about 50 KB through the
// local queue: sent in batches of 10 over 8 groups, received in batches of
// up to 10 and deleted, on a file database.
func BenchmarkLocalSendReceive(b *testing.B) {
	ctx := context.Background()
	l, err := OpenLocal(ctx, LocalOptions{Path: filepath.Join(b.TempDir(), "queue.db"), Consumer: true})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	body := localBenchBody(50_000)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	start := time.Now()
	for done := 0; done < b.N; {
		n := min(MaxBatch, b.N-done)
		batch := make([]Outgoing, n)
		for i := range batch {
			batch[i] = Outgoing{GroupID: fmt.Sprint("g", (done/MaxBatch)%8), DedupID: fmt.Sprint(done + i), Body: body}
		}
		if _, err := l.SendBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < n; {
			rb, err := l.ReceiveGroupBatch(ctx, MaxBatch)
			if err != nil {
				b.Fatal(err)
			}
			if len(rb.Messages) == 0 {
				b.Fatalf("received nothing with %d of %d outstanding", n-got, n)
			}
			if err := l.Delete(ctx, receipts(rb.Messages)...); err != nil {
				b.Fatal(err)
			}
			got += len(rb.Messages)
		}
		done += n
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	b.StopTimer()
	if err := l.Maintain(ctx); err != nil {
		b.Fatal(err)
	}
}
