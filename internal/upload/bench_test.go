package upload_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/pinlist/pinlist/internal/audience"
)

// BenchmarkHandleSQS is the upload handler on a batch of 10 messages of
// 5,000 changes each (10 audiences, one EMAIL list each) against the
// SQLite ledger and the in-process simulator, which validates every request
// against Pinterest's OpenAPI description. Every batch flips every member
// (all join, then all leave, with ever later event times), so each records
// 50,000 flips and sends one 5,000-record call per list. The lists are
// created before the timer starts: this is the steady state of a warm
// container.
func BenchmarkHandleSQS(b *testing.B) {
	const messages, perMessage = 10, 5000
	e := newEnv(b, envConfig{maxRecords: perMessage, simMax: perMessage})
	round := 0
	batch := func() events.SQSEvent {
		op := audience.OpAdd
		if round%2 == 1 {
			op = audience.OpRemove
		}
		at := t0.Add(time.Duration(round) * time.Minute)
		round++
		var msgs []sqsMsg
		for i := range messages {
			a := ref(fmt.Sprintf("audience-%02d", i))
			msgs = append(msgs, changesMsg(b, changes(a, audience.ListEmail, op, at, hashes(a.ID, perMessage)...)...))
		}
		return event(msgs...)
	}
	run := func(ev events.SQSEvent) {
		resp, err := e.h.HandleSQS(b.Context(), ev)
		if err != nil || len(resp.BatchItemFailures) != 0 {
			b.Fatalf("HandleSQS = %v, %v; want no failures", resp.BatchItemFailures, err)
		}
	}
	run(batch()) // create the lists
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		ev := batch()
		b.StartTimer()
		run(ev)
	}
	if got := e.pendingLists(); len(got) != 0 {
		b.Fatalf("lists still pending: %v", got)
	}
	b.ReportMetric(float64(messages*perMessage*b.N)/b.Elapsed().Seconds(), "changes/s")
}
