package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pinlist/pinlist/internal/audience"
)

// sqliteSchemaVersion is the version a database made by this code carries in
// pinlist_ledger_schema; a newer one was written by a newer pinlist and is
// refused. (SQLite's user_version belongs to the local queue, which shares
// the file.)
//
// Version 2 keeps the erasure guards per identifier (pinlist_ledger_guards)
// instead of per row (version 1's pinlist_ledger_erased, migrated by
// NewSQLite). Version 3 adds pinlist_ledger_lists.owner (see Owning; added
// to older databases by NewSQLite, null: no list is known to be pinlist's).
const sqliteSchemaVersion = 3

// sqliteSchema is the ledger's part of the local database. Every name starts
// with pinlist_ledger_, so it lives beside the local queue's tables.
//   - lists: one row per list with its parts (a list key cannot be split
//     back unambiguously), its exact member count, changed in the same
//     transaction as the rows, and owner, the ID of the Pinterest list
//     pinlist created for it (see Owning), else null;
//   - rows: one per (list, hash); pending is the op that brings Pinterest to
//     want while want != sent, else null, so the partial index holds exactly
//     the pending rows per list and op (with the precedence, so Pending reads
//     the index alone).
//
// States are stored as their State values (0 Unknown, 1 In, 2 Out).
const sqliteSchema = `
create table if not exists pinlist_ledger_schema (
  id integer primary key check (id = 1),
  version integer not null
) strict;

create table if not exists pinlist_ledger_lists (
  id integer primary key,
  key text not null unique,
  ns text not null,
  audience text not null,
  type text not null,
  members integer not null default 0 check (members >= 0),
  owner text
) strict;

create table if not exists pinlist_ledger_rows (
  list integer not null references pinlist_ledger_lists (id),
  hash text not null,
  want integer not null check (want in (1, 2)),
  precedence text not null,
  sent integer not null check (sent in (0, 1, 2)),
  pending text check (pending in ('ADD', 'REMOVE')),
  primary key (list, hash)
) strict, without rowid;

create index if not exists pinlist_ledger_pending_idx
  on pinlist_ledger_rows (list, pending, precedence) where pending is not null;
`

// SQLiteOptions configure NewSQLite.
type SQLiteOptions struct {
	// DB is the database, required. It may be the local queue's (the tables
	// have their own names), so ApplyTx can run in the queue's transaction.
	// Open it as the queue does, with _txlock=immediate (a read-then-write
	// transaction never has to upgrade its lock and fail with SQLITE_BUSY)
	// and a busy timeout. With a one-connection pool (the queue's), call
	// the store's methods other than ApplyTx only while holding no
	// transaction on it, or they wait for the connection forever.
	DB *sql.DB
	// ErasureGuard is how long an erased identifier's guard (and its
	// erased rows) are kept (see Keeper). Default config.DefaultErasureGuard.
	ErasureGuard time.Duration
	// Now is the clock for erasure guards; default time.Now.
	Now func() time.Time
}

// SQLite is the local ledger store: tables in a SQLite database, every Apply
// and MarkSent one transaction.
type SQLite struct {
	db    *sql.DB
	guard time.Duration
	now   func() time.Time
}

var _ Store = (*SQLite)(nil)

// NewSQLite creates the ledger's tables when absent (in one transaction) and
// returns the store.
func NewSQLite(ctx context.Context, opts SQLiteOptions) (*SQLite, error) {
	if opts.DB == nil {
		return nil, errors.New("new SQLite ledger: DB is required")
	}
	guard, err := guardOrDefault("ErasureGuard", opts.ErasureGuard)
	if err != nil {
		return nil, fmt.Errorf("new SQLite ledger: %w", err)
	}
	s := &SQLite{db: opts.DB, guard: guard, now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if err := createSQLiteSchema(ctx, tx); err != nil {
			return err
		}
		return createSQLitePromisesSchema(ctx, tx)
	})
	if err != nil {
		return nil, fmt.Errorf("new SQLite ledger: %w", err)
	}
	return s, nil
}

