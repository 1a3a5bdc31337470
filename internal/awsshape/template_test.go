package awsshape

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pinlist/pinlist/internal/ledger"
)

// TestRepoTemplate reads the real template.yaml: the values must be its
// parameter defaults and settings, not copies.
func TestRepoTemplate(t *testing.T) {
	t.Parallel()
	tpl, err := LoadTemplate("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	params, _ := tpl.doc["Parameters"].(map[string]any)
	def := func(name string) int {
		p, _ := params[name].(map[string]any)
		n, err := tpl.integer(p["Default"])
		if err != nil {
			t.Fatalf("parameter %s default: %v", name, err)
		}
		return n
	}
	apply, err := tpl.Function("ApplyFunction")
	if err != nil {
		t.Fatal(err)
	}
	if len(apply.SQS) != 1 {
		t.Fatalf("ApplyFunction has %d SQS sources, want 1", len(apply.SQS))
	}
	s := apply.SQS[0]
	if s.BatchSize != def("ApplyBatchSize") || s.Window != time.Duration(def("ApplyBatchWindow"))*time.Second || !s.ReportBatchItemFailures || s.Queue != "ChangesQueue" {
		t.Errorf("apply's SQS source %+v, want the ApplyBatchSize and ApplyBatchWindow defaults, ReportBatchItemFailures, ChangesQueue", s)
	}
	if apply.Timeout <= 0 {
		t.Errorf("apply timeout %s", apply.Timeout)
	}
	up, err := tpl.Function("UploadFunction")
	if err != nil {
		t.Fatal(err)
	}
	if len(up.Streams) != 1 || len(up.Schedules) != 1 {
		t.Fatalf("UploadFunction has %d streams and %d schedules, want 1 and 1", len(up.Streams), len(up.Schedules))
	}
	st := up.Streams[0]
	if st.Table != "LedgerTable" || !st.ReportBatchItemFailures || st.Filter.String() != ledger.DynamoStreamFilter {
		t.Errorf("upload's stream source %+v (filter %s), want LedgerTable, ReportBatchItemFailures and ledger.DynamoStreamFilter", st, st.Filter)
	}
	if up.Schedules[0].Every <= 0 || !up.Schedules[0].Enabled {
		t.Errorf("upload's schedule %+v, want an enabled rate", up.Schedules[0])
	}
}

const templateHead = `
Parameters:
  Size: {Type: Number, Default: 200}
  NoDefault: {Type: Number}
Globals:
  Function:
    Timeout: 15
Resources:
  Q: {Type: AWS::SQS::Queue}
  T: {Type: AWS::DynamoDB::Table}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        E:
`

func TestTemplateEvents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		event   string
		wantErr string
		check   func(t *testing.T, f Function)
	}{
		{
			name: "SQS with a parameter default and the global timeout",
			event: `          Type: SQS
          Properties:
            Queue: !GetAtt Q.Arn
            BatchSize: !Ref Size
            MaximumBatchingWindowInSeconds: 2
            FunctionResponseTypes: [ReportBatchItemFailures]
            ScalingConfig: {MaximumConcurrency: 3}`,
			check: func(t *testing.T, f Function) {
				want := SQSSource{Event: "E", Queue: "Q", BatchSize: 200, Window: 2 * time.Second, ReportBatchItemFailures: true, MaxConcurrency: 3}
				if len(f.SQS) != 1 || f.SQS[0] != want {
					t.Errorf("SQS %+v, want %+v", f.SQS, want)
				}
				if f.Timeout != 15*time.Second {
					t.Errorf("timeout %s, want the global 15s", f.Timeout)
				}
			},
		},
		{
			name: "stream defaults",
			event: `          Type: DynamoDB
          Properties:
            Stream: !GetAtt T.StreamArn
            StartingPosition: LATEST`,
			check: func(t *testing.T, f Function) {
				s := f.Streams[0]
				if s.BatchSize != 100 || s.MaxRetries != -1 || s.ParallelizationFactor != 1 || s.Filter != nil || s.Bisect {
					t.Errorf("stream %+v, want Lambda's defaults", s)
				}
			},
		},
		{
			name: "schedule",
			event: `          Type: Schedule
          Properties: {Schedule: rate(5 minutes), State: DISABLED}`,
			check: func(t *testing.T, f Function) {
				if s := f.Schedules[0]; s.Every != 5*time.Minute || s.Enabled {
					t.Errorf("schedule %+v, want every 5m, disabled", s)
				}
			},
		},
		{
			name: "a filter pattern the driver cannot evaluate",
			event: `          Type: DynamoDB
          Properties:
            Stream: !GetAtt T.StreamArn
            StartingPosition: LATEST
            FilterCriteria: {Filters: [{Pattern: '{"eventName":["INSERT"]}'}]}`,
			wantErr: "only {\"exists\": true|false} matchers",
		},
		{
			name: "an unknown property",
			event: `          Type: DynamoDB
          Properties:
            Stream: !GetAtt T.StreamArn
            StartingPosition: LATEST
            TumblingWindowInSeconds: 30`,
			wantErr: "TumblingWindowInSeconds are not supported",
		},
		{
			name: "a parameter without a default",
			event: `          Type: SQS
          Properties: {Queue: !GetAtt Q.Arn, BatchSize: !Ref NoDefault}`,
			wantErr: "has no default",
		},
		{
			name: "a queue that does not exist",
			event: `          Type: SQS
          Properties: {Queue: !GetAtt Missing.Arn}`,
			wantErr: "no such resource",
		},
		{
			name: "a cron schedule",
			event: `          Type: Schedule
          Properties: {Schedule: "cron(0 * * * ? *)"}`,
			wantErr: "only rate(",
		},
		{
			name: "a batch over 10 without a window",
			event: `          Type: SQS
          Properties: {Queue: !GetAtt Q.Arn, BatchSize: 100}`,
			wantErr: "needs MaximumBatchingWindowInSeconds",
		},
		{
			name: "an unsupported event type",
			event: `          Type: Kinesis
          Properties: {}`,
			wantErr: `event type "Kinesis"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tpl, err := ParseTemplate([]byte(templateHead + tc.event + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			f, err := tpl.Function("Fn")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, f)
		})
	}
}

func TestFilter(t *testing.T) {
	t.Parallel()
	rec := func(newImage string) map[string]any {
		return map[string]any{"eventName": "MODIFY", "dynamodb": map[string]any{"NewImage": mustJSON(t, newImage)}}
	}
	tests := []struct {
		name     string
		patterns []string
		doc      map[string]any
		want     bool
	}{
		{"exists matches a present leaf", []string{ledger.DynamoStreamFilter}, rec(`{"f":{"S":"x"},"p":{"S":"y"}}`), true},
		{"exists drops an absent field", []string{ledger.DynamoStreamFilter}, rec(`{"p":{"S":"y"}}`), false},
		{"exists drops another type", []string{ledger.DynamoStreamFilter}, rec(`{"f":{"N":"1"}}`), false},
		{"exists true needs a leaf, not an object", []string{`{"dynamodb":{"NewImage":{"f":[{"exists":true}]}}}`}, rec(`{"f":{"S":"x"}}`), false},
		{"exists false matches an absent field", []string{`{"dynamodb":{"NewImage":{"g":{"S":[{"exists":false}]}}}}`}, rec(`{"f":{"S":"x"}}`), true},
		{"no NewImage at all", []string{ledger.DynamoStreamFilter}, map[string]any{"eventName": "REMOVE", "dynamodb": map[string]any{}}, false},
		{"patterns are OR'ed", []string{`{"dynamodb":{"NewImage":{"g":{"S":[{"exists":true}]}}}}`, ledger.DynamoStreamFilter}, rec(`{"f":{"S":"x"}}`), true},
		{"no patterns pass everything", nil, rec(`{}`), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := NewFilter(tc.patterns...)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Match(tc.doc); got != tc.want {
				t.Errorf("Match = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFilterRejectsWhatItCannotEvaluate(t *testing.T) {
	t.Parallel()
	for _, p := range []string{
		`{"eventName":["INSERT"]}`,
		`{"dynamodb":{"NewImage":{"f":{"S":[{"prefix":"a"}]}}}}`,
		`{"dynamodb":{"NewImage":{"f":{"N":[{"numeric":[">",0]}]}}}}`,
		`{"dynamodb":{"NewImage":{"f":{"S":[{"anything-but":"a"}]}}}}`,
		`{"dynamodb":{"NewImage":{"f":{"S":[{"exists":"yes"}]}}}}`,
		`{"dynamodb":{"NewImage":{"f":{"S":[]}}}}`,
		`{"dynamodb":"x"}`,
		`[1]`,
		`{}`,
		`not json`,
	} {
		if _, err := NewFilter(p); err == nil {
			t.Errorf("NewFilter(%s) succeeded, want an error", p)
		}
	}
}

func mustJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}
