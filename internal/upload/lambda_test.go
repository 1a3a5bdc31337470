package upload_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/google/go-cmp/cmp"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/wire"
)

// TestLambdaInvokeWithTheSampleEvent runs the handler the way lambda.Start
// does (JSON in, JSON out) on the repository's sample SQS event, the one
// `sam local invoke` and the RIE targets use.
func TestLambdaInvokeWithTheSampleEvent(t *testing.T) {
	payload, err := os.ReadFile(filepath.Join("..", "..", "events", "sqs-batch.json"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envConfig{})
	out, err := lambda.NewHandler(e.h.HandleSQS).Invoke(t.Context(), payload)
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	if string(out) != `{"batchItemFailures":[]}` {
		t.Errorf("response %s, want no batch item failures", out)
	}

	// Every ADD of the sample is a member of its audience's list now.
	var ev events.SQSEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{}
	for _, r := range ev.Records {
		m, err := wire.Decode([]byte(r.Body))
		if err != nil {
			t.Fatalf("sample message %s: %v", r.MessageId, err)
		}
		for _, rec := range m.Records {
			if rec.Op == audience.OpAdd {
				name := "pinlist " + m.Audience.Key() + " " + string(rec.List)
				want[name] = sorted(append(want[name], rec.Hash))
			}
		}
	}
	if len(want) == 0 {
		t.Fatal("the sample event adds no one")
	}
	got := e.membership()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("membership (-want +got):\n%s", diff)
	}
}
