package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/pinlist/pinlist/internal/audience"
)

// namesSchema is the name store's table, in the ledger's database: one row
// per audience, keyed by audience.Ref.Key().
const namesSchema = `CREATE TABLE IF NOT EXISTS pinlist_audience_names (
	audience    TEXT PRIMARY KEY,
	name        TEXT NOT NULL,
	description TEXT NOT NULL
) STRICT, WITHOUT ROWID`

// SQLiteNames is Names on SQLite (database/sql with modernc.org/sqlite), in
// the same database as the SQLite ledger store, so that recording an
// audience's name can share a transaction with the ledger write and the
// local queue's delete (SetNameTx).
type SQLiteNames struct {
	db *sql.DB
}

var _ Names = (*SQLiteNames)(nil)

// NewSQLiteNames returns the name store in opts.DB (the ledger's database,
// the same options as NewSQLite's), creating its table when it is absent.
// The caller owns and closes the database.
func NewSQLiteNames(ctx context.Context, opts SQLiteOptions) (*SQLiteNames, error) {
	if opts.DB == nil {
		return nil, errors.New("new SQLite name store: DB is required")
	}
	if _, err := opts.DB.ExecContext(ctx, namesSchema); err != nil {
		return nil, fmt.Errorf("new SQLite name store: create table pinlist_audience_names: %w", err)
	}
	return &SQLiteNames{db: opts.DB}, nil
}

// execer is what SetName needs of a *sql.DB or a *sql.Tx.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// SetName records a's name, replacing any earlier one.
func (s *SQLiteNames) SetName(ctx context.Context, a audience.Ref, n AudienceName) error {
	return setName(ctx, s.db, a, n)
}

// SetNameTx is SetName inside the caller's transaction tx (on the same
// database), so that it commits or rolls back with the caller's other
// writes.
func (s *SQLiteNames) SetNameTx(ctx context.Context, tx *sql.Tx, a audience.Ref, n AudienceName) error {
	if tx == nil {
		return errors.New("record audience name: nil transaction")
	}
	return setName(ctx, tx, a, n)
}

func setName(ctx context.Context, db execer, a audience.Ref, n AudienceName) error {
	if err := a.Validate(); err != nil {
		return fmt.Errorf("record audience name: %w", err)
	}
	_, err := db.ExecContext(ctx, `INSERT INTO pinlist_audience_names (audience, name, description) VALUES (?, ?, ?)
		ON CONFLICT (audience) DO UPDATE SET name = excluded.name, description = excluded.description`,
		a.Key(), n.Name, n.Description)
	if err != nil {
		return fmt.Errorf("record the name of audience %s: %w", a.Key(), err)
	}
	return nil
}

// Name returns a's name: the zero AudienceName when none was recorded.
func (s *SQLiteNames) Name(ctx context.Context, a audience.Ref) (AudienceName, error) {
	var n AudienceName
	err := s.db.QueryRowContext(ctx, `SELECT name, description FROM pinlist_audience_names WHERE audience = ?`, a.Key()).
		Scan(&n.Name, &n.Description)
	if errors.Is(err, sql.ErrNoRows) {
		return AudienceName{}, nil
	}
	if err != nil {
		return AudienceName{}, fmt.Errorf("read the name of audience %s: %w", a.Key(), err)
	}
	return n, nil
}
