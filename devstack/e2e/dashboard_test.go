package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// chromium finds Debian's Chromium. In CI it must be there (.ci/run installs
// it); elsewhere the browser test is skipped without it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not installed in CI (.ci/run installs it)")
	}
	t.Skip("chromium not installed (apt-get install chromium)")
	return ""
}

// TestDashboard loads the dashboard in headless Chromium against the stack
// with the real access log replayed, checks that its numbers are the API's,
// that the console shows no error, saves a screenshot, and then checks live
// mode: events ingested while the page is open appear within 2 seconds.
func TestDashboard(t *testing.T) {
	bin := chromium(t)
	var live struct {
		Metrics []json.RawMessage `json:"metrics"`
	}
	getJSON(t, st.QueryURL()+"/api/v1/live?metric=requests", &live)
	emptyStack := len(live.Metrics) == 0

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1600, 1200),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelTimeout()

	var mu sync.Mutex
	var consoleErrors []string
	require.NoError(t, chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range e.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				consoleErrors = append(consoleErrors, strings.Join(parts, " "))
			}
		case *runtime.EventExceptionThrown:
			consoleErrors = append(consoleErrors, e.ExceptionDetails.Text)
		}
	}))

	// (a) With no data yet every panel shows its empty state, without
	// console errors.
	if emptyStack {
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(st.QueryURL()+"/?range=latest&key="+st.Keys().Read),
			chromedp.WaitVisible(`#kpi-requests[data-value]`),
		))
		readPage(t, ctx)
		empties, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`(() => {
			const out = {};
			for (const id of ["top-clients", "top-users", "top-pages", "alerts", "recent", "notifications"]) {
				const e = document.querySelector("#" + id + " .empty");
				out[id] = e ? e.textContent : "";
			}
			out["kpi-requests"] = document.getElementById("kpi-requests").dataset.value;
			out["pipeline"] = document.getElementById("pipeline").textContent;
			return out;
		})()`))
		require.NoError(t, err)
		for _, id := range []string{"top-clients", "top-users", "top-pages"} {
			require.Equal(t, "no data in this range", empties[id], id)
		}
		require.Equal(t, "no active alerts", empties["alerts"])
		require.Equal(t, "no alerts yet", empties["recent"])
		require.Equal(t, "no notifications yet", empties["notifications"])
		require.Equal(t, "0", empties["kpi-requests"])
		require.Contains(t, empties["pipeline"], "events.late", "pipeline panel renders on an empty stack")
		mu.Lock()
		require.Empty(t, consoleErrors, "console errors on the empty dashboard")
		mu.Unlock()
	} else {
		t.Log("empty-stack check skipped: the stack already holds metrics")
	}

	logPath := filepath.Join(repo, "testdata", "apache_logs")
	postLog(t, logPath, "apache_logs") // idempotent: other tests replay it too
	waitQuiet(t)

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(st.QueryURL()+"/?range=latest&key="+st.Keys().Read),
		chromedp.WaitVisible(`#kpi-requests[data-value]`),
	))
	page := readPage(t, ctx)

	// The same numbers from the API, over the range the page shows.
	want := apiTotal(t, "requests", page.From, page.To, "")
	require.Equal(t, fmt.Sprint(want[""]), page.Requests, "requests in range: page vs API")
	require.Positive(t, want[""], "the latest 24 h of the log hold requests")
	clients := apiTotal(t, "requests_by_client", page.From, page.To, "client_ip")
	best, bestIP := 0.0, ""
	for ip, v := range clients {
		if v > best || (v == best && ip < bestIP) {
			best, bestIP = v, ip
		}
	}
	require.Equal(t, bestIP, page.TopClient, "top client: page vs API")
	require.Equal(t, fmt.Sprint(best), page.TopClientValue)

	checkTopPage(t, page) // the access log has no page views: both empty
	checkPipelinePanel(t, ctx)

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100 gives a PNG
	require.NoError(t, err)
	shot := filepath.Join(t.ArtifactDir(), "dashboard.png")
	require.NoError(t, os.WriteFile(shot, png, 0o644))
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))

	// Live mode: 50 requests in a new, later window. The page's "latest data"
	// range follows them; they must show within 2 s of being accepted.
	liveAt := time.Date(2015, 5, 21, 9, 30, 0, 0, time.UTC)
	var evs []map[string]any
	for i := range 50 {
		evs = append(evs, map[string]any{
			"event_id": fmt.Sprintf("dashboard-live-%d", i), "type": "service_request", "service": "dashboard-test",
			"status": 200, "latency_ms": 5, "event_time": liveAt.Add(time.Duration(i) * time.Second).UnixMilli(),
		})
	}
	// Page views for the top-pages panel (the access log has none).
	for i, p := range []string{"/dash/a", "/dash/a", "/dash/b", "/dash/a", "/dash/b", "/dash/a", "/dash/c"} {
		evs = append(evs, map[string]any{
			"event_id": fmt.Sprintf("dashboard-page-%d", i), "type": "page_view", "user_id": "dashboard-user", "page": p,
			"event_time": liveAt.Add(time.Duration(i) * time.Second).UnixMilli(),
		})
	}
	body, err := json.Marshal(evs)
	require.NoError(t, err)
	resp, err := st.Client().Post(st.CollectorURL()+"/v1/events", "application/json", strings.NewReader(string(body)))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	accepted := time.Now()
	_, err = chromedp.Run(ctx, chromedp.Poll[bool](
		`Number(document.getElementById("range-label").dataset.to) > `+strconv.FormatInt(liveAt.UnixMilli(), 10),
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(2*time.Second)))
	require.NoError(t, err, "live events not on the page within 2 s")
	t.Logf("live events on the page %s after the collector accepted them", time.Since(accepted).Round(time.Millisecond))

	waitQuiet(t)
	time.Sleep(time.Second) // one more refresh after the pipeline drained
	page = readPage(t, ctx)
	require.Equal(t, fmt.Sprint(apiTotal(t, "requests", page.From, page.To, "")[""]), page.Requests, "after live ingest: page vs API")
	require.Equal(t, "/dash/a", checkTopPage(t, page), "the live page views make /dash/a the top page")
	checkNotificationsPanel(t, ctx)

	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, consoleErrors, "console errors on the dashboard")
}

