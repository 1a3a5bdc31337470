package ledger

import (
	"database/sql"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/pinlist/pinlist/internal/audience"
)

// clockedBackend opens an empty store of one kind with an erasure guard and
// a clock the test moves.
type clockedBackend struct {
	name string
	open func(t *testing.T, guard time.Duration, now func() time.Time) keeperStore
}

var clockedBackends = []clockedBackend{
	{"sqlite", func(t *testing.T, guard time.Duration, now func() time.Time) keeperStore {
		db := openSQLiteDB(t, filepath.Join(t.TempDir(), "ledger.db"))
		s, err := NewSQLite(t.Context(), SQLiteOptions{DB: db, ErasureGuard: guard, Now: now})
		if err != nil {
			t.Fatalf("new SQLite ledger: %v", err)
		}
		return s
	}},
	{"dynamodb", func(t *testing.T, guard time.Duration, now func() time.Time) keeperStore {
		return openDynamoWith(t, DynamoOptions{ErasureGuard: guard, Now: now})
	}},
}

var (
	// listE and listF are EMAIL lists the ledger first sees after the
	// erasure (audiences that came later).
	listE = List{Audience: audience.Ref{Namespace: "ups", ID: "aud-5"}, Type: audience.ListEmail}
	listF = List{Audience: audience.Ref{Namespace: "ups", ID: "aud-6"}, Type: audience.ListEmail}
	// listG is a MAID list, also new: another list type.
	listG = List{Audience: audience.Ref{Namespace: "ups", ID: "aud-5"}, Type: audience.ListMAID}
)

// deleteRow deletes a row as a store's own clean-up might (a row gone while
// the erasure's guard is live).
func deleteRow(t *testing.T, s keeperStore, list List, hash string) {
	t.Helper()
	var err error
	switch s := s.(type) {
	case *SQLite:
		_, err = s.db.ExecContext(t.Context(), `
delete from pinlist_ledger_rows where list = (select id from pinlist_ledger_lists where key = ?) and hash = ?`,
			list.Key(), hash)
	case *Dynamo:
		err = s.batchDelete(t.Context(), []map[string]types.AttributeValue{rowKeyAttrs(list, hash)})
	default:
		t.Fatalf("deleteRow: unknown store %T", s)
	}
	if err != nil {
		t.Fatalf("delete the row of %s: %v", list.Key(), err)
	}
}

// assertUnseen fails if list shows anywhere the ledger reports lists.
func assertUnseen(t *testing.T, s keeperStore, list List) {
	t.Helper()
	ctx := t.Context()
	if m, err := s.Members(ctx); err != nil || m[list] != 0 {
		t.Fatalf("Members = %v, %v; want no members in %s", m, err, list.Key())
	}
	if ls, err := s.PendingLists(ctx); err != nil || slices.Contains(ls, list) {
		t.Fatalf("PendingLists = %v, %v; want no %s", ls, err, list.Key())
	}
	if _, ok, err := s.Get(ctx, list, h1); err != nil || ok {
		t.Fatalf("Get(%s, h1) = %v, %v; want no row", list.Key(), ok, err)
	}
}