func createSQLiteSchema(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, sqliteSchema); err != nil {
		return fmt.Errorf("create ledger tables: %w", err)
	}
	var owner int
	if err := tx.QueryRowContext(ctx,
		`select count(*) from pragma_table_info('pinlist_ledger_lists') where name = 'owner'`).Scan(&owner); err != nil {
		return fmt.Errorf("look for the lists' owner column: %w", err)
	}
	if owner == 0 { // made by schema version 2 or older
		if _, err := tx.ExecContext(ctx, `alter table pinlist_ledger_lists add column owner text`); err != nil {
			return fmt.Errorf("add the lists' owner column: %w", err)
		}
	}
	var version int
	err := tx.QueryRowContext(ctx, `select version from pinlist_ledger_schema where id = 1`).Scan(&version)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `insert into pinlist_ledger_schema (id, version) values (1, ?)`, sqliteSchemaVersion); err != nil {
			return fmt.Errorf("record ledger schema version: %w", err)
		}
	case err != nil:
		return fmt.Errorf("read ledger schema version: %w", err)
	case version > sqliteSchemaVersion:
		return fmt.Errorf("ledger schema version %d is newer than this program's %d", version, sqliteSchemaVersion)
	case version < sqliteSchemaVersion:
		// The migrations (here and in createSQLitePromisesSchema) run in
		// the same transaction; an older pinlist then refuses the database
		// rather than keep guards in a table this one no longer reads, or
		// add rows as unknown to a list this one records as its own.
		if _, err := tx.ExecContext(ctx, `update pinlist_ledger_schema set version = ? where id = 1`, sqliteSchemaVersion); err != nil {
			return fmt.Errorf("record ledger schema version: %w", err)
		}
	}
	return nil
}

// inTx runs fn in a transaction and commits it.
func (s *SQLite) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Apply records changes in one transaction (see Store.Apply).
func (s *SQLite) Apply(ctx context.Context, changes []audience.Change) (Result, error) {
	var res Result
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		res, err = s.ApplyTx(ctx, tx, changes)
		return err
	})
	if err != nil {
		return Result{}, fmt.Errorf("apply %d changes to the ledger: %w", len(changes), err)
	}
	return res, nil
}

// ApplyTx is Apply inside the caller's transaction (which must be on the
// store's database), so that taking changes off the local queue and
// recording them commit together. The caller commits or rolls back; on an
// error it must roll back.
func (s *SQLite) ApplyTx(ctx context.Context, tx *sql.Tx, changes []audience.Change) (Result, error) {
	prepared, stale, err := prepare(changes)
	if err != nil {
		return Result{}, fmt.Errorf("check changes: %w", err)
	}
	res := Result{Stale: stale}
	if len(prepared) == 0 {
		return res, nil
	}
	rows, err := newRowTx(ctx, tx, s.now().Unix())
	if err != nil {
		return Result{}, err
	}
	defer rows.close()

	ids := make(map[string]sqliteList)
	retired := make(map[string]bool)
	for _, c := range prepared {
		key := c.list.Key()
		l, ok := ids[key]
		if !ok && retired[key] {
			res.Stale++ // a retired list takes no changes
			continue
		}
		if !ok {
			if retired[key], err = retiredTx(ctx, tx, key); err != nil {
				return Result{}, err
			}
			if retired[key] {
				res.Stale++
				continue
			}
			if l, err = ensureList(ctx, tx, c.list); err != nil {
				return Result{}, err
			}
			ids[key] = l
		}
		d, err := rows.decide(ctx, l, c.hash, c.op, c.p, true)
		if err != nil {
			return Result{}, err
		}
		res.count(d.Outcome)
	}
	if err := rows.countMembers(ctx); err != nil {
		return Result{}, err
	}
	return res, nil
}

