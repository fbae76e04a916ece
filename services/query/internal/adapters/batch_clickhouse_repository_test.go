package adapters

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/query/internal/adapters/chtest"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/batch"
	"github.com/streamwatch/streamwatch/services/query/migrations"
)

// TestRecomputeRedoesARacedMergedRead makes an insert of replayed events
// land while a merged read (no FINAL) runs, as a replay or a late batch
// can: the read may have counted those events twice, so Recompute must
// notice the changed parts and recompute with FINAL, and the batch view
// must count each event once.
func TestRecomputeRedoesARacedMergedRead(t *testing.T) {
	t.Parallel()
	srv := chtest.StartClickHouse(t)
	conn := srv.Conn(t)
	ctx := context.Background()
	const db = "streamwatch"
	require.NoError(t, migrations.Up(ctx, conn, db, nil))

	day := int64(1431820800000) // 2015-05-17T00:00:00Z
	evs := make([]events.Event, 600)
	for i := range evs {
		t := day + int64(i)*60_000
		evs[i] = events.Event{V: 1, ID: fmt.Sprintf("e%d", i), Type: events.TypeHTTPRequest, Time: t, ReceiveTime: t,
			Key: "10.0.0.1", ClientIP: "10.0.0.1", Method: "GET", Path: "/", Protocol: "HTTP/1.1", Status: 200}
	}
	writer := NewClickHouseEventRepository(conn, db)
	require.NoError(t, writer.InsertEvents(ctx, evs))
	require.NoError(t, writer.InsertEvents(ctx, evs[:100])) // replayed

	var def metrics.Definition
	for _, d := range metrics.DefaultDefinitions() {
		if d.Name == "requests" {
			def = d
		}
	}
	qs, err := batch.Plan(&def, db+".events", day, day+24*3_600_000, 24*3_600_000)
	require.NoError(t, err)
	require.Len(t, qs, 1)

	repo := NewClickHouseBatchRepository(conn, db)
	raced := false
	repo.afterRead = func() {
		if !raced {
			raced = true
			require.NoError(t, writer.InsertEvents(ctx, evs[100:300])) // replayed during the read
		}
	}
	_, err = repo.Recompute(ctx, "r1", qs[0])
	require.NoError(t, err)
	require.Equal(t, BatchStats{Optimized: 1, Redone: 1, Final: 1}, repo.Stats())

	var total float64
	require.NoError(t, conn.QueryRow(ctx, "SELECT sum(value) FROM streamwatch.metric_windows_batch FINAL WHERE run_id = 'r1' AND metric = 'requests'").Scan(&total))
	require.InDelta(t, float64(len(evs)), total, 1e-9, "each event counted once")

	// Without a race the next query reads the compacted partition merged.
	repo.afterRead = nil
	require.NoError(t, conn.Exec(ctx, "OPTIMIZE TABLE streamwatch.events FINAL"))
	_, err = repo.Recompute(ctx, "r2", qs[0])
	require.NoError(t, err)
	require.Equal(t, uint64(1), repo.Stats().Merged)
	require.NoError(t, conn.QueryRow(ctx, "SELECT sum(value) FROM streamwatch.metric_windows_batch FINAL WHERE run_id = 'r2' AND metric = 'requests'").Scan(&total))
	require.InDelta(t, float64(len(evs)), total, 1e-9)
}
