package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/pinlist/pinlist/internal/audience"
)

// sqlitePromisesSchema holds the promises' tables:
//   - guards: one erasure guard per identifier (list type and hash): the
//     greatest erasure precedence and until when it is kept (Unix seconds).
//     While it is live, a change to a row that does not exist is decided as
//     if the row were out at that precedence (see Keeper);
//   - retired: retired lists, done once their rows were dropped.
const sqlitePromisesSchema = `
create table if not exists pinlist_ledger_guards (
  type text not null,
  hash text not null,
  precedence text not null,
  until integer not null,
  primary key (type, hash)
) strict, without rowid;

create index if not exists pinlist_ledger_guards_until_idx on pinlist_ledger_guards (until);

create table if not exists pinlist_ledger_retired (
  key text primary key,
  ns text not null,
  audience text not null,
  type text not null,
  done integer not null default 0
) strict, without rowid;
`

// sqliteMigrateGuards moves schema version 1's per-row guards
// (pinlist_ledger_erased: list, hash, precedence, until) into the
// per-identifier table: per list type and hash the greatest precedence,
// with the until of the guard that had it (the longest on a tie). Guards of
// lists dropped since (FinishRetire) have no type left and go.
const sqliteMigrateGuards = `
insert into pinlist_ledger_guards (type, hash, precedence, until)
select l.type, e.hash, e.precedence, max(e.until) from pinlist_ledger_erased e
join pinlist_ledger_lists l on l.id = e.list
where e.precedence = (
  select max(e2.precedence) from pinlist_ledger_erased e2
  join pinlist_ledger_lists l2 on l2.id = e2.list
  where l2.type = l.type and e2.hash = e.hash)
group by l.type, e.hash;

drop index if exists pinlist_ledger_erased_until_idx;
drop table pinlist_ledger_erased;
`

var _ Keeper = (*SQLite)(nil)

func createSQLitePromisesSchema(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, sqlitePromisesSchema); err != nil {
		return fmt.Errorf("create ledger erasure and retirement tables: %w", err)
	}
	var one int
	err := tx.QueryRowContext(ctx,
		`select 1 from sqlite_master where type = 'table' and name = 'pinlist_ledger_erased'`).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("look for the per-row erasure guards of schema version 1: %w", err)
	}
	if _, err := tx.ExecContext(ctx, sqliteMigrateGuards); err != nil {
		return fmt.Errorf("migrate the per-row erasure guards to per-identifier ones: %w", err)
	}
	return nil
}

// Erase erases in one transaction (see Keeper).
func (s *SQLite) Erase(ctx context.Context, erasures []Erasure) (Erased, error) {
	var res Erased
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		res, err = s.EraseTx(ctx, tx, erasures)
		return err
	})
	if err != nil {
		return Erased{}, fmt.Errorf("erase %d identifiers: %w", len(erasures), err)
	}
	return res, nil
}

// EraseTx is Erase inside the caller's transaction (see ApplyTx).
func (s *SQLite) EraseTx(ctx context.Context, tx *sql.Tx, erasures []Erasure) (Erased, error) {
	if err := checkErasures(erasures); err != nil {
		return Erased{}, fmt.Errorf("check erasures: %w", err)
	}
	var res Erased
	if len(erasures) == 0 {
		return res, nil
	}
	byType := map[audience.ListType][]sqliteList{}
	rows, err := tx.QueryContext(ctx, `
select id, ns, audience, type, owner is not null from pinlist_ledger_lists
where key not in (select key from pinlist_ledger_retired) order by key`)
	if err != nil {
		return Erased{}, fmt.Errorf("read lists: %w", err)
	}
	for rows.Next() {
		var l sqliteList
		var typ string
		if err := rows.Scan(&l.id, &l.list.Audience.Namespace, &l.list.Audience.ID, &typ, &l.owned); err != nil {
			rows.Close()
			return Erased{}, fmt.Errorf("read list: %w", err)
		}
		l.list.Type = audience.ListType(typ)
		byType[l.list.Type] = append(byType[l.list.Type], l)
	}
	if err := rows.Close(); err != nil {
		return Erased{}, fmt.Errorf("read lists: %w", err)
	}
	rw, err := newRowTx(ctx, tx, s.now().Unix())
	if err != nil {
		return Erased{}, err
	}
	defer rw.close()
	// The erasure's own REMOVEs are decided against the rows alone (not
	// guarded): a list the identifier is unknown in gets the removal even
	// when an earlier erasure's guard is live. The guard is written after
	// them, in the same transaction.
	guard, err := tx.PrepareContext(ctx, `
insert into pinlist_ledger_guards (type, hash, precedence, until) values (?, ?, ?, ?)
on conflict (type, hash) do update set precedence = excluded.precedence, until = excluded.until
where excluded.precedence >= pinlist_ledger_guards.precedence`)
	if err != nil {
		return Erased{}, fmt.Errorf("prepare erasure guard write: %w", err)
	}
	defer guard.Close()
	until := s.now().Add(s.guard).Unix()
	touched := map[int64]List{}
	for _, e := range erasures {
		for _, l := range byType[e.Type] {
			d, err := rw.decide(ctx, l, e.Hash, audience.OpRemove, e.Precedence, false)
			if err != nil {
				return Erased{}, err
			}
			res.count(d.Outcome)
			if d.Outcome != Stale && d.Row.Pending() {
				touched[l.id] = l.list
			}
		}
		if _, err := guard.ExecContext(ctx, string(e.Type), e.Hash, e.Precedence, until); err != nil {
			return Erased{}, fmt.Errorf("write erasure guard of a %s identifier: %w", e.Type, err)
		}
	}
	if err := rw.countMembers(ctx); err != nil {
		return Erased{}, err
	}
	for _, l := range touched {
		res.Lists = append(res.Lists, l)
	}
	sortLists(res.Lists)
	return res, nil
}

