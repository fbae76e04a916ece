package adapters

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/streamwatch/streamwatch/pkg/silences"
	"github.com/streamwatch/streamwatch/services/query/internal/app/command"
	"github.com/streamwatch/streamwatch/services/query/internal/app/query"
)

var (
	_ command.AdminStore = (*ClickHouseAdminRepository)(nil)
	_ query.AdminReader  = (*ClickHouseAdminRepository)(nil)
)

// ClickHouseAdminRepository keeps the rules and silences projections
// (<database>.rules, <database>.silences, migration 0006). Safe for
// concurrent use.
type ClickHouseAdminRepository struct {
	conn            driver.Conn
	rules, silences string // database.table
}

// NewClickHouseAdminRepository returns a repository on conn for database
// (a validated identifier).
func NewClickHouseAdminRepository(conn driver.Conn, database string) *ClickHouseAdminRepository {
	return NewClickHouseAdminRepositoryOn(conn, database, "rules", "silences")
}

// NewClickHouseAdminRepositoryOn is NewClickHouseAdminRepository on the
// given tables of database (validated identifiers).
func NewClickHouseAdminRepositoryOn(conn driver.Conn, database, rulesTable, silencesTable string) *ClickHouseAdminRepository {
	return &ClickHouseAdminRepository{conn: conn, rules: database + "." + rulesTable, silences: database + "." + silencesTable}
}

// InsertRuleChange stores one rules topic record (record is its JSON).
// The highest atMs per id wins.
func (r *ClickHouseAdminRepository) InsertRuleChange(ctx context.Context, id string, deleted bool, atMs int64, record []byte) error {
	b, err := r.conn.PrepareBatch(ctx, "INSERT INTO "+r.rules+" (id, deleted, at_ms, record, version)")
	if err != nil {
		return fmt.Errorf("prepare rules insert: %w", err)
	}
	var del uint8
	if deleted {
		del = 1
	}
	if err := b.Append(id, del, atMs, string(record), uint64(max(atMs, 0))); err != nil {
		_ = b.Abort()
		return fmt.Errorf("append rule %s: %w", id, err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert rule %s: %w", id, err)
	}
	return nil
}

// InsertSilence stores one silences topic record; the highest UpdatedAt
// per id wins.
func (r *ClickHouseAdminRepository) InsertSilence(ctx context.Context, s silences.Silence, record []byte) error {
	b, err := r.conn.PrepareBatch(ctx, "INSERT INTO "+r.silences+" (id, op, starts_at, ends_at, updated_at, created_by, record, version)")
	if err != nil {
		return fmt.Errorf("prepare silences insert: %w", err)
	}
	op := s.Op
	if op == "" {
		op = silences.OpUpsert
	}
	if err := b.Append(s.ID, op, s.StartsAt, s.EndsAt, s.UpdatedAt, s.CreatedBy, string(record), uint64(max(s.UpdatedAt, 0))); err != nil {
		_ = b.Abort()
		return fmt.Errorf("append silence %s: %w", s.ID, err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert silence %s: %w", s.ID, err)
	}
	return nil
}

// Rules returns the latest record of every rule not deleted (or of id
// only, when id is not ""), by id.
func (r *ClickHouseAdminRepository) Rules(ctx context.Context, id string) ([]json.RawMessage, error) {
	sql := "SELECT record FROM " + r.rules + " FINAL WHERE deleted = 0"
	var args []any
	if id != "" {
		sql += " AND id = ?"
		args = append(args, id)
	}
	return r.records(ctx, sql+" ORDER BY id", args...)
}

// Silences returns the latest record of every silence (or of id only),
// by id. Expired ones are included (op "expire"); callers filter.
func (r *ClickHouseAdminRepository) Silences(ctx context.Context, id string) ([]json.RawMessage, error) {
	sql := "SELECT record FROM " + r.silences + " FINAL"
	var args []any
	if id != "" {
		sql += " WHERE id = ?"
		args = append(args, id)
	}
	return r.records(ctx, sql+" ORDER BY id", args...)
}

func (r *ClickHouseAdminRepository) records(ctx context.Context, sql string, args ...any) ([]json.RawMessage, error) {
	rows, err := r.conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("query admin records: %w", err)
	}
	defer rows.Close()
	var out []json.RawMessage
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("scan admin record: %w", err)
		}
		out = append(out, json.RawMessage(s))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read admin records: %w", err)
	}
	return out, nil
}
