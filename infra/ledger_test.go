package infra

import (
	"fmt"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/google/go-cmp/cmp"

	"github.com/pinlist/pinlist/internal/ledger"
)

func sorted(xs []string) []string {
	out := slices.Clone(xs)
	slices.Sort(out)
	return out
}

// TestTemplateLedgerTable checks the template's ledger table against
// ledger.DynamoTableInput, the table the code (and every moto test) creates,
// field by field: a key, index or stream that differs breaks the store in
// AWS only.
func TestTemplateLedgerTable(t *testing.T) {
	tpl := loadTemplate(t)
	r := tpl.resource(t, "LedgerTable", "AWS::DynamoDB::Table")
	p := asMap(r["Properties"])
	in := ledger.DynamoTableInput("x")

	if r["DeletionPolicy"] != "Retain" || r["UpdateReplacePolicy"] != "Retain" {
		t.Errorf("DeletionPolicy %v, UpdateReplacePolicy %v; want Retain (the ledger is the connector's memory)", r["DeletionPolicy"], r["UpdateReplacePolicy"])
	}
	if p["TableName"] != nil {
		t.Errorf("TableName is set (%v); a fixed name blocks replacement and a second stack", p["TableName"])
	}
	if got := p["BillingMode"]; got != string(in.BillingMode) {
		t.Errorf("BillingMode %v, want %s", got, in.BillingMode)
	}

	var wantAttrs, gotAttrs []string
	for _, a := range in.AttributeDefinitions {
		wantAttrs = append(wantAttrs, aws.ToString(a.AttributeName)+" "+string(a.AttributeType))
	}
	for _, a := range list(p["AttributeDefinitions"]) {
		gotAttrs = append(gotAttrs, fmt.Sprint(get(a, "AttributeName"), " ", get(a, "AttributeType")))
	}
	if diff := cmp.Diff(sorted(wantAttrs), sorted(gotAttrs)); diff != "" {
		t.Errorf("AttributeDefinitions (-DynamoTableInput +template):\n%s", diff)
	}

	keys := func(v any) []string {
		var out []string
		for _, k := range list(v) {
			out = append(out, fmt.Sprint(get(k, "AttributeName"), " ", get(k, "KeyType")))
		}
		return out
	}
	var wantKeys []string
	for _, k := range in.KeySchema {
		wantKeys = append(wantKeys, aws.ToString(k.AttributeName)+" "+string(k.KeyType))
	}
	if diff := cmp.Diff(wantKeys, keys(p["KeySchema"])); diff != "" {
		t.Errorf("KeySchema (-DynamoTableInput +template):\n%s", diff)
	}

	gsis := list(p["GlobalSecondaryIndexes"])
	if len(gsis) != len(in.GlobalSecondaryIndexes) {
		t.Fatalf("%d global secondary indexes, want %d", len(gsis), len(in.GlobalSecondaryIndexes))
	}
	for i, w := range in.GlobalSecondaryIndexes {
		g := gsis[i]
		if get(g, "IndexName") != aws.ToString(w.IndexName) {
			t.Errorf("index %d is %v, want %s", i, get(g, "IndexName"), aws.ToString(w.IndexName))
		}
		var wk []string
		for _, k := range w.KeySchema {
			wk = append(wk, aws.ToString(k.AttributeName)+" "+string(k.KeyType))
		}
		if diff := cmp.Diff(wk, keys(get(g, "KeySchema"))); diff != "" {
			t.Errorf("index %s KeySchema (-DynamoTableInput +template):\n%s", aws.ToString(w.IndexName), diff)
		}
		if got := get(g, "Projection", "ProjectionType"); got != string(w.Projection.ProjectionType) {
			t.Errorf("index %s ProjectionType %v, want %s", aws.ToString(w.IndexName), got, w.Projection.ProjectionType)
		}
		var na []string
		for _, a := range list(get(g, "Projection", "NonKeyAttributes")) {
			na = append(na, fmt.Sprint(a))
		}
		if diff := cmp.Diff(sorted(w.Projection.NonKeyAttributes), sorted(na)); diff != "" {
			t.Errorf("index %s NonKeyAttributes (-DynamoTableInput +template):\n%s", aws.ToString(w.IndexName), diff)
		}
	}
	if got := get(p, "StreamSpecification", "StreamViewType"); got != string(in.StreamSpecification.StreamViewType) {
		t.Errorf("StreamViewType %v, want %s", got, in.StreamSpecification.StreamViewType)
	}
	if get(p, "TimeToLiveSpecification", "AttributeName") != ledger.DynamoTTLAttribute || get(p, "TimeToLiveSpecification", "Enabled") != true {
		t.Errorf("TimeToLiveSpecification %v, want %s enabled", p["TimeToLiveSpecification"], ledger.DynamoTTLAttribute)
	}
	if get(p, "PointInTimeRecoverySpecification", "PointInTimeRecoveryEnabled") != true {
		t.Errorf("PointInTimeRecoverySpecification %v, want enabled", p["PointInTimeRecoverySpecification"])
	}
}
