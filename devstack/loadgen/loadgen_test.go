package loadgen_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/devstack/loadgen"
	"github.com/streamwatch/streamwatch/pkg/accesslog"
	"github.com/streamwatch/streamwatch/pkg/events"
)

var start = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

func gen(t *testing.T, cfg loadgen.Config) *loadgen.Generator {
	t.Helper()
	g, err := loadgen.New(cfg)
	require.NoError(t, err)
	return g
}

func TestDeterministic(t *testing.T) {
	t.Parallel()
	a, b := gen(t, loadgen.DefaultConfig(42, start)), gen(t, loadgen.DefaultConfig(42, start))
	c := gen(t, loadgen.DefaultConfig(43, start))
	same := true
	for range 5000 {
		x, y, z := a.Next(), b.Next(), c.Next()
		require.Equal(t, x, y)
		same = same && x.Line == z.Line && x.Type == z.Type
	}
	require.False(t, same, "another seed gives other traffic")
}

// TestEverythingIsAcceptedByTheCollectorsParsers runs every generated item
// through the parsers the collector uses and recounts the tally.
func TestEverythingIsAcceptedByTheCollectorsParsers(t *testing.T) {
	t.Parallel()
	g := gen(t, loadgen.DefaultConfig(1, start))
	byType := map[string]int64{}
	ids := map[string]bool{}
	var last time.Time
	for range 20_000 {
		it := g.Next()
		require.False(t, it.Time.Before(last), "event time never goes back")
		last = it.Time
		byType[it.Type]++
		if it.Line != "" {
			rec, err := accesslog.ParseCombined(it.Line)
			require.NoError(t, err, it.Line)
			require.Equal(t, it.ClientIP, rec.ClientIP)
			require.Equal(t, it.Status, rec.Status)
			require.Equal(t, it.Time.Truncate(time.Second), rec.Time)
			continue
		}
		b, err := json.Marshal(it.Event)
		require.NoError(t, err)
		parse := events.ParseInput
		if it.Type == "metric_sample" {
			parse = events.ParseSample
		}
		e, err := parse(b, time.Now())
		require.NoError(t, err, string(b))
		require.Equal(t, it.Type, string(e.Type))
		require.False(t, ids[e.ID], "duplicate id %s", e.ID)
		ids[e.ID] = true
	}
	tally := g.Tally()
	require.EqualValues(t, 20_000, tally.Total)
	require.Equal(t, byType, tally.ByType)
	// 4 hosts, one round every 10 s of event time from t = 0 up to the last event.
	require.EqualValues(t, 4*(int64(last.Sub(start)/(10*time.Second))+1), tally.ByType["metric_sample"])
	for _, typ := range []string{"page_view", "click", "add_cart", "purchase", "search", "service_request", "http_request"} {
		require.Positive(t, tally.ByType[typ], typ)
	}
	// 100 events/s of event time: 20,000 events span 200 s.
	require.InDelta(t, 200, last.Sub(start).Seconds(), 1)
}

func TestZipfSkew(t *testing.T) {
	t.Parallel()
	g := gen(t, loadgen.DefaultConfig(3, start))
	perUser := map[string]int{}
	for range 50_000 {
		if it := g.Next(); it.Event != nil && it.Event["user_id"] != nil {
			perUser[it.Event["user_id"].(string)]++
		}
	}
	counts := make([]int, 0, len(perUser))
	total := 0
	for _, n := range perUser {
		counts = append(counts, n)
		total += n
	}
	sort.Sort(sort.Reverse(sort.IntSlice(counts)))
	top := 0
	for _, n := range counts[:10] {
		top += n
	}
	require.Greater(t, float64(top)/float64(total), 0.2, "the 10 busiest of 10,000 users make over 20%% of the clicks")
}