// rowTx reads, decides and writes ledger rows in one transaction (Apply's
// and Erase's), and keeps the lists' member count changes until
// countMembers writes them.
type rowTx struct {
	tx          *sql.Tx
	read, write *sql.Stmt
	// guard reads an identifier's erasure guard; prepared on the first
	// missing row, so rows that exist cost no more than before.
	guard *sql.Stmt
	now   int64           // Unix seconds: a guard counts while now < until
	delta map[int64]int64 // list id → change of its member count
}

func newRowTx(ctx context.Context, tx *sql.Tx, now int64) (*rowTx, error) {
	read, err := tx.PrepareContext(ctx,
		`select want, precedence, sent from pinlist_ledger_rows where list = ? and hash = ?`)
	if err != nil {
		return nil, fmt.Errorf("prepare row read: %w", err)
	}
	write, err := tx.PrepareContext(ctx, `
insert into pinlist_ledger_rows (list, hash, want, precedence, sent, pending) values (?, ?, ?, ?, ?, ?)
on conflict (list, hash) do update set
  want = excluded.want, precedence = excluded.precedence, sent = excluded.sent, pending = excluded.pending`)
	if err != nil {
		read.Close()
		return nil, fmt.Errorf("prepare row write: %w", err)
	}
	return &rowTx{tx: tx, read: read, write: write, now: now, delta: map[int64]int64{}}, nil
}

func (r *rowTx) close() {
	r.read.Close()
	r.write.Close()
	if r.guard != nil {
		r.guard.Close()
	}
}

// decide runs the rules for op at precedence p on the row of hash in l and
// writes the row unless the change is stale. When the row does not exist
// and guarded is set (Apply; not an erasure's own REMOVE), the identifier's
// live erasure guard stands in for it (see guardedRow); else it is decided
// as absentRow.
func (r *rowTx) decide(ctx context.Context, l sqliteList, hash string, op audience.Op, p string, guarded bool) (Decision, error) {
	id, list := l.id, l.list
	cur := absentRow(list, hash, l.owned)
	var want, sent int64
	err := r.read.QueryRowContext(ctx, id, hash).Scan(&want, &cur.Precedence, &sent)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if guarded {
			if cur, err = r.guardedRow(ctx, cur); err != nil {
				return Decision{}, err
			}
		}
	case err != nil:
		return Decision{}, fmt.Errorf("read ledger row of list %s: %w", list.Key(), err)
	default:
		cur.Want, cur.Sent = State(want), State(sent)
	}
	d := decide(cur, op, p)
	if d.Outcome == Stale {
		return d, nil
	}
	if _, err := r.write.ExecContext(ctx, id, hash, int64(d.Row.Want), d.Row.Precedence,
		int64(d.Row.Sent), pendingColumn(d.Row)); err != nil {
		return Decision{}, fmt.Errorf("write ledger row of list %s: %w", list.Key(), err)
	}
	r.delta[id] += d.Members
	return d, nil
}

// guardedRow is the row a missing row is decided as: the virtual row of the
// identifier's erasure guard (guardRow) while one is live, else absent, the
// missing row's absentRow.
func (r *rowTx) guardedRow(ctx context.Context, absent Row) (Row, error) {
	list, hash := absent.List, absent.Hash
	if r.guard == nil {
		stmt, err := r.tx.PrepareContext(ctx,
			`select precedence from pinlist_ledger_guards where type = ? and hash = ? and until > ?`)
		if err != nil {
			return Row{}, fmt.Errorf("prepare erasure guard read: %w", err)
		}
		r.guard = stmt
	}
	var p string
	err := r.guard.QueryRowContext(ctx, string(list.Type), hash, r.now).Scan(&p)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return absent, nil
	case err != nil:
		return Row{}, fmt.Errorf("read erasure guard for list %s: %w", list.Key(), err)
	}
	return guardRow(list, hash, p), nil
}

