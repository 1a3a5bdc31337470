package queue

import (
	"context"
	"database/sql"
	_ "embed"
	"fmt"
)

// goqiteSchema is goqite's own SQLite schema, copied verbatim from
// maragu.dev/goqite@v0.4.0/schema_sqlite.sql (the module neither exports nor
// embeds it). Its create statements have no "if not exists", so it runs only
// on a database that has no goqite table yet. TestGoqiteSchemaMatchesModule
// fails when the module's copy changes under an upgrade.
//
//go:embed schema_sqlite.sql
var goqiteSchema string

// localSchemaVersion is the user_version a database made by this code
// carries; a newer one was written by a newer pinlist and is refused.
const localSchemaVersion = 1

// localSchema is what Local keeps beside goqite's table (see the design in
// Local's documentation):
//   - an index on goqite(queue, timeout), so "is any message of this group
//     invisible" and the Stats counts are answered from the index alone
//     (timeout sits after the body in goqite's rows, so reading it from the
//     table walks every overflow page of a large body);
//   - the groups that have live messages, with the time each may next be
//     received from (a scheduling hint; the truth is the messages' timeouts);
//   - the deduplication ids seen in the last five minutes;
//   - the next send sequence number (goqite's priority is minus it).
const localSchema = `
create index if not exists pinlist_goqite_queue_timeout_idx on goqite (queue, timeout);

create table if not exists pinlist_queue_groups (
  name text primary key,
  ready_at text not null
) strict, without rowid;

create index if not exists pinlist_queue_groups_ready_idx on pinlist_queue_groups (ready_at);

create table if not exists pinlist_queue_dedup (
  id text primary key,
  expires text not null
) strict, without rowid;

create index if not exists pinlist_queue_dedup_expires_idx on pinlist_queue_dedup (expires);

create table if not exists pinlist_queue_seq (
  id integer primary key check (id = 1),
  next integer not null
) strict;

insert into pinlist_queue_seq (id, next) values (1, 1) on conflict (id) do nothing;
`

// createLocalSchema creates goqite's table (when absent) and Local's own
// tables in one transaction, so two processes opening a new file at once
// cannot both create it.
func createLocalSchema(ctx context.Context, tx *sql.Tx) error {
	var version int
	if err := tx.QueryRowContext(ctx, `pragma user_version`).Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > localSchemaVersion {
		return fmt.Errorf("schema version %d is newer than this program's %d", version, localSchemaVersion)
	}
	var tables int
	if err := tx.QueryRowContext(ctx,
		`select count(*) from sqlite_master where type = 'table' and name = 'goqite'`).Scan(&tables); err != nil {
		return fmt.Errorf("look for the goqite table: %w", err)
	}
	if tables == 0 {
		if _, err := tx.ExecContext(ctx, goqiteSchema); err != nil {
			return fmt.Errorf("create goqite schema: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, localSchema); err != nil {
		return fmt.Errorf("create local queue tables: %w", err)
	}
	if version < localSchemaVersion {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`pragma user_version = %d`, localSchemaVersion)); err != nil {
			return fmt.Errorf("set schema version: %w", err)
		}
	}
	return nil
}
