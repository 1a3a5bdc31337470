package ledger

import (
	"path/filepath"
	"testing"
)

// own records id as list's owner.
func own(list List, id string) step {
	return step{"own " + list.Key(), func(t *testing.T, r *run) {
		if err := r.s.(Owning).Own(t.Context(), list, id); err != nil {
			t.Fatalf("Own: %v", err)
		}
	}}
}

// TestOwnedLists: in a list pinlist created (an owner recorded) a
// person the ledger has no row for is out, so a join and an exit before
// any flush leave nothing pending; an ADD being sent (Sending) makes a new
// row Unknown there too, so an exit after a lost answer is sent.
func TestOwnedLists(t *testing.T) {
	const id = "549755813890"
	a9 := change(listA, h2, add, 9) // the list's first member: it is created with it
	a10, r11 := change(listA, h1, add, 10), change(listA, h1, rem, 11)
	b10, b11 := change(listB, h1, add, 10), change(listB, h1, rem, 11)
	created := []step{apply(Result{Flipped: 1}, a9), send(listA, add, h2), own(listA, id)}
	tests := []struct {
		name  string
		steps []step
	}{
		{"a join and an exit in a list not owned: the exit is sent", []step{
			apply(Result{Flipped: 1}, b10),
			apply(Result{Flipped: 1}, b11),
			rowIs(listB, h1, Out, Unknown, b11),
			pending(listB, nil, []string{h1}),
		}},
		{"a join and an exit in an owned list: nothing to send", append(created,
			apply(Result{Flipped: 1}, a10),
			rowIs(listA, h1, In, Out, a10),
			apply(Result{Reverted: 1}, r11),
			rowIs(listA, h1, Out, Out, r11),
			pending(listA, nil, nil),
			pendingLists(),
			members1(listA, 1),
		)},
		{"an exit of a person the owned list never had: nothing to send", append(created,
			apply(Result{Reverted: 1}, r11),
			rowIs(listA, h1, Out, Out, r11),
			pendingLists(),
			members1(listA, 1),
		)},
		{"an exit after an ADD whose answer was lost is sent", append(created,
			apply(Result{Flipped: 1}, a10),
			sending(listA, add, h1),
			rowIs(listA, h1, In, Unknown, a10),
			apply(Result{Flipped: 1}, r11),
			pending(listA, nil, []string{h1}),
		)},
		{"rows from before the owner was recorded stay unknown", []step{
			apply(Result{Flipped: 1}, a9),
			send(listA, add, h2),
			apply(Result{Flipped: 1}, a10),
			own(listA, id),
			apply(Result{Flipped: 1}, r11),
			rowIs(listA, h1, Out, Unknown, r11),
			pending(listA, nil, []string{h1}),
		}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					r := &run{s: b.open(t)}
					for _, s := range tc.steps {
						s.do(t, r)
					}
				})
			}
		})
	}
}

// TestOwnerForgotten: Disown (the list found is not the one pinlist
// created) forgets the owner and makes every row unknown, so members and
// exits are sent again; SQLite's ResetSent (the built-in simulator started
// empty) forgets every owner. An owner is recorded only for a list the
// ledger has.
func TestOwnerForgotten(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			r := &run{s: b.open(t)}
			o := r.s.(Owning)
			if err := o.Own(ctx, listA, "1"); err == nil {
				t.Fatal("Own of a list the ledger has no row for: no error")
			}
			if n, err := o.Disown(ctx, listB); err != nil || n != 0 {
				t.Fatalf("Disown of a list the ledger never saw = %d, %v; want 0, nil", n, err)
			}
			for _, st := range []step{
				apply(Result{Flipped: 2}, change(listA, h1, add, 9), change(listA, h2, add, 9)),
				send(listA, add, h1, h2),
				own(listA, "549755813890"),
				apply(Result{Flipped: 1}, change(listA, h1, rem, 10)),
				send(listA, rem, h1),
				apply(Result{Reverted: 1}, change(listA, h3, rem, 10)),
			} {
				st.do(t, r)
			}
			if got, err := o.Owner(ctx, listA); err != nil || got != "549755813890" {
				t.Fatalf("Owner = %q, %v", got, err)
			}
			n, err := o.Disown(ctx, listA)
			if err != nil || n != 3 {
				t.Fatalf("Disown = %d, %v; want 3 rows pending (h2 in, h1 and h3 out)", n, err)
			}
			if got, err := o.Owner(ctx, listA); err != nil || got != "" {
				t.Fatalf("Owner after Disown = %q, %v; want none", got, err)
			}
			pending(listA, []string{h2}, []string{h1, h3}).do(t, r)
			// Not owned any more: a person it has no row for is unknown.
			apply(Result{Flipped: 1}, change(listA, hashOf("four"), rem, 10)).do(t, r)
			if got, err := o.Owner(ctx, listB); err != nil || got != "" {
				t.Fatalf("Owner of a list the ledger never saw = %q, %v; want none", got, err)
			}
			members1(listA, 1).do(t, r)

			sq, ok := r.s.(*SQLite)
			if !ok {
				return
			}
			own(listA, "549755813891").do(t, r)
			if err := sq.ResetSent(ctx, Out); err != nil {
				t.Fatalf("ResetSent: %v", err)
			}
			if got, err := o.Owner(ctx, listA); err != nil || got != "" {
				t.Fatalf("Owner after ResetSent = %q, %v; want none", got, err)
			}
		})
	}
}

