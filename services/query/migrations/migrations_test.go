package migrations

import (
	"context"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/config"
	"github.com/streamwatch/streamwatch/services/query/internal/adapters/chtest"
)

// wantMigrations are the embedded migrations' names in version order.
var wantMigrations = []string{"events", "metric_windows", "alerts", "notifications", "batch", "admin"}

func TestAllEmbeddedMigrationsParse(t *testing.T) {
	t.Parallel()
	all, err := All()
	require.NoError(t, err)
	names := make([]string, len(all))
	for i, m := range all {
		require.Equal(t, uint32(i+1), m.Version, m.Name)
		names[i] = m.Name
	}
	require.Equal(t, wantMigrations, names)
	for _, m := range all {
		require.NotEmpty(t, m.Statements, m.Name)
		for _, stmt := range m.Statements {
			require.Contains(t, stmt, databasePlaceholder)
			require.NotContains(t, stmt, "--")
		}
	}
}

func TestCreateTableAs(t *testing.T) {
	t.Parallel()
	ddl, err := CreateTableAs("db", "metric_windows", "metric_windows_replay_1")
	require.NoError(t, err)
	require.Contains(t, ddl, "CREATE TABLE IF NOT EXISTS db.metric_windows_replay_1\n(")
	require.Contains(t, ddl, "ReplacingMergeTree(revision)")
	_, err = CreateTableAs("db", "metric", "x") // a prefix of a table is not a table
	require.ErrorIs(t, err, ErrUnknownTable)
	_, err = CreateTableAs("db", "events", "x; DROP TABLE y")
	require.Error(t, err)
}

func TestLoadRejectsMalformedFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		files fstest.MapFS
		want  string
	}{
		{"bad name", fstest.MapFS{"d/1-x.up.sql": {Data: []byte("SELECT 1")}}, "not NNNN_name.up.sql"},
		{"down file", fstest.MapFS{"d/0001_x.down.sql": {Data: []byte("SELECT 1")}}, "not NNNN_name.up.sql"},
		{"version zero", fstest.MapFS{"d/0000_x.up.sql": {Data: []byte("SELECT 1")}}, "version must be"},
		{"duplicate", fstest.MapFS{
			"d/0001_a.up.sql": {Data: []byte("SELECT 1")},
			"d/001_b.up.sql":  {Data: []byte("SELECT 2")},
		}, "same version 1"},
		{"empty", fstest.MapFS{"d/0001_a.up.sql": {Data: []byte("-- only a comment\n")}}, "no statement"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(tt.files, "d")
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestLoadSortsAndSplits(t *testing.T) {
	t.Parallel()
	all, err := load(fstest.MapFS{
		"d/0010_b.up.sql": {Data: []byte("-- two statements\nCREATE TABLE x (a UInt8)\n  ENGINE = TinyLog;\nDROP TABLE y;\n")},
		"d/0002_a.up.sql": {Data: []byte("SELECT 1")},
	}, "d")
	require.NoError(t, err)
	require.Len(t, all, 2)
	require.Equal(t, uint32(2), all[0].Version)
	require.Equal(t, []string{"SELECT 1"}, all[0].Statements)
	require.Equal(t, []string{"CREATE TABLE x (a UInt8)\nENGINE = TinyLog", "DROP TABLE y"}, all[1].Statements)
}

func TestUpIsIdempotent(t *testing.T) {
	t.Parallel()
	srv := chtest.StartClickHouse(t)
	ctx := context.Background()
	cfg := config.ClickHouse{Addr: srv.Addr, Database: "sw_test", User: "default"}

	require.NoError(t, Apply(ctx, cfg, nil))
	require.NoError(t, Apply(ctx, cfg, nil), "second run applies nothing and does not fail")

	conn := srv.Conn(t)
	var tables []string
	rows, err := conn.Query(ctx, "SELECT name FROM system.tables WHERE database = ? ORDER BY name", "sw_test")
	require.NoError(t, err)
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		tables = append(tables, name)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"alerts", "batch_runs", "events", "metric_windows", "metric_windows_batch", "notifications", "rules", "schema_migrations", "silences"}, tables)

	var recorded uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM sw_test.schema_migrations").Scan(&recorded))
	require.Equal(t, uint64(len(wantMigrations)), recorded, "each version recorded once")

	// A version recorded but whose table was dropped is not re-applied: the
	// record is the source of truth.
	require.NoError(t, conn.Exec(ctx, "DROP TABLE sw_test.metric_windows"))
	require.NoError(t, Apply(ctx, cfg, nil))
	var n uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = 'sw_test' AND name = 'metric_windows'").Scan(&n))
	require.Equal(t, uint64(0), n)
}

func TestUpRejectsInvalidDatabase(t *testing.T) {
	t.Parallel()
	for _, db := range []string{"", "a-b", "x; DROP DATABASE default", "1db", "db.t"} {
		err := up(context.Background(), nil, db, nil, nil)
		require.ErrorIs(t, err, ErrInvalidDatabase, db)
	}
}