// TestEraseGuardPerIdentifier: h1 is erased while the ledger knows list A
// only. Changes stamped before the erasure are then stale in every EMAIL
// list, lists first seen after it and rows deleted since included, until
// the guard runs out; later ones apply (a join flips, an exit is a no-op);
// other list types are not guarded.
func TestEraseGuardPerIdentifier(t *testing.T) {
	const guard = 2 * time.Hour
	for _, b := range clockedBackends {
		t.Run(b.name, func(t *testing.T) {
			now := at(12)
			s := b.open(t, guard, func() time.Time { return now })
			ctx := t.Context()
			if _, err := s.Apply(ctx, []audience.Change{change(listA, h1, add, 10)}); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			sendAll(t, s, listA)
			er, err := s.Erase(ctx, []Erasure{{Type: audience.ListEmail, Hash: h1, Precedence: ErasurePrecedence(at(12))}})
			if err != nil || er.Flipped != 1 || !slices.Equal(er.Lists, []List{listA}) {
				t.Fatalf("Erase = %+v, %v; want one flip in list A", er, err)
			}
			sendAll(t, s, listA)

			// (1) A list first seen after the erasure.
			res, err := s.Apply(ctx, []audience.Change{change(listE, h1, add, 11), change(listE, h2, add, 11)})
			if err != nil || res != (Result{Flipped: 1, Stale: 1}) {
				t.Fatalf("joins to a new list = %+v, %v; want h2 flipped, h1 stale", res, err)
			}
			if got := pendingHashes(t, s, listE, add); !slices.Equal(got, []string{h2}) {
				t.Fatalf("pending adds of the new list = %v, want h2 only", got)
			}
			if _, ok, err := s.Get(ctx, listE, h1); err != nil || ok {
				t.Fatalf("Get(new list, h1) = %v, %v; want no row", ok, err)
			}
			if m, err := s.Members(ctx); err != nil || m[listE] != 1 {
				t.Fatalf("Members = %v, %v; want 1 (h2) in the new list", m, err)
			}
			// An exit stamped at the erasure is a duplicate of it: stale too.
			if res, err := s.Apply(ctx, []audience.Change{change(listF, h1, rem, 12)}); err != nil || res != (Result{Stale: 1}) {
				t.Fatalf("an exit stamped at the erasure = %+v, %v; want stale", res, err)
			}
			assertUnseen(t, s, listF)
			// Another list type is another identifier.
			if res, err := s.Apply(ctx, []audience.Change{change(listG, h1, add, 11)}); err != nil || res != (Result{Flipped: 1}) {
				t.Fatalf("a MAID join of the same hash = %+v, %v; want a flip", res, err)
			}

			// (2) A row gone since the erasure.
			deleteRow(t, s, listA, h1)
			if res, err := s.Apply(ctx, []audience.Change{change(listA, h1, add, 11)}); err != nil || res != (Result{Stale: 1}) {
				t.Fatalf("an old join to a deleted row = %+v, %v; want stale", res, err)
			}
			if _, ok, err := s.Get(ctx, listA, h1); err != nil || ok {
				t.Fatalf("Get(A, h1) after a stale join = %v, %v; want no row", ok, err)
			}

			// Later changes apply: an exit is a no-op (out, sent out), a
			// join flips.
			if res, err := s.Apply(ctx, []audience.Change{change(listF, h1, rem, 13)}); err != nil || res != (Result{NoOps: 1}) {
				t.Fatalf("a later exit in a new list = %+v, %v; want a no-op", res, err)
			}
			if r, _, err := s.Get(ctx, listF, h1); err != nil || r.Want != Out || r.Sent != Out || r.Pending() {
				t.Fatalf("row after a later exit = %+v, %v; want out and sent out", r, err)
			}
			if res, err := s.Apply(ctx, []audience.Change{change(listE, h1, add, 13)}); err != nil || res != (Result{Flipped: 1}) {
				t.Fatalf("a later join in a new list = %+v, %v; want a flip", res, err)
			}
			if got := pendingHashes(t, s, listE, add); !slices.Equal(got, sorted(h1, h2)) {
				t.Fatalf("pending adds after a later join = %v, want h1 and h2", got)
			}

			// (3) Past until, the guard is gone: an old change applies as
			// for any identifier the ledger does not know.
			now = at(12).Add(guard)
			listH := List{Audience: audience.Ref{Namespace: "ups", ID: "aud-7"}, Type: audience.ListEmail}
			if res, err := s.Apply(ctx, []audience.Change{change(listH, h1, add, 11)}); err != nil || res != (Result{Flipped: 1}) {
				t.Fatalf("an old join after the guard ran out = %+v, %v; want a flip", res, err)
			}
		})
	}
}

