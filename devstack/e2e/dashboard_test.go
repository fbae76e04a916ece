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
	logPath := filepath.Join(repo, "testdata", "apache_logs")
	postLog(t, logPath, "apache_logs") // idempotent: other tests replay it too
	waitQuiet(t)

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

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(st.QueryURL()+"/?range=latest"),
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
	body, err := json.Marshal(evs)
	require.NoError(t, err)
	resp, err := http.Post(st.CollectorURL()+"/v1/events", "application/json", strings.NewReader(string(body)))
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

	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, consoleErrors, "console errors on the dashboard")
}

// pageState is what the dashboard shows, read from its data attributes.
type pageState struct {
	From, To, Requests, TopClient, TopClientValue string
}

// readPage waits until the dashboard finished a refresh and reads it.
func readPage(t *testing.T, ctx context.Context) pageState {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("status").textContent.startsWith("updated")`))
	require.NoError(t, err)
	p, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](`(() => {
		const $ = (id) => document.getElementById(id);
		const top = document.querySelector("#top-clients li");
		return {
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
