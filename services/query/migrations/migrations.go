// Package migrations holds the query service's ClickHouse schema as
// versioned, idempotent SQL migrations and applies them.
//
// The package is outside internal/ on purpose: the end-to-end tests (another
// module) call Apply to prepare a ClickHouse before they start the stack.
//
// # Why not golang-migrate
//
// github.com/golang-migrate/migrate/v4 (v4.20.1) and its clickhouse driver
// were tried against ClickHouse 18.16. The driver itself works there, but
// only through database/sql with the unmaintained clickhouse-go v1 driver
// (a second ClickHouse client beside the clickhouse-go/v2 we use
// everywhere), it needs the database to exist before it connects (it keeps
// its table in the connection's database, while our first step is CREATE
// DATABASE), and, decisively, requiring migrate/v4 next to clickhouse-go/v2
// v2.50.0 makes `go mod tidy` fail: the merged module graph selects a
// github.com/Azure/go-ansiterm pseudo-version that the module proxy does not
// serve. What we need is small: a table of applied versions and files run in
// order, once each. So this package does that with clickhouse-go/v2.
//
// # Files
//
// sql/NNNN_name.up.sql, NNNN a positive decimal version, applied in version
// order. A file may hold several statements separated by ";" at the end of a
// line; lines starting with "--" are comments. {database} is replaced by the
// (validated) database name. ClickHouse DDL is not transactional, so every
// statement must be idempotent (IF NOT EXISTS): a crash after a statement
// and before the version is recorded re-runs the file.
//
// # Concurrency
//
// There is no lock: two processes migrating at once both run the idempotent
// statements and both record the version, which is harmless (versions are
// read with DISTINCT).
package migrations

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/streamwatch/streamwatch/pkg/config"
)

//go:embed sql/*.up.sql
var embedded embed.FS

// Table is the name of the table, in the migrated database, that records
// applied versions: (version UInt32, name String, applied_at DateTime).
const Table = "schema_migrations"

// databasePlaceholder is replaced by the database name in migration files.
const databasePlaceholder = "{database}"

var (
	fileName       = regexp.MustCompile(`^([0-9]+)_([a-z0-9_]+)\.up\.sql$`)
	identifierRule = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// ErrInvalidDatabase is returned when the database name is not a plain
// identifier ([A-Za-z_][A-Za-z0-9_]*); it is pasted into DDL, so nothing
// else is accepted.
var ErrInvalidDatabase = errors.New("invalid database name")

// Migration is one versioned schema change.
type Migration struct {
	// Version orders migrations; it is recorded once applied.
	Version uint32
	// Name is the file name without version and suffix.
	Name string
	// Statements are the SQL statements of the file, {database} unreplaced.
	Statements []string
}

// All returns the embedded migrations in version order. It fails only if
// the embedded files are malformed (a bug caught by the tests).
func All() ([]Migration, error) { return load(embedded, "sql") }

// Apply connects to the ClickHouse described by cfg (native protocol),
// applies the pending migrations to cfg.Database (see Up) and closes the
// connection. It is the entry point for tools and end-to-end tests.
func Apply(ctx context.Context, cfg config.ClickHouse, logger *slog.Logger) error {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{cfg.Addr},
		Auth:        clickhouse.Auth{Username: cfg.User, Password: cfg.Password},
		DialTimeout: 5 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("open clickhouse %s: %w", cfg.Addr, err)
	}
	defer conn.Close()
	return Up(ctx, conn, cfg.Database, logger)
}

// Up creates database if missing, creates its schema_migrations table if
// missing, and applies every embedded migration whose version is not
// recorded there, in version order, recording each after it succeeded. It
// returns nil when nothing was pending, so calling it twice is harmless. The
// error names the migration that failed; later ones are not attempted.
func Up(ctx context.Context, conn driver.Conn, database string, logger *slog.Logger) error {
	all, err := All()
	if err != nil {
		return err
	}
	return up(ctx, conn, database, all, logger)
}