// countMembers writes the member count changes of the rows decided.
func (r *rowTx) countMembers(ctx context.Context) error {
	for id, n := range r.delta {
		if n == 0 {
			continue
		}
		if _, err := r.tx.ExecContext(ctx,
			`update pinlist_ledger_lists set members = members + ? where id = ?`, n, id); err != nil {
			return fmt.Errorf("update member count: %w", err)
		}
	}
	return nil
}

// pendingColumn is the rows.pending value of r.
func pendingColumn(r Row) any {
	if !r.Pending() {
		return nil
	}
	return string(r.PendingOp())
}

// sqliteList is a list's row in the lists table: its id, and whether
// pinlist created the list on Pinterest (an owner is recorded, see Owning).
type sqliteList struct {
	id    int64
	list  List
	owned bool
}

// ensureList returns list's row, creating it when absent.
func ensureList(ctx context.Context, tx *sql.Tx, list List) (sqliteList, error) {
	key := list.Key()
	l := sqliteList{list: list}
	err := tx.QueryRowContext(ctx, `select id, owner is not null from pinlist_ledger_lists where key = ?`, key).
		Scan(&l.id, &l.owned)
	if err == nil {
		return l, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return l, fmt.Errorf("look up list %s: %w", key, err)
	}
	err = tx.QueryRowContext(ctx,
		`insert into pinlist_ledger_lists (key, ns, audience, type) values (?, ?, ?, ?) returning id`,
		key, list.Audience.Namespace, list.Audience.ID, string(list.Type)).Scan(&l.id)
	if err != nil {
		return l, fmt.Errorf("add list %s: %w", key, err)
	}
	return l, nil
}

// PendingLists lists the lists with pending rows, ordered by key.
func (s *SQLite) PendingLists(ctx context.Context) ([]List, error) {
	return s.queryLists(ctx, "list lists with pending rows", `
select ns, audience, type from pinlist_ledger_lists l
where exists (select 1 from pinlist_ledger_rows r where r.list = l.id and r.pending is not null)
order by key`)
}

