package masking

import (
	"context"
	"database/sql"
	"errors"
)

// SQLSchema answers a Masker's schema questions (table columns for SELECT *,
// view definitions for lineage through views) from information_schema over
// a database/sql pool; the daemon gives it a small pool of its own backend
// connections.
type SQLSchema struct{ DB *sql.DB }

// Columns lists a table's columns in ordinal order.
func (s SQLSchema) Columns(ctx context.Context, db, table string) ([]string, error) {
	rs, err := s.DB.QueryContext(ctx, "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION", db, table)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var c string
		if err := rs.Scan(&c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rs.Err()
}

// View returns a view's definition; ok is false when db.view is not a view.
func (s SQLSchema) View(ctx context.Context, db, view string) (string, bool, error) {
	var def string
	err := s.DB.QueryRowContext(ctx, "SELECT VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", db, view).Scan(&def)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	return def, err == nil, err
}
