package ledger

import (
	"strings"
	"testing"

	"github.com/pinlist/pinlist/internal/audience"
)

func TestDynamoNames(t *testing.T) {
	d := openDynamo(t)
	ctx := t.Context()
	names, err := NewDynamoNames(DynamoOptions{Client: d.client, Table: d.table})
	if err != nil {
		t.Fatalf("new name store: %v", err)
	}
	a, b := audience.Ref{Namespace: "ups", ID: "aaaa"}, audience.Ref{Namespace: "ups", ID: "bbbb"}
	steps := []struct {
		name string
		set  *AudienceName // nil: only read
		want AudienceName
	}{
		{"unknown audience", nil, AudienceName{}},
		{"first name", &AudienceName{Name: "VIP buyers", Description: "Bought twice"}, AudienceName{Name: "VIP buyers", Description: "Bought twice"}},
		{"renamed, description dropped", &AudienceName{Name: "Very important buyers"}, AudienceName{Name: "Very important buyers"}},
		{"unicode and quotes", &AudienceName{Name: `Kunden "über" 90 Tage`, Description: "'; drop table x; --"}, AudienceName{Name: `Kunden "über" 90 Tage`, Description: "'; drop table x; --"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.set != nil {
				if err := names.SetName(ctx, a, *st.set); err != nil {
					t.Fatalf("SetName: %v", err)
				}
			}
			got, err := names.Name(ctx, a)
			if err != nil || got != st.want {
				t.Fatalf("Name = %+v, %v; want %+v", got, err, st.want)
			}
			if other, err := names.Name(ctx, b); err != nil || other != (AudienceName{}) {
				t.Fatalf("another audience's Name = %+v, %v; want none", other, err)
			}
		})
	}

	// The name items share the table with the ledger and stay out of its
	// way: no list, no pending rows, no members appear.
	if lists, err := d.PendingLists(ctx); err != nil || len(lists) != 0 {
		t.Errorf("PendingLists beside name items = %v, %v; want none", lists, err)
	}
	if m, err := d.Members(ctx); err != nil || len(m) != 0 {
		t.Errorf("Members beside name items = %v, %v; want none", m, err)
	}
}

func TestNewDynamoNamesChecksArguments(t *testing.T) {
	if _, err := NewDynamoNames(DynamoOptions{Table: "t"}); err == nil || !strings.Contains(err.Error(), "Client") {
		t.Errorf("no client: %v", err)
	}
	if _, err := NewDynamoNames(DynamoOptions{Client: &serialDynamo{}}); err == nil || !strings.Contains(err.Error(), "Table") {
		t.Errorf("no table: %v", err)
	}
}