// pageState is what the dashboard shows, read from its data attributes.
type pageState struct {
	From, To, Requests, TopClient, TopClientValue, TopPage, TopPageValue string
}

// readPage waits until the dashboard finished a refresh and reads it.
func readPage(t *testing.T, ctx context.Context) pageState {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("status").textContent.startsWith("updated")`))
	require.NoError(t, err)
	p, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](`(() => {
		const $ = (id) => document.getElementById(id);
		const top = document.querySelector("#top-clients li");
		const topPage = document.querySelector("#top-pages li");
		return {
			TopPage: topPage ? topPage.dataset.key : "", TopPageValue: topPage ? topPage.dataset.value : "",
			From: $("range-label").dataset.from, To: $("range-label").dataset.to,
			Requests: $("kpi-requests").dataset.value,
			TopClient: top ? top.dataset.key : "", TopClientValue: top ? top.dataset.value : "",
		};
	})()`))
	require.NoError(t, err)
	return p
}

// apiTotal sums a metric over [from, to) per value of groupBy ("" for none).
func apiTotal(t *testing.T, metric, from, to, groupBy string) map[string]float64 {
	t.Helper()
	q := url.Values{"metric": {metric}, "from": {from}, "to": {to}, "step": {"1h"}}
	if groupBy != "" {
		q.Set("group_by", groupBy)
	}
	var body struct {
		Series []struct {
			Labels map[string]string `json:"labels"`
			Points []point           `json:"points"`
		} `json:"series"`
	}
	getJSON(t, st.QueryURL()+"/api/v1/series?"+q.Encode(), &body)
	out := map[string]float64{}
	for _, s := range body.Series {
		for _, p := range s.Points {
			out[s.Labels[groupBy]] += p.Value
		}
	}
	return out
}

// pipelineView is the pipeline health as numbers keyed by group or topic
// ("late" for events.late), as strings the way data-value holds them.
type pipelineView struct {
	Groups map[string]string
	Late   string
	DLQ    map[string]string
}

// checkPipelinePanel checks that the pipeline panel shows the group lags,
// late records and DLQ counts of GET /api/v1/pipeline. Page and API are
// read back to back; as the panel refreshes on its own schedule, the
// comparison is retried until both come from the same snapshot or 15 s
// pass.
func checkPipelinePanel(t *testing.T, ctx context.Context) {
	t.Helper()
	var page, api pipelineView
	deadline := time.Now().Add(15 * time.Second)
	for {
		var err error
		page, err = chromedp.Run(ctx, chromedp.Evaluate[pipelineView](`(() => {
			const out = { Groups: {}, Late: "", DLQ: {} };
			for (const r of document.querySelectorAll("#pipeline tr[data-group]")) out.Groups[r.dataset.group] = r.dataset.value;
			for (const r of document.querySelectorAll("#pipeline tr[data-topic]")) out.DLQ[r.dataset.topic] = r.dataset.value;
			const late = document.getElementById("pipeline-late");
			out.Late = late ? late.dataset.value : "";
			return out;
		})()`))
		require.NoError(t, err)
		var body struct {
			Groups []struct {
				Group string `json:"group"`
				Lag   int64  `json:"lag"`
			} `json:"groups"`
			LateRecords int64 `json:"late_records"`
			DLQ         []struct {
				Topic   string `json:"topic"`
				Records int64  `json:"records"`
			} `json:"dlq"`
		}
		getJSON(t, st.QueryURL()+"/api/v1/pipeline", &body)
		api = pipelineView{Groups: map[string]string{}, Late: fmt.Sprint(body.LateRecords), DLQ: map[string]string{}}
		for _, g := range body.Groups {
			api.Groups[g.Group] = fmt.Sprint(g.Lag)
		}
		for _, d := range body.DLQ {
			api.DLQ[d.Topic] = fmt.Sprint(d.Records)
		}
		if fmt.Sprint(page) == fmt.Sprint(api) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	require.Equal(t, api, page, "pipeline panel vs GET /api/v1/pipeline")
	require.NotEmpty(t, api.Groups, "the stack's consumer groups have members")
	require.NotEmpty(t, api.DLQ, "the stack creates the dead-letter topics")
	t.Logf("pipeline: %d groups, late records %s, DLQ %v", len(api.Groups), api.Late, api.DLQ)
}

// checkTopPage checks that the top-pages panel's first entry is the API's
// top page of events_by_page over the page's range (or that both are
// empty), and returns it.
func checkTopPage(t *testing.T, page pageState) string {
	t.Helper()
	best, bestPage := 0.0, ""
	for p, v := range apiTotal(t, "events_by_page", page.From, page.To, "page") {
		if v > best || (v == best && p < bestPage) {
			best, bestPage = v, p
		}
	}
	require.Equal(t, bestPage, page.TopPage, "top page: page vs API")
	if bestPage != "" {
		require.Equal(t, fmt.Sprint(best), page.TopPageValue, "top page count: page vs API")
	}
	return bestPage
}

// checkNotificationsPanel checks that the recent-notifications panel lists
// the ids and outcomes of GET /api/v1/notifications, newest first, retrying
// for up to 15 s as the panel refreshes on its own schedule.
func checkNotificationsPanel(t *testing.T, ctx context.Context) {
	t.Helper()
	var page, api []string
	deadline := time.Now().Add(15 * time.Second)
	for {
		var err error
		page, err = chromedp.Run(ctx, chromedp.Evaluate[[]string](
			`[...document.querySelectorAll("#notifications li")].map((li) => li.dataset.id + " " + li.dataset.kind)`))
		require.NoError(t, err)
		var body struct {
			Notifications []struct {
				ID      string `json:"id"`
				Payload struct {
					Kind string `json:"kind"`
				} `json:"payload"`
			} `json:"notifications"`
		}
		getJSON(t, st.QueryURL()+"/api/v1/notifications?limit=20", &body)
		api = api[:0]
		for _, n := range body.Notifications {
			api = append(api, n.ID+" "+n.Payload.Kind)
		}
		if fmt.Sprint(page) == fmt.Sprint(api) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	require.Equal(t, fmt.Sprint(api), fmt.Sprint(page), "notifications panel vs GET /api/v1/notifications")
	t.Logf("notifications on the page: %d", len(page))
}
