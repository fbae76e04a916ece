package e2e_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/devstack/loadgen"
)

// TestLoadGeneratorTallyMatchesStoredEvents sends generated traffic as fast
// as the collector takes it and checks the generator's own tally against
// the raw events in ClickHouse. Its events are dated a week before the access
// log, so the access-log counts checked elsewhere do not move.
func TestLoadGeneratorTallyMatchesStoredEvents(t *testing.T) {
	const seed = 7
	start := time.Date(2015, 5, 10, 0, 0, 0, 0, time.UTC)
	g, err := loadgen.New(loadgen.DefaultConfig(seed, start))
	require.NoError(t, err)
	rep, err := loadgen.Send(context.Background(), g, loadgen.SendOptions{CollectorURL: st.CollectorURL(), Items: 20_000, APIKey: st.Keys().Ingest})
	require.NoError(t, err)
	tally := g.Tally()
	require.EqualValues(t, 20_000, tally.Total)
	require.EqualValues(t, 20_000, rep.Accepted)
	require.Zero(t, rep.Rejected)
	require.Zero(t, rep.Failed)
	t.Logf("sent %d items in %s (%.0f items/s accepted)", rep.Sent, rep.Elapsed, rep.ItemsPerSecond())

	waitQuiet(t)
	require.Equal(t, strconv.FormatInt(tally.LogLines, 10),
		clickhouse(t, "SELECT count() FROM streamwatch.events FINAL WHERE source = 'gen-7'"))
	samples := tally.ByType["metric_sample"]
	require.Positive(t, samples)
	require.Equal(t, strconv.FormatInt(tally.Total-tally.LogLines-samples, 10),
		clickhouse(t, "SELECT count() FROM streamwatch.events FINAL WHERE event_id LIKE 'gen-7-%'"))
	// Samples have ids of their own (series + time); nobody else sends them
	// for the generator's week.
	require.Equal(t, strconv.FormatInt(samples, 10), clickhouse(t, "SELECT count() FROM streamwatch.events FINAL WHERE type = 'metric_sample'"+
		" AND event_time_ms >= "+strconv.FormatInt(start.UnixMilli(), 10)+" AND event_time_ms < "+strconv.FormatInt(start.Add(24*time.Hour).UnixMilli(), 10)))
	for typ, n := range tally.ByType {
		if typ == "metric_sample" {
			continue
		}
		require.Equal(t, strconv.FormatInt(n, 10), clickhouse(t,
			"SELECT count() FROM streamwatch.events FINAL WHERE (source = 'gen-7' OR event_id LIKE 'gen-7-%') AND type = '"+typ+"'"), typ)
	}
}
