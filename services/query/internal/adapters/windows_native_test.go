package adapters

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/metrics"
)

// storedWindow is one row of metric_windows, every column.
type storedWindow struct {
	Metric      string   `ch:"metric"`
	LabelsKey   string   `ch:"labels_key"`
	LabelNames  []string `ch:"label_names"`
	LabelValues []string `ch:"label_values"`
	StartSec    uint32   `ch:"ws"`
	StartMs     int64    `ch:"window_start_ms"`
	EndMs       int64    `ch:"window_end_ms"`
	Shard       int32    `ch:"shard"`
	Complete    uint8    `ch:"complete"`
	Kind        string   `ch:"kind"`
	Revision    int64    `ch:"revision"`
	Count       int64    `ch:"count"`
	Sum         float64  `ch:"sum"`
	Min         float64  `ch:"min"`
	Max         float64  `ch:"max"`
	Value       float64  `ch:"value"`
	WatermarkMs int64    `ch:"watermark_ms"`
}

func expectedWindow(w metrics.Result) storedWindow {
	names, values := sortedPairs(w.Labels)
	var complete uint8
	if w.Complete {
		complete = 1
	}
	return storedWindow{Metric: w.Metric, LabelsKey: metrics.LabelsKey(w.Labels), LabelNames: names, LabelValues: values,
		StartSec: uint32(dateTime(w.WindowStart).Unix()), StartMs: w.WindowStart, EndMs: w.WindowEnd, Shard: w.Shard,
		Complete: complete, Kind: w.Kind, Revision: w.Revision, Count: w.Count, Sum: w.Sum, Min: w.Min, Max: w.Max,
		Value: w.Value, WatermarkMs: w.Watermark}
}

func readWindows(t *testing.T, conn driver.Conn, table string) []storedWindow {
	t.Helper()
	var rows []storedWindow
	require.NoError(t, conn.Select(context.Background(), &rows, "SELECT "+
		strings.Replace(windowColumns, "window_start,", "toUInt32(window_start) AS ws,", 1)+
		" FROM "+table+" ORDER BY metric, window_start_ms, labels_key, shard, revision"))
	return rows
}

// TestNativeHTTPInsertWindowsReadsBackExactly inserts window results with
// edge values through the Native-over-HTTP path, twice in a row with
// different sizes (the block is reused), and reads every column back; the
// same results through clickhouse-go must read back identically.
func TestNativeHTTPInsertWindowsReadsBackExactly(t *testing.T) {
	t.Parallel()
	conn, _, h := newNativeRepo(t)
	ctx := context.Background()
	require.NoError(t, conn.Exec(ctx, "CREATE TABLE streamwatch.metric_windows_go AS streamwatch.metric_windows"))
	repo := NewClickHouseWindowRepository(WithClickHouseHTTP(conn, h), "streamwatch")
	require.NotNil(t, repo.http)
	goRepo := NewClickHouseWindowRepositoryOn(conn, "streamwatch", "metric_windows_go")
	require.Nil(t, goRepo.http)

	first := []metrics.Result{
		{Metric: "requests", WindowStart: 1431820800000, WindowEnd: 1431820860000, Kind: "final", Revision: 1, Count: 3, Sum: 3, Min: 1, Max: 1, Value: 3, Watermark: 1431820860000},
		{Metric: "requests_by_status", Labels: map[string]string{"status": "200", "method": "GET", "ключ": "значение 🚀"},
			WindowStart: -61_000, WindowEnd: -1_000, Shard: -1, Complete: true, Kind: "early", Revision: math.MaxInt64,
			Count: math.MinInt64, Sum: math.Inf(1), Min: math.Inf(-1), Max: math.MaxFloat64, Value: -0.5, Watermark: math.MinInt64},
		{Metric: strings.Repeat("m", 300), Labels: map[string]string{"": ""}, WindowStart: (1 << 32) * 1000, WindowEnd: math.MaxInt64,
			Shard: math.MaxInt32, Kind: "revised", Revision: 2},
	}
	second := make([]metrics.Result, 1000)
	for i := range second {
		second[i] = metrics.Result{Metric: "requests_by_client", Labels: map[string]string{"client_ip": fmt.Sprintf("10.0.%d.%d", i/256, i%256)},
			WindowStart: 1431820800000, WindowEnd: 1431820860000, Shard: int32(i % 3), Kind: "final", Revision: int64(i%2 + 1),
			Count: int64(i), Sum: float64(i) / 3, Min: 0, Max: float64(i), Value: float64(i), Watermark: 1431820860000}
	}
	for _, rs := range [][]metrics.Result{first, second} {
		require.NoError(t, repo.InsertWindows(ctx, rs))
		require.NoError(t, goRepo.InsertWindows(ctx, rs))
	}

	got := readWindows(t, conn, "streamwatch.metric_windows")
	require.Len(t, got, len(first)+len(second))
	want := make(map[string]storedWindow)
	for _, w := range append(append([]metrics.Result{}, first...), second...) {
		e := expectedWindow(w)
		want[fmt.Sprint(e.Metric, e.StartMs, e.LabelsKey, e.Shard, e.Revision)] = e
	}
	for _, g := range got {
		require.Equal(t, want[fmt.Sprint(g.Metric, g.StartMs, g.LabelsKey, g.Shard, g.Revision)], g)
	}
	require.Equal(t, readWindows(t, conn, "streamwatch.metric_windows_go"), got, "native HTTP and clickhouse-go rows differ")
}