// TestEraseGuardExpiry: Purge (SQLite) deletes a guard that ran out, with
// the erased rows it stood over; DynamoDB's guard item carries until in the
// TTL attribute (moto never expires items, so the test reads it).
func TestEraseGuardExpiry(t *testing.T) {
	const guard = 2 * time.Hour
	until := at(12).Add(guard).Unix()
	t.Run("sqlite", func(t *testing.T) {
		now := at(12)
		s := clockedBackends[0].open(t, guard, func() time.Time { return now }).(*SQLite)
		ctx := t.Context()
		if _, err := s.Apply(ctx, []audience.Change{change(listA, h1, add, 10)}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Erase(ctx, []Erasure{
			{Type: audience.ListEmail, Hash: h1, Precedence: ErasurePrecedence(at(12))},
			{Type: audience.ListMAID, Hash: h2, Precedence: ErasurePrecedence(at(12))},
		}); err != nil {
			t.Fatal(err)
		}
		guards := func() map[string]int64 {
			t.Helper()
			rows, err := s.db.QueryContext(ctx, `select type, hash, until from pinlist_ledger_guards`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			out := map[string]int64{}
			for rows.Next() {
				var typ, hash string
				var u int64
				if err := rows.Scan(&typ, &hash, &u); err != nil {
					t.Fatal(err)
				}
				out[typ+"/"+hash] = u
			}
			return out
		}
		if g := guards(); len(g) != 2 || g["EMAIL/"+h1] != until || g["MAID/"+h2] != until {
			t.Fatalf("guards = %v, want EMAIL h1 and MAID h2 until %d", g, until)
		}
		now = at(12).Add(guard)
		// The erased row still waits for Pinterest: it and its guard stay.
		if n, err := s.Purge(ctx); err != nil || n != 0 {
			t.Fatalf("Purge with a pending erased row = %d, %v; want 0", n, err)
		}
		if g := guards(); len(g) != 1 || g["EMAIL/"+h1] != until {
			t.Fatalf("guards after Purge = %v, want EMAIL h1 only (its row is pending)", g)
		}
		sendAll(t, s, listA)
		if n, err := s.Purge(ctx); err != nil || n != 1 {
			t.Fatalf("Purge = %d, %v; want 1", n, err)
		}
		if g := guards(); len(g) != 0 {
			t.Fatalf("guards after the last Purge = %v, want none", g)
		}
		if _, ok, _ := s.Get(ctx, listA, h1); ok {
			t.Fatal("the erased row is still there")
		}
	})
	t.Run("dynamodb", func(t *testing.T) {
		now := at(12)
		d := clockedBackends[1].open(t, guard, func() time.Time { return now }).(*Dynamo)
		ctx := t.Context()
		if _, err := d.Erase(ctx, []Erasure{{Type: audience.ListEmail, Hash: h1, Precedence: ErasurePrecedence(at(12))}}); err != nil {
			t.Fatal(err)
		}
		// An older erasure arriving later keeps the newer guard.
		if _, err := d.Erase(ctx, []Erasure{{Type: audience.ListEmail, Hash: h1, Precedence: ErasurePrecedence(at(11))}}); err != nil {
			t.Fatal(err)
		}
		out, err := d.client.GetItem(ctx, &dynamodb.GetItemInput{
			TableName: aws.String(d.table), Key: guardKeyAttrs(audience.ListEmail, h1), ConsistentRead: aws.Bool(true),
		})
		if err != nil || out.Item == nil {
			t.Fatalf("read the guard item = %v, %v", out, err)
		}
		x, _ := out.Item[DynamoTTLAttribute].(*types.AttributeValueMemberN)
		p, _ := out.Item[dynPrec].(*types.AttributeValueMemberS)
		if x == nil || x.Value != strconv.FormatInt(until, 10) || p == nil || p.Value != ErasurePrecedence(at(12)) {
			t.Fatalf("guard item = %v, want TTL %d and the newer erasure's precedence", out.Item, until)
		}
		// Nothing that makes a row a row for the index, the stream filter
		// or the scans.
		for _, a := range []string{dynWant, dynSent, dynPending, dynFlip} {
			if _, ok := out.Item[a]; ok {
				t.Fatalf("guard item has %s: %v", a, out.Item)
			}
		}
	})
}

// TestEraseGuardHidden: guard items (and guards of types no list has) show
// in no list of lists, member counts, pending lists or retiring lists.
func TestEraseGuardHidden(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t).(keeperStore)
			ctx := t.Context()
			if _, err := s.Apply(ctx, []audience.Change{change(listA, h2, add, 10)}); err != nil {
				t.Fatal(err)
			}
			sendAll(t, s, listA)
			if _, err := s.Erase(ctx, []Erasure{
				{Type: audience.ListEmail, Hash: h1, Precedence: ErasurePrecedence(at(12))},
				{Type: audience.ListMAID, Hash: h3, Precedence: ErasurePrecedence(at(12))},
			}); err != nil {
				t.Fatal(err)
			}
			sendAll(t, s, listA)
			if m, err := s.Members(ctx); err != nil || len(m) != 1 || m[listA] != 1 {
				t.Fatalf("Members = %v, %v; want list A with 1", m, err)
			}
			if ls, err := s.PendingLists(ctx); err != nil || len(ls) != 0 {
				t.Fatalf("PendingLists = %v, %v; want none", ls, err)
			}
			if ls, err := s.Retiring(ctx); err != nil || len(ls) != 0 {
				t.Fatalf("Retiring = %v, %v; want none", ls, err)
			}
			if r, err := s.Retired(ctx); err != nil || len(r) != 0 {
				t.Fatalf("Retired = %v, %v; want none", r, err)
			}
			if n, err := s.PendingCount(ctx, listA); err != nil || n != 0 {
				t.Fatalf("PendingCount = %d, %v; want 0", n, err)
			}
			if d, ok := s.(*Dynamo); ok {
				ls, err := d.lists(ctx)
				if err != nil || !slices.Equal(ls, []List{listA}) {
					t.Fatalf("lists = %v, %v; want list A", ls, err)
				}
				var rows int
				if err := d.scanRows(ctx, []string{listA.Key()}, func(List, Row, map[string]types.AttributeValue) error {
					rows++
					return nil
				}); err != nil || rows != 2 {
					t.Fatalf("scanRows = %d rows, %v; want 2 (h1 and h2)", rows, err)
				}
			}
		})
	}
}