func sortLists(ls []List) {
	slices.SortFunc(ls, func(a, b List) int {
		switch {
		case a.Key() < b.Key():
			return -1
		case a.Key() > b.Key():
			return 1
		}
		return 0
	})
}

// Purge deletes the erasure guards that have run out, with the erased rows
// they stood over (rows of the identifier's lists that are out, that
// Pinterest has out, and that no change newer than the erasure took over):
// the hash is gone from the ledger. A guard whose erased row still waits
// for Pinterest stays until a Purge after the removal was sent. It returns
// how many rows it deleted. The local flush loop calls it; DynamoDB's TTL
// does it in AWS.
func (s *SQLite) Purge(ctx context.Context) (int64, error) {
	now := s.now().Unix()
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `
delete from pinlist_ledger_rows
where (list, hash) in (
    select l.id, g.hash from pinlist_ledger_guards g join pinlist_ledger_lists l on l.type = g.type
    where g.until <= ?1)
  and want = 2 and pending is null
  and precedence <= (
    select g.precedence from pinlist_ledger_guards g join pinlist_ledger_lists l on l.type = g.type
    where l.id = pinlist_ledger_rows.list and g.hash = pinlist_ledger_rows.hash)`, now)
		if err != nil {
			return fmt.Errorf("delete erased rows: %w", err)
		}
		if n, err = r.RowsAffected(); err != nil {
			return fmt.Errorf("count erased rows deleted: %w", err)
		}
		_, err = tx.ExecContext(ctx, `
delete from pinlist_ledger_guards where until <= ? and not exists (
  select 1 from pinlist_ledger_lists l join pinlist_ledger_rows r on r.list = l.id
  where l.type = pinlist_ledger_guards.type and r.hash = pinlist_ledger_guards.hash
    and r.pending is not null and r.precedence <= pinlist_ledger_guards.precedence)`, now)
		if err != nil {
			return fmt.Errorf("delete erasure guards: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("purge erasure guards and erased rows: %w", err)
	}
	return n, nil
}

// ResetList is ResetSent for one list (see Keeper).
func (s *SQLite) ResetList(ctx context.Context, list List, assume State) (int64, error) {
	if assume > Out {
		return 0, fmt.Errorf("reset sent state of %s: unknown state %d", list.Key(), assume)
	}
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		n, err = resetListTx(ctx, tx, list, assume)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("reset sent state of %s: %w", list.Key(), err)
	}
	return n, nil
}

// resetListTx is ResetList in tx.
func resetListTx(ctx context.Context, tx *sql.Tx, list List, assume State) (int64, error) {
	_, err := tx.ExecContext(ctx, `
update pinlist_ledger_rows set sent = ?1,
  pending = case when want = ?1 then null when want = 1 then 'ADD' else 'REMOVE' end
where list = (select id from pinlist_ledger_lists where key = ?2)`, int64(assume), list.Key())
	if err != nil {
		return 0, fmt.Errorf("update rows: %w", err)
	}
	var n int64
	err = tx.QueryRowContext(ctx, `
select count(*) from pinlist_ledger_rows
where list = (select id from pinlist_ledger_lists where key = ?) and pending is not null`, list.Key()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count pending rows: %w", err)
	}
	return n, nil
}

