package adapters

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/streamwatch/streamwatch/services/query/migrations"
)

// ClickHouseTables creates, swaps and drops projection tables of one
// database for the Kappa replay. Names are validated identifiers.
type ClickHouseTables struct {
	conn     driver.Conn
	database string
}

// NewClickHouseTables returns the admin of database's tables.
func NewClickHouseTables(conn driver.Conn, database string) *ClickHouseTables {
	return &ClickHouseTables{conn: conn, database: database}
}

// CreateLike creates table newName with the schema the migrations give
// table (the live table may be missing or older). It fails if newName
// exists with rows: a fresh table must start empty.
func (t *ClickHouseTables) CreateLike(ctx context.Context, table, newName string) error {
	ddl, err := migrations.CreateTableAs(t.database, table, newName)
	if err != nil {
		return err
	}
	if err := t.conn.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("create %s.%s: %w", t.database, newName, err)
	}
	n, err := t.Count(ctx, newName)
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("fresh table %s.%s already holds %d rows", t.database, newName, n)
	}
	return nil
}

// Exists reports whether table exists.
func (t *ClickHouseTables) Exists(ctx context.Context, table string) (bool, error) {
	var n uint64
	if err := t.conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?", t.database, table).Scan(&n); err != nil {
		return false, fmt.Errorf("look up %s.%s: %w", t.database, table, err)
	}
	return n > 0, nil
}

// Count returns the rows of table after deduplication (FINAL).
func (t *ClickHouseTables) Count(ctx context.Context, table string) (uint64, error) {
	if err := checkIdentifiers(table); err != nil {
		return 0, err
	}
	var n uint64
	if err := t.conn.QueryRow(ctx, "SELECT count() FROM "+t.database+"."+table+" FINAL").Scan(&n); err != nil {
		return 0, fmt.Errorf("count %s.%s: %w", t.database, table, err)
	}
	return n, nil
}

// Swap makes fresh the live table in one RENAME TABLE statement (atomic
// for readers; ClickHouse 18.16 has no EXCHANGE TABLES): live becomes
// retired and fresh becomes live. When live does not exist, fresh is
// just renamed to live. It reports whether a table was retired.
func (t *ClickHouseTables) Swap(ctx context.Context, live, fresh, retired string) (bool, error) {
	if err := checkIdentifiers(live, fresh, retired); err != nil {
		return false, err
	}
	exists, err := t.Exists(ctx, live)
	if err != nil {
		return false, err
	}
	db := t.database + "."
	stmt := "RENAME TABLE " + db + fresh + " TO " + db + live
	if exists {
		stmt = "RENAME TABLE " + db + live + " TO " + db + retired + ", " + db + fresh + " TO " + db + live
	}
	if err := t.conn.Exec(ctx, stmt); err != nil {
		return false, fmt.Errorf("swap %s in: %w", fresh, err)
	}
	return exists, nil
}

// Drop drops table if it exists.
func (t *ClickHouseTables) Drop(ctx context.Context, table string) error {
	if err := checkIdentifiers(table); err != nil {
		return err
	}
	if err := t.conn.Exec(ctx, "DROP TABLE IF EXISTS "+t.database+"."+table); err != nil {
		return fmt.Errorf("drop %s.%s: %w", t.database, table, err)
	}
	return nil
}

func checkIdentifiers(names ...string) error {
	for _, n := range names {
		if !identifierRe.MatchString(n) {
			return fmt.Errorf("table name %q is not an identifier", n)
		}
	}
	return nil
}

// CopyRows inserts every row of from into to, server-side, for the columns
// both tables have (so a replay into a changed schema keeps what still
// fits).
func (t *ClickHouseTables) CopyRows(ctx context.Context, from, to string) error {
	if err := checkIdentifiers(from, to); err != nil {
		return err
	}
	rows, err := t.conn.Query(ctx, "SELECT name FROM system.columns WHERE database = ? AND table = ? AND name IN "+
		"(SELECT name FROM system.columns WHERE database = ? AND table = ?)", t.database, to, t.database, from)
	if err != nil {
		return fmt.Errorf("columns of %s and %s: %w", from, to, err)
	}
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return fmt.Errorf("scan columns: %w", err)
		}
		if err := checkIdentifiers(c); err != nil {
			rows.Close()
			return err
		}
		cols = append(cols, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read columns: %w", err)
	}
	if len(cols) == 0 {
		return fmt.Errorf("%s and %s share no column", from, to)
	}
	list := strings.Join(cols, ", ")
	db := t.database + "."
	if err := t.conn.Exec(ctx, "INSERT INTO "+db+to+" ("+list+") SELECT "+list+" FROM "+db+from); err != nil {
		return fmt.Errorf("copy %s into %s: %w", from, to, err)
	}
	return nil
}