// TestDisownDuringAnApply: a DynamoDB Apply reads its lists' owners when
// it starts; one that wrote an owned list while Disown forgot its owner
// (and reset the rows there were) forgets at its end what its own rows say
// was sent out. A person it wrote as a new member of the list pinlist
// created, who was in the list found all along, is removed when they
// leave; one who left at once is removed now. SQLite applies in one
// transaction, which a Disown waits for.
func TestDisownDuringAnApply(t *testing.T) {
	d := openDynamo(t)
	ctx := t.Context()
	r := &run{s: d}
	for _, st := range []step{
		apply(Result{Flipped: 1}, change(listA, h1, add, 9)),
		send(listA, add, h1),
		own(listA, "549755813890"),
	} {
		st.do(t, r)
	}
	// The join of h2 moves a member count (a transaction): Disown runs
	// while the Apply waits to write it, after the Apply read the owner.
	w := &interruptedWrites{DynamoAPI: d.client, at: 1}
	w.during = func() {
		if _, err := d.Disown(ctx, listA); err != nil {
			t.Errorf("Disown: %v", err)
		}
	}
	d.client = w
	apply(Result{Flipped: 1, Reverted: 1}, change(listA, h2, add, 10), change(listA, h3, rem, 10)).do(t, r)
	if w.seen.Load() < 1 {
		t.Fatal("the Apply wrote no transaction: Disown never ran during it")
	}
	rowIs(listA, h2, In, Unknown, change(listA, h2, add, 10)).do(t, r)
	rowIs(listA, h3, Out, Unknown, change(listA, h3, rem, 10)).do(t, r)
	pending(listA, []string{h1, h2}, []string{h3}).do(t, r)
	apply(Result{Flipped: 1}, change(listA, h2, rem, 11)).do(t, r)
	pending(listA, []string{h1}, []string{h2, h3}).do(t, r)

	// An Apply that ends with the owner it started with leaves its rows as
	// written (the saving of an owned list).
	own(listA, "549755813891").do(t, r)
	h4 := hashOf("four")
	apply(Result{Reverted: 1}, change(listA, h4, rem, 10)).do(t, r)
	rowIs(listA, h4, Out, Out, change(listA, h4, rem, 10)).do(t, r)
}

// TestErasureInOwnedList: an erasure of a person an owned list never had
// sends nothing there; in a list not owned, the removal is sent.
func TestErasureInOwnedList(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			listC := List{Audience: listA.Audience, Type: listA.Type}
			listC.Audience.ID = "aud-3"
			r := &run{s: b.open(t)}
			for _, st := range []step{
				apply(Result{Flipped: 2}, change(listA, h2, add, 9), change(listC, h2, add, 9)),
				send(listA, add, h2),
				send(listC, add, h2),
				own(listA, "549755813890"),
			} {
				st.do(t, r)
			}
			got, err := r.s.(Keeper).Erase(t.Context(), []Erasure{{Type: listA.Type, Hash: h1, Precedence: ErasurePrecedence(at(10))}})
			if err != nil {
				t.Fatalf("Erase: %v", err)
			}
			if len(got.Lists) != 1 || got.Lists[0] != listC || got.Flipped != 1 || got.Reverted != 1 {
				t.Fatalf("Erase = %+v; want the removal pending in %s only", got, listC.Key())
			}
			pending(listA, nil, nil).do(t, r)
		})
	}
}

// TestSQLiteAddsTheOwnerColumn: a database made by schema version 2 gets
// the lists' owner column, no list owned, and version 3.
func TestSQLiteAddsTheOwnerColumn(t *testing.T) {
	ctx := t.Context()
	db := openSQLiteDB(t, filepath.Join(t.TempDir(), "v2.db"))
	const v2 = `
create table pinlist_ledger_schema (id integer primary key check (id = 1), version integer not null) strict;
insert into pinlist_ledger_schema (id, version) values (1, 2);
create table pinlist_ledger_lists (
  id integer primary key, key text not null unique, ns text not null, audience text not null,
  type text not null, members integer not null default 0 check (members >= 0)) strict;
insert into pinlist_ledger_lists (key, ns, audience, type) values ('ups:aud-1/EMAIL', 'ups', 'aud-1', 'EMAIL');
`
	if _, err := db.ExecContext(ctx, v2); err != nil {
		t.Fatalf("create a version 2 database: %v", err)
	}
	s, err := NewSQLite(ctx, SQLiteOptions{DB: db})
	if err != nil {
		t.Fatalf("open the version 2 database: %v", err)
	}
	if got, err := s.Owner(ctx, listA); err != nil || got != "" {
		t.Fatalf("Owner after the migration = %q, %v; want none", got, err)
	}
	if err := s.Own(ctx, listA, "7"); err != nil {
		t.Fatalf("Own after the migration: %v", err)
	}
	var version int
	if err := db.QueryRowContext(ctx, `select version from pinlist_ledger_schema`).Scan(&version); err != nil || version != 3 {
		t.Fatalf("schema version = %d, %v; want 3", version, err)
	}
	if _, err := NewSQLite(ctx, SQLiteOptions{DB: db}); err != nil {
		t.Fatalf("open the migrated database again: %v", err)
	}
}