// Retire retires a in one transaction (see Keeper).
func (s *SQLite) Retire(ctx context.Context, a audience.Ref) ([]List, error) {
	var out []List
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = s.RetireTx(ctx, tx, a)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("retire audience %s: %w", a.Key(), err)
	}
	return out, nil
}

// RetireTx is Retire inside the caller's transaction (see ApplyTx).
func (s *SQLite) RetireTx(ctx context.Context, tx *sql.Tx, a audience.Ref) ([]List, error) {
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("retire audience: %w", err)
	}
	for _, t := range audience.ListTypes {
		l := List{Audience: a, Type: t}
		if _, err := tx.ExecContext(ctx, `
insert into pinlist_ledger_retired (key, ns, audience, type) values (?, ?, ?, ?) on conflict (key) do nothing`,
			l.Key(), a.Namespace, a.ID, string(t)); err != nil {
			return nil, fmt.Errorf("register retired list %s: %w", l.Key(), err)
		}
	}
	if _, err := tx.ExecContext(ctx, `
update pinlist_ledger_rows set want = 2, pending = case when sent = 2 then null else 'REMOVE' end
where list in (select id from pinlist_ledger_lists where ns = ? and audience = ?)`, a.Namespace, a.ID); err != nil {
		return nil, fmt.Errorf("mark rows of audience %s out: %w", a.Key(), err)
	}
	if _, err := tx.ExecContext(ctx, `
update pinlist_ledger_lists set members = 0 where ns = ? and audience = ?`, a.Namespace, a.ID); err != nil {
		return nil, fmt.Errorf("zero member counts of audience %s: %w", a.Key(), err)
	}
	var out []List
	for _, t := range audience.ListTypes {
		l := List{Audience: a, Type: t}
		var one int
		err := tx.QueryRowContext(ctx, `select 1 from pinlist_ledger_lists where key = ?`, l.Key()).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("look up list %s: %w", l.Key(), err)
		}
		out = append(out, l)
	}
	return out, nil
}

// Retiring lists the retired lists whose rows are not dropped yet.
func (s *SQLite) Retiring(ctx context.Context) ([]List, error) {
	return s.queryLists(ctx, "read retiring lists", `select ns, audience, type from pinlist_ledger_retired where done = 0 order by key`)
}

// Retired reports every retired list's key.
func (s *SQLite) Retired(ctx context.Context) (map[string]bool, error) {
	rows, err := s.db.QueryContext(ctx, `select key from pinlist_ledger_retired`)
	if err != nil {
		return nil, fmt.Errorf("read retired lists: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("read retired list: %w", err)
		}
		out[k] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read retired lists: %w", err)
	}
	return out, nil
}

// FinishRetire drops list's rows and list row, and marks it done.
func (s *SQLite) FinishRetire(ctx context.Context, list List) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{
			`delete from pinlist_ledger_rows where list = (select id from pinlist_ledger_lists where key = ?1)`,
			`delete from pinlist_ledger_lists where key = ?1`,
			`update pinlist_ledger_retired set done = 1 where key = ?1`,
		} {
			if _, err := tx.ExecContext(ctx, q, list.Key()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("drop the rows of retired list %s: %w", list.Key(), err)
	}
	return nil
}

// retiredTx reports whether list is retired.
func retiredTx(ctx context.Context, tx *sql.Tx, key string) (bool, error) {
	var one int
	err := tx.QueryRowContext(ctx, `select 1 from pinlist_ledger_retired where key = ?`, key).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up retired list %s: %w", key, err)
	}
	return true, nil
}

// SentIn reports whether list has a row Pinterest was sent in and that is
// still in.
func (s *SQLite) SentIn(ctx context.Context, list List) (bool, error) {
	var one int
	err := s.db.QueryRowContext(ctx, `
select 1 from pinlist_ledger_rows
where list = (select id from pinlist_ledger_lists where key = ?) and sent = 1 and want = 1 limit 1`, list.Key()).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look for members of %s sent to Pinterest: %w", list.Key(), err)
	}
	return true, nil
}

// PendingCount counts list's pending rows.
func (s *SQLite) PendingCount(ctx context.Context, list List) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `
select count(*) from pinlist_ledger_rows
where list = (select id from pinlist_ledger_lists where key = ?) and pending is not null`, list.Key()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count pending rows of %s: %w", list.Key(), err)
	}
	return n, nil
}
