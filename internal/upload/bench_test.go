package upload_test

import (
	"fmt"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/pinlist/pinlist/internal/audience"
)

// BenchmarkHandleSQS is the upload handler on a batch of 10 messages of
// 5,000 changes each (10 audiences, one EMAIL list each, one PATCH per
// message) against the in-process simulator, which validates every request
// against Pinterest's OpenAPI description. The lists are created before the
// timer starts: this is the steady state of a warm container.
func BenchmarkHandleSQS(b *testing.B) {
	const messages, perMessage = 10, 5000
	e := newEnv(b, envConfig{maxRecords: perMessage, simMax: perMessage})
	var msgs []sqsMsg
	for i := range messages {
		a := ref(fmt.Sprintf("audience-%02d", i))
		msgs = append(msgs, changesMsg(b, changes(a, audience.ListEmail, audience.OpAdd, t0, hashes(a.ID, perMessage)...)...))
	}
	ev := event(msgs...)
	run := func() events.SQSEventResponse {
		resp, err := e.h.HandleSQS(b.Context(), ev)
		if err != nil || len(resp.BatchItemFailures) != 0 {
			b.Fatalf("HandleSQS = %v, %v; want no failures", resp.BatchItemFailures, err)
		}
		return resp
	}
	run() // create the lists
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		run()
	}
	b.ReportMetric(float64(messages*perMessage*b.N)/b.Elapsed().Seconds(), "changes/s")
}
