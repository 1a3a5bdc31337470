package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

var _ Owning = (*SQLite)(nil)

// Own records id as list's owner (see Owning). The ledger knows the list:
// its rows were sent.
func (s *SQLite) Own(ctx context.Context, list List, id string) error {
	if id == "" {
		return fmt.Errorf("own list %s: the Pinterest list ID is empty", list.Key())
	}
	r, err := s.db.ExecContext(ctx, `update pinlist_ledger_lists set owner = ? where key = ?`, id, list.Key())
	if err != nil {
		return fmt.Errorf("own list %s: %w", list.Key(), err)
	}
	if n, err := r.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("own list %s: the ledger has no such list (%d rows, %v)", list.Key(), n, err)
	}
	return nil
}

// Owner returns list's owner, "" when none is recorded (see Owning).
func (s *SQLite) Owner(ctx context.Context, list List) (string, error) {
	var owner sql.NullString
	err := s.db.QueryRowContext(ctx, `select owner from pinlist_ledger_lists where key = ?`, list.Key()).Scan(&owner)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("read the owner of list %s: %w", list.Key(), err)
	}
	return owner.String, nil
}

// Disown forgets list's owner and resets its rows to Unknown, in one
// transaction (see Owning).
func (s *SQLite) Disown(ctx context.Context, list List) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `update pinlist_ledger_lists set owner = null where key = ?`, list.Key()); err != nil {
			return fmt.Errorf("forget the owner: %w", err)
		}
		var err error
		n, err = resetListTx(ctx, tx, list, Unknown)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("disown list %s: %w", list.Key(), err)
	}
	return n, nil
}