// TestSQLiteMigratesPerRowGuards: a database made by schema version 1
// (guards per row) is migrated to one guard per identifier with the
// greatest precedence, the old table dropped.
func TestSQLiteMigratesPerRowGuards(t *testing.T) {
	const v1 = `
create table pinlist_ledger_schema (id integer primary key check (id = 1), version integer not null) strict;
insert into pinlist_ledger_schema (id, version) values (1, 1);
create table pinlist_ledger_lists (
  id integer primary key, key text not null unique, ns text not null, audience text not null,
  type text not null, members integer not null default 0 check (members >= 0)) strict;
create table pinlist_ledger_rows (
  list integer not null references pinlist_ledger_lists (id), hash text not null,
  want integer not null check (want in (1, 2)), precedence text not null,
  sent integer not null check (sent in (0, 1, 2)), pending text check (pending in ('ADD', 'REMOVE')),
  primary key (list, hash)) strict, without rowid;
create index pinlist_ledger_pending_idx on pinlist_ledger_rows (list, pending, precedence) where pending is not null;
create table pinlist_ledger_erased (
  list integer not null, hash text not null, precedence text not null, until integer not null,
  primary key (list, hash)) strict, without rowid;
create index pinlist_ledger_erased_until_idx on pinlist_ledger_erased (until);
create table pinlist_ledger_retired (
  key text primary key, ns text not null, audience text not null, type text not null,
  done integer not null default 0) strict, without rowid;
`
	ctx := t.Context()
	db := openSQLiteDB(t, filepath.Join(t.TempDir(), "v1.db"))
	if _, err := db.ExecContext(ctx, v1); err != nil {
		t.Fatalf("create a version 1 database: %v", err)
	}
	older, newer := ErasurePrecedence(at(11)), ErasurePrecedence(at(12))
	untilOld, untilNew := at(13).Unix(), at(14).Unix()
	lists := []List{listA, listC, listB} // ids 1, 2 (EMAIL), 3 (MAID)
	for i, l := range lists {
		if _, err := db.ExecContext(ctx, `insert into pinlist_ledger_lists (id, key, ns, audience, type) values (?, ?, ?, ?, ?)`,
			i+1, l.Key(), l.Audience.Namespace, l.Audience.ID, string(l.Type)); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range []struct {
		list  int
		hash  string
		p     string
		until int64
	}{
		{1, h1, older, untilOld}, {2, h1, newer, untilNew}, // EMAIL h1: two erasures
		{3, h1, older, untilOld}, // MAID h1
		{9, h2, newer, untilNew}, // a list dropped since (FinishRetire)
	} {
		if _, err := db.ExecContext(ctx, `insert into pinlist_ledger_rows (list, hash, want, precedence, sent) values (?, ?, 2, ?, 2)`,
			g.list, g.hash, g.p); err != nil && g.list != 9 {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `insert into pinlist_ledger_erased (list, hash, precedence, until) values (?, ?, ?, ?)`,
			g.list, g.hash, g.p, g.until); err != nil {
			t.Fatal(err)
		}
	}

	now := at(12)
	s, err := NewSQLite(ctx, SQLiteOptions{DB: db, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatalf("open the version 1 database: %v", err)
	}
	type guardRow struct {
		typ, hash, p string
		until        int64
	}
	var got []guardRow
	rows, err := db.QueryContext(ctx, `select type, hash, precedence, until from pinlist_ledger_guards order by type, hash`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var g guardRow
		if err := rows.Scan(&g.typ, &g.hash, &g.p, &g.until); err != nil {
			t.Fatal(err)
		}
		got = append(got, g)
	}
	rows.Close()
	want := []guardRow{{"EMAIL", h1, newer, untilNew}, {"MAID", h1, older, untilOld}}
	if !slices.Equal(got, want) {
		t.Fatalf("guards after the migration = %+v, want %+v", got, want)
	}
	var one int
	err = db.QueryRowContext(ctx, `select 1 from sqlite_master where name = 'pinlist_ledger_erased'`).Scan(&one)
	if err != sql.ErrNoRows {
		t.Fatalf("the version 1 guard table is still there (%v)", err)
	}
	var version int
	if err := db.QueryRowContext(ctx, `select version from pinlist_ledger_schema`).Scan(&version); err != nil || version != sqliteSchemaVersion {
		t.Fatalf("schema version = %d, %v; want %d", version, err, sqliteSchemaVersion)
	}
	// The migrated guard works for a list first seen now.
	if res, err := s.Apply(ctx, []audience.Change{change(listE, h1, add, 11)}); err != nil || res != (Result{Stale: 1}) {
		t.Fatalf("an old join to a new list after the migration = %+v, %v; want stale", res, err)
	}
	// Opening again changes nothing.
	if _, err := NewSQLite(ctx, SQLiteOptions{DB: db}); err != nil {
		t.Fatalf("open the migrated database again: %v", err)
	}
}
