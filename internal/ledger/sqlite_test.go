package ledger

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/queue"
)

func TestSQLiteResetSentMakesMembersPendingAgain(t *testing.T) {
	s := openSQLite(t)
	ctx := t.Context()
	r := &run{s: s}
	for _, st := range []step{
		apply(Result{Flipped: 3}, change(listA, h1, add, 10), change(listA, h2, add, 10), change(listA, h3, rem, 10)),
		send(listA, add, h1, h2),
		send(listA, rem, h3),
		pending(listA, nil, nil),
	} {
		st.do(t, r)
	}
	if err := s.ResetSent(ctx, Out); err != nil {
		t.Fatalf("ResetSent: %v", err)
	}
	for _, st := range []step{
		pending(listA, []string{h1, h2}, nil),
		rowIs(listA, h3, Out, Out, change(listA, h3, rem, 10)),
		rowIs(listA, h1, In, Out, change(listA, h1, add, 10)),
		members1(listA, 2),
		send(listA, add, h1, h2),
		pendingLists(),
	} {
		st.do(t, r)
	}
	if err := s.ResetSent(ctx, State(7)); err == nil {
		t.Fatal("ResetSent with an unknown state: want an error")
	}
}

// TestSQLiteApplyTxCommitsWithTheCaller checks that ApplyTx writes nothing
// of its own: a rolled-back transaction leaves no rows and no counts, a
// committed one both.
func TestSQLiteApplyTxCommitsWithTheCaller(t *testing.T) {
	s := openSQLite(t)
	ctx := t.Context()
	changes := []audience.Change{change(listA, h1, add, 10), change(listA, h2, add, 10)}

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if res, err := s.ApplyTx(ctx, tx, changes); err != nil || res != (Result{Flipped: 2}) {
		t.Fatalf("ApplyTx = %+v, %v; want 2 flipped", res, err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	r := &run{s: s}
	members1(listA, 0).do(t, r)
	pending(listA, nil, nil).do(t, r)

	tx, err = s.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if res, err := s.ApplyTx(ctx, tx, changes); err != nil || res != (Result{Flipped: 2}) {
		t.Fatalf("ApplyTx = %+v, %v; want 2 flipped", res, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
	members1(listA, 2).do(t, r)
	pending(listA, []string{h1, h2}, nil).do(t, r)
}

func TestSQLiteSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	db := openSQLiteDB(t, path)
	ctx := t.Context()
	s, err := NewSQLite(ctx, SQLiteOptions{DB: db})
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	if _, err := s.Apply(ctx, []audience.Change{change(listA, h1, add, 10)}); err != nil {
		t.Fatalf("Apply: %v", err)
	}

	t.Run("reopening keeps the rows", func(t *testing.T) {
		s2, err := NewSQLite(ctx, SQLiteOptions{DB: openSQLiteDB(t, path)})
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		members1(listA, 1).do(t, &run{s: s2})
	})
	t.Run("a newer schema is refused", func(t *testing.T) {
		if _, err := db.ExecContext(ctx, `update pinlist_ledger_schema set version = ?`, sqliteSchemaVersion+1); err != nil {
			t.Fatalf("set version: %v", err)
		}
		_, err := NewSQLite(ctx, SQLiteOptions{DB: db})
		if err == nil || !strings.Contains(err.Error(), "newer") {
			t.Fatalf("open a newer schema: error %v, want one saying it is newer", err)
		}
	})
	t.Run("the queue's user_version is left alone", func(t *testing.T) {
		var v int
		if err := db.QueryRowContext(ctx, `pragma user_version`).Scan(&v); err != nil || v != 0 {
			t.Fatalf("user_version = %d, %v; want 0", v, err)
		}
	})
	t.Run("a DB is required", func(t *testing.T) {
		var nilDB *sql.DB
		if _, err := NewSQLite(ctx, SQLiteOptions{DB: nilDB}); err == nil || !strings.Contains(err.Error(), "DB") {
			t.Fatalf("NewSQLite without DB: error %v, want one naming DB", err)
		}
	})
}

// TestSQLiteSharesTheQueueDatabase opens the ledger in the local queue's
// file: both schemas live side by side, and the queue opens again over it.
func TestSQLiteSharesTheQueueDatabase(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "queue.db")
	q, err := queue.OpenLocal(ctx, queue.LocalOptions{Path: path})
	if err != nil {
		t.Fatalf("open local queue: %v", err)
	}
	s, err := NewSQLite(ctx, SQLiteOptions{DB: openSQLiteDB(t, path)})
	if err != nil {
		t.Fatalf("new SQLite ledger in the queue's file: %v", err)
	}
	if _, err := s.Apply(ctx, []audience.Change{change(listA, h1, add, 10)}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if failed, err := q.SendBatch(ctx, []queue.Outgoing{{GroupID: "g", DedupID: "d", Body: []byte("{}")}}); err != nil || len(failed) != 0 {
		t.Fatalf("send to the queue beside the ledger: failed %v, %v", failed, err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("close queue: %v", err)
	}
	q, err = queue.OpenLocal(ctx, queue.LocalOptions{Path: path})
	if err != nil {
		t.Fatalf("reopen the local queue beside the ledger: %v", err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("close queue: %v", err)
	}
	members1(listA, 1).do(t, &run{s: s})
}
