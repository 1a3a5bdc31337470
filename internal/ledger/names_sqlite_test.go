package ledger

import (
	"path/filepath"
	"testing"

	"github.com/pinlist/pinlist/internal/audience"
)

func TestSQLiteNames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	db := openSQLiteDB(t, path)
	ctx := t.Context()
	names, err := NewSQLiteNames(ctx, SQLiteOptions{DB: db})
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

	// A second store on the database (a restart) finds the table and the
	// names in it.
	again, err := NewSQLiteNames(ctx, SQLiteOptions{DB: openSQLiteDB(t, path)})
	if err != nil {
		t.Fatalf("reopen the name store: %v", err)
	}
	if got, err := again.Name(ctx, a); err != nil || got.Name != `Kunden "über" 90 Tage` {
		t.Errorf("after reopening: Name = %+v, %v", got, err)
	}
}

func TestSQLiteNamesSetNameTxCommitsWithTheTransaction(t *testing.T) {
	db := openSQLiteDB(t, filepath.Join(t.TempDir(), "ledger.db"))
	ctx := t.Context()
	names, err := NewSQLiteNames(ctx, SQLiteOptions{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	a := audience.Ref{Namespace: "ups", ID: "aaaa"}
	for _, tt := range []struct {
		name   string
		commit bool
		want   AudienceName
	}{
		{"rolled back", false, AudienceName{}},
		{"committed", true, AudienceName{Name: "Named"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := names.SetNameTx(ctx, tx, a, AudienceName{Name: "Named"}); err != nil {
				t.Fatalf("SetNameTx: %v", err)
			}
			if tt.commit {
				err = tx.Commit()
			} else {
				err = tx.Rollback()
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, err := names.Name(ctx, a); err != nil || got != tt.want {
				t.Errorf("Name = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestSQLiteNamesRefuses(t *testing.T) {
	ctx := t.Context()
	if _, err := NewSQLiteNames(ctx, SQLiteOptions{}); err == nil {
		t.Error("NewSQLiteNames without a DB succeeded")
	}
	names, err := NewSQLiteNames(ctx, SQLiteOptions{DB: openSQLiteDB(t, filepath.Join(t.TempDir(), "ledger.db"))})
	if err != nil {
		t.Fatal(err)
	}
	if err := names.SetName(ctx, audience.Ref{Namespace: "ups"}, AudienceName{Name: "x"}); err == nil {
		t.Error("SetName of an audience without an ID succeeded")
	}
	if err := names.SetNameTx(ctx, nil, audience.Ref{Namespace: "ups", ID: "a"}, AudienceName{}); err == nil {
		t.Error("SetNameTx without a transaction succeeded")
	}
}
