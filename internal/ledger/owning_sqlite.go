package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

var _ Owning = (*SQLite)(nil)

// Sending marks rows Unknown where they are Out, in one transaction (see
// Owning).
func (s *SQLite) Sending(ctx context.Context, list List, rows []Pending) error {
	if len(rows) == 0 {
		return nil
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `
update pinlist_ledger_rows set sent = 0
where list = (select id from pinlist_ledger_lists where key = ?1) and hash = ?2 and sent = 2`)
		if err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		defer stmt.Close()
		for _, r := range rows {
			if _, err := stmt.ExecContext(ctx, list.Key(), r.Hash); err != nil {
				return fmt.Errorf("update row: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mark %d rows of %s as being sent: %w", len(rows), list.Key(), err)
	}
	return nil
}

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
