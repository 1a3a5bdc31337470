package ingest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pinlist/pinlist/internal/queue"
)

// countingSender accepts everything and only counts, so the benchmark
// measures the handler, not a fake's bookkeeping.
type countingSender struct{ msgs, bytes atomic.Int64 }

func (s *countingSender) SendBatch(_ context.Context, msgs []queue.Outgoing) ([]int, error) {
	s.msgs.Add(int64(len(msgs)))
	for _, m := range msgs {
		s.bytes.Add(int64(len(m.Body)))
	}
	return nil, nil
}

// benchBody is a POST /v1/profiles body of n profiles, each with an email, a
// GAID and an IDFA and three memberships out of ten audiences: 9 changes per
// profile.
func benchBody(n int) string {
	var b strings.Builder
	b.WriteString(`{"profiles":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"identityMap":{"email":[{"id":"User.%d@Example.com"}],"gaid":[{"id":"%08x-8cf0-11bd-b23e-10b96e40000d"}],"idfa":[{"id":"%08X-8246-4BA4-AE5B-76104861E7DC"}],"crmId":[{"id":"c%d"}]},`, i, i, i, i)
		b.WriteString(`"segmentMembership":{"ups":{`)
		for j := range 3 {
			if j > 0 {
				b.WriteByte(',')
			}
			status := "realized"
			if (i+j)%4 == 0 {
				status = "exited"
			}
			fmt.Fprintf(&b, `"aud-%d":{"status":%q,"lastQualificationTime":"2026-11-%02dT10:00:00Z"}`, (i+j*3)%10, status, 1+j)
		}
		b.WriteString(`}}}`)
	}
	b.WriteString(`]}`)
	return b.String()
}

// BenchmarkIngestProfiles serves a 1,000-profile POST /v1/profiles through
// ServeHTTP with a sender that accepts everything.
func BenchmarkIngestProfiles(b *testing.B) {
	body := benchBody(1000)
	sender := &countingSender{}
	h, err := New(Options{Sender: sender, IngestToken: StaticIngestToken(testToken)})
	if err != nil {
		b.Fatal(err)
	}
	w := newRecorder()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodPost, PathProfiles, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/json")
		w.header = http.Header{}
		w.status = 0
		w.body.Reset()
		h.ServeHTTP(w, req)
		if w.status != http.StatusAccepted {
			b.Fatalf("status %d: %s", w.status, w.body.String())
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	b.ReportMetric(float64(sender.msgs.Load())/float64(b.N), "msgs/req")
	b.ReportMetric(float64(sender.bytes.Load())/float64(b.N), "queueB/req")
}