// queryLists runs query, whose rows are (ns, audience, type), and returns
// them as lists; what names the query in errors.
func (s *SQLite) queryLists(ctx context.Context, what, query string, args ...any) ([]List, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []List
	for rows.Next() {
		var l List
		var typ string
		if err := rows.Scan(&l.Audience.Namespace, &l.Audience.ID, &typ); err != nil {
			return nil, fmt.Errorf("%s: read a row: %w", what, err)
		}
		l.Type = audience.ListType(typ)
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// Pending returns up to limit pending rows of list for op, lowest
// precedence first.
func (s *SQLite) Pending(ctx context.Context, list List, op audience.Op, limit int) ([]Pending, error) {
	if err := checkOp(op); err != nil {
		return nil, fmt.Errorf("read pending rows of %s: %w", list.Key(), err)
	}
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, `
select r.hash, r.precedence from pinlist_ledger_rows r
where r.list = (select id from pinlist_ledger_lists where key = ?) and r.pending = ?
order by r.precedence limit ?`, list.Key(), string(op), limit)
	if err != nil {
		return nil, fmt.Errorf("read pending %s rows of %s: %w", op, list.Key(), err)
	}
	defer rows.Close()
	var out []Pending
	for rows.Next() {
		p := Pending{Op: op}
		if err := rows.Scan(&p.Hash, &p.Precedence); err != nil {
			return nil, fmt.Errorf("read pending %s row of %s: %w", op, list.Key(), err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read pending %s rows of %s: %w", op, list.Key(), err)
	}
	return out, nil
}

// MarkSent records in one transaction that Pinterest has rows in op's
// state (see Store); each row is pending after it when its Want differs.
func (s *SQLite) MarkSent(ctx context.Context, list List, op audience.Op, rows []Pending) error {
	if err := checkOp(op); err != nil {
		return fmt.Errorf("mark rows of %s sent: %w", list.Key(), err)
	}
	if len(rows) == 0 {
		return nil
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `
update pinlist_ledger_rows set sent = ?3,
  pending = case when want = ?3 then null when want = 1 then 'ADD' else 'REMOVE' end
where list = (select id from pinlist_ledger_lists where key = ?1) and hash = ?2`)
		if err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		defer stmt.Close()
		sent := int64(stateFor(op))
		for _, r := range rows {
			if _, err := stmt.ExecContext(ctx, list.Key(), r.Hash, sent); err != nil {
				return fmt.Errorf("update row: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mark %d %s rows of %s sent: %w", len(rows), op, list.Key(), err)
	}
	return nil
}

// Sending marks rows Unknown where their Sent is the state op takes them
// out of, in one transaction (see Store).
func (s *SQLite) Sending(ctx context.Context, list List, op audience.Op, rows []Pending) error {
	if err := checkOp(op); err != nil {
		return fmt.Errorf("mark rows of %s as being sent: %w", list.Key(), err)
	}
	if len(rows) == 0 {
		return nil
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `
update pinlist_ledger_rows set sent = 0, pending = case when want = 1 then 'ADD' else 'REMOVE' end
where list = (select id from pinlist_ledger_lists where key = ?1) and hash = ?2 and sent = ?3`)
		if err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		defer stmt.Close()
		other := int64(otherState(op))
		for _, r := range rows {
			if _, err := stmt.ExecContext(ctx, list.Key(), r.Hash, other); err != nil {
				return fmt.Errorf("update row: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mark %d rows of %s as being sent as %s: %w", len(rows), list.Key(), op, err)
	}
	return nil
}

// ResetSent forgets what Pinterest was sent: every row's Sent becomes
// assume, so every row whose Want differs is pending again, and no list is
// owned (Owning) any more. The local runner calls it with Out when the
// built-in simulator starts empty, so the members are added again. It is
// not part of Store: in AWS the lists live on at Pinterest.
func (s *SQLite) ResetSent(ctx context.Context, assume State) error {
	if assume > Out {
		return fmt.Errorf("reset ledger sent state: unknown state %d", assume)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `update pinlist_ledger_lists set owner = null`); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `
update pinlist_ledger_rows set sent = ?1,
  pending = case when want = ?1 then null when want = 1 then 'ADD' else 'REMOVE' end`, int64(assume))
		return err
	})
	if err != nil {
		return fmt.Errorf("reset ledger sent state to %d: %w", assume, err)
	}
	return nil
}

// Members counts the rows whose Want is In, per list.
func (s *SQLite) Members(ctx context.Context) (map[List]int64, error) {
	rows, err := s.db.QueryContext(ctx, `select ns, audience, type, members from pinlist_ledger_lists`)
	if err != nil {
		return nil, fmt.Errorf("read member counts: %w", err)
	}
	defer rows.Close()
	out := make(map[List]int64)
	for rows.Next() {
		var l List
		var typ string
		var n int64
		if err := rows.Scan(&l.Audience.Namespace, &l.Audience.ID, &typ, &n); err != nil {
			return nil, fmt.Errorf("read member count: %w", err)
		}
		l.Type = audience.ListType(typ)
		out[l] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read member counts: %w", err)
	}
	return out, nil
}

// Get reads one row.
func (s *SQLite) Get(ctx context.Context, list List, hash string) (Row, bool, error) {
	r := Row{List: list, Hash: hash}
	var want, sent int64
	err := s.db.QueryRowContext(ctx, `
select want, precedence, sent from pinlist_ledger_rows
where list = (select id from pinlist_ledger_lists where key = ?) and hash = ?`, list.Key(), hash).
		Scan(&want, &r.Precedence, &sent)
	if errors.Is(err, sql.ErrNoRows) {
		return Row{List: list, Hash: hash}, false, nil
	}
	if err != nil {
		return Row{}, false, fmt.Errorf("read ledger row of %s: %w", list.Key(), err)
	}
	r.Want, r.Sent = State(want), State(sent)
	return r, true, nil
}