func up(ctx context.Context, conn driver.Conn, database string, all []Migration, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if !identifierRule.MatchString(database) {
		return fmt.Errorf("%w: %q", ErrInvalidDatabase, database)
	}
	bootstrap := []string{
		"CREATE DATABASE IF NOT EXISTS " + database,
		"CREATE TABLE IF NOT EXISTS " + database + "." + Table +
			" (version UInt32, name String, applied_at DateTime) ENGINE = MergeTree ORDER BY version",
	}
	for _, stmt := range bootstrap {
		if err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("bootstrap migrations in %s: %w", database, err)
		}
	}
	applied, err := appliedVersions(ctx, conn, database)
	if err != nil {
		return err
	}
	for _, m := range all {
		if applied[m.Version] {
			continue
		}
		for i, stmt := range m.Statements {
			stmt = strings.ReplaceAll(stmt, databasePlaceholder, database)
			if err := conn.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("migration %04d_%s statement %d: %w", m.Version, m.Name, i+1, err)
			}
		}
		if err := record(ctx, conn, database, m); err != nil {
			return err
		}
		logger.Info("clickhouse migration applied", "database", database, "version", m.Version, "name", m.Name)
	}
	return nil
}

func appliedVersions(ctx context.Context, conn driver.Conn, database string) (map[uint32]bool, error) {
	rows, err := conn.Query(ctx, "SELECT DISTINCT version FROM "+database+"."+Table)
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	defer rows.Close()
	applied := map[uint32]bool{}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("read applied migrations: %w", err)
		}
		applied[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	return applied, nil
}

func record(ctx context.Context, conn driver.Conn, database string, m Migration) error {
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+database+"."+Table+" (version, name, applied_at)")
	if err != nil {
		return fmt.Errorf("record migration %04d: %w", m.Version, err)
	}
	if err := batch.Append(m.Version, m.Name, time.Now().UTC()); err != nil {
		_ = batch.Abort()
		return fmt.Errorf("record migration %04d: %w", m.Version, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("record migration %04d: %w", m.Version, err)
	}
	return nil
}

// load reads NNNN_name.up.sql files from dir in fsys, sorted by version. It
// rejects other file names, version 0, duplicate versions and empty files.
func load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var all []Migration
	seen := map[uint32]string{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %q: name is not NNNN_name.up.sql", e.Name())
		}
		v, err := strconv.ParseUint(m[1], 10, 32)
		if err != nil || v == 0 {
			return nil, fmt.Errorf("migration file %q: version must be in 1..%d", e.Name(), uint32(1<<32-1))
		}
		if other, dup := seen[uint32(v)]; dup {
			return nil, fmt.Errorf("migration files %q and %q have the same version %d", other, e.Name(), v)
		}
		seen[uint32(v)] = e.Name()
		body, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %q: %w", e.Name(), err)
		}
		stmts := split(string(body))
		if len(stmts) == 0 {
			return nil, fmt.Errorf("migration file %q has no statement", e.Name())
		}
		all = append(all, Migration{Version: uint32(v), Name: m[2], Statements: stmts})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Version < all[j].Version })
	return all, nil
}

// split drops "--" comment lines and splits at ";" that end a line.
func split(sql string) []string {
	var stmts []string
	var cur strings.Builder
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			stmts = append(stmts, s)
		}
		cur.Reset()
	}
	for line := range strings.Lines(sql) {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") {
			continue
		}
		if s, ok := strings.CutSuffix(trimmed, ";"); ok {
			cur.WriteString(s)
			flush()
			continue
		}
		cur.WriteString(line)
	}
	flush()
	return stmts
}

// ErrUnknownTable is returned by CreateTableAs for a table no migration
// creates.
var ErrUnknownTable = errors.New("no migration creates this table")

// CreateTableAs returns the DDL that creates database.table as the
// migrations define it, but named database.newName (for a replay that
// rebuilds a projection into a fresh table). All three must be plain
// identifiers; the result is idempotent (IF NOT EXISTS).
func CreateTableAs(database, table, newName string) (string, error) {
	for _, id := range []string{database, table, newName} {
		if !identifierRule.MatchString(id) {
			return "", fmt.Errorf("%w: %q", ErrInvalidDatabase, id)
		}
	}
	all, err := All()
	if err != nil {
		return "", err
	}
	prefix := "CREATE TABLE IF NOT EXISTS " + databasePlaceholder + "." + table
	for _, m := range all {
		for _, stmt := range m.Statements {
			rest, ok := strings.CutPrefix(stmt, prefix)
			if !ok || (rest != "" && rest[0] != '\n' && rest[0] != ' ' && rest[0] != '(') {
				continue
			}
			return "CREATE TABLE IF NOT EXISTS " + database + "." + newName + rest, nil
		}
	}
	return "", fmt.Errorf("%w: %s", ErrUnknownTable, table)
}