func TestIncidents(t *testing.T) {
	t.Parallel()
	cfg := loadgen.DefaultConfig(9, start)
	cfg.EventsPerSecond = 50
	cfg.Incidents = []loadgen.Incident{
		{Kind: loadgen.ErrorBurst, At: 2 * time.Minute, Duration: time.Minute, Magnitude: 0.5},
		{Kind: loadgen.TrafficDrop, At: 4 * time.Minute, Duration: time.Minute, Magnitude: 0.8},
		{Kind: loadgen.AbusiveClient, At: 6 * time.Minute, Duration: time.Minute, Magnitude: 300, ClientIP: "203.0.113.9"},
		{Kind: loadgen.LatencySpike, At: 8 * time.Minute, Duration: time.Minute, Magnitude: 20},
	}
	g := gen(t, cfg)
	latency := map[int64][]float64{}
	for {
		it := g.Next()
		if it.Time.Sub(start) >= 10*time.Minute {
			break
		}
		if it.Type == "service_request" {
			m := it.Time.Truncate(time.Minute).UnixMilli()
			latency[m] = append(latency[m], it.Event["latency_ms"].(float64))
		}
	}
	tally := g.Tally()
	minute := func(i int) int64 { return start.Add(time.Duration(i) * time.Minute).UnixMilli() }
	// Error burst: 5xx jump from ~1% of service requests to ~50%.
	require.Greater(t, tally.ServerErrorsPerMinute[minute(2)], 5*tally.ServerErrorsPerMinute[minute(1)]+100)
	// Traffic drop: about 80% fewer requests in minute 4.
	require.Less(t, float64(tally.RequestsPerMinute[minute(4)]), 0.35*float64(tally.RequestsPerMinute[minute(3)]))
	// Abusive client: 300 extra requests in minute 6, none before.
	require.EqualValues(t, 300, tally.ClientPerMinute["203.0.113.9|"+itoa(minute(6))])
	require.Zero(t, tally.ClientPerMinute["203.0.113.9|"+itoa(minute(5))])
	// Latency spike: the median in minute 8 is far above minute 7's.
	require.Greater(t, median(latency[minute(8)]), 10*median(latency[minute(7)]))
}

func TestInvalidConfig(t *testing.T) {
	t.Parallel()
	cfg := loadgen.DefaultConfig(1, start)
	cfg.ZipfS = 1
	cfg.Incidents = []loadgen.Incident{{Kind: "meteor"}, {Kind: loadgen.AbusiveClient}}
	_, err := loadgen.New(cfg)
	require.ErrorContains(t, err, "ZipfS")
	require.ErrorContains(t, err, `unknown kind "meteor"`)
	require.ErrorContains(t, err, "needs ClientIP")
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestSendRetriesWhileTheCollectorIsDown answers every request with 502 or
// a dropped connection for a while: with RetryFor every item is accepted
// in the end; without it a 502 fails the request at once.
func TestSendRetriesWhileTheCollectorIsDown(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n := calls.Add(1); {
		case n <= 3:
			http.Error(w, `{"code":"unavailable"}`, http.StatusBadGateway)
		case n <= 5:
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			conn.Close() // the collector died mid-request
		default:
			body, _ := io.ReadAll(r.Body)
			items := strings.Count(string(body), "\n") // log lines
			if !strings.Contains(r.URL.Path, "/v1/logs") {
				var evs []json.RawMessage
				require.NoError(t, json.Unmarshal(body, &evs))
				items = len(evs)
			}
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprintf(w, `{"accepted":%d,"rejected":[]}`, items)
		}
	}))
	defer srv.Close()

	g := gen(t, loadgen.DefaultConfig(5, start))
	rep, err := loadgen.Send(t.Context(), g, loadgen.SendOptions{CollectorURL: srv.URL, Items: 300, Batch: 100, Workers: 1, RetryFor: time.Minute})
	require.NoError(t, err)
	require.EqualValues(t, 300, rep.Accepted)
	require.Zero(t, rep.Failed)

	calls.Store(0)
	_, err = loadgen.Send(t.Context(), gen(t, loadgen.DefaultConfig(5, start)), loadgen.SendOptions{CollectorURL: srv.URL, Items: 10, Workers: 1})
	require.ErrorContains(t, err, "502")
}
