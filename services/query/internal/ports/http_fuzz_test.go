package ports_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/httpserver"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/query/internal/app"
	"github.com/streamwatch/streamwatch/services/query/internal/app/query"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/alertsearch"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/batch"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/eventsearch"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/pipeline"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/window"
	"github.com/streamwatch/streamwatch/services/query/internal/ports"
)

// errReached is what every storage call of the fuzzed API returns: the
// request passed validation.
var errReached = errors.New("validated request reached storage")

// reached implements every reader the API's queries use by returning
// errReached.
type reached struct{}

func (reached) Rules(context.Context, string) ([]json.RawMessage, error)    { return nil, errReached }
func (reached) Silences(context.Context, string) ([]json.RawMessage, error) { return nil, errReached }
func (reached) Run(context.Context, string) (batch.Run, bool, error) {
	return batch.Run{}, false, errReached
}
func (reached) RunWindows(context.Context, batch.Run) ([]batch.Window, error) {
	return nil, errReached
}
func (reached) SpeedWindows(context.Context, batch.Run) ([]batch.Window, error) {
	return nil, errReached
}
func (reached) LiveResults(context.Context, string, []window.Filter) ([]metrics.Result, error) {
	return nil, errReached
}
func (reached) TopScores(context.Context, string, int64) ([]window.LabelScore, error) {
	return nil, errReached
}
func (reached) RecentNotifications(context.Context, int) ([]query.StoredNotification, error) {
	return nil, errReached
}
func (reached) PipelineHealth(context.Context) (pipeline.Health, error) {
	return pipeline.Health{}, errReached
}
func (reached) SearchEvents(context.Context, eventsearch.Query) (eventsearch.Page, error) {
	return eventsearch.Page{}, errReached
}
func (reached) TopK(context.Context, window.TopKQuery) ([]window.TopKEntry, error) {
	return nil, errReached
}
func (reached) SearchAlerts(context.Context, alertsearch.Query) ([]alerts.Alert, error) {
	return nil, errReached
}
func (reached) RecentAlerts(context.Context, int) ([]json.RawMessage, error) { return nil, errReached }
func (reached) SeriesRows(context.Context, window.SeriesQuery) ([]window.Row, error) {
	return nil, errReached
}
func (reached) SeriesWindows(context.Context, window.SeriesQuery) ([]window.WindowRow, error) {
	return nil, errReached
}

// reachedBatch is the batch layer's reader.
type reachedBatch struct{}

func (reachedBatch) DoneRuns(context.Context, string, int64, int64) ([]batch.Run, error) {
	return nil, errReached
}
func (reachedBatch) SeriesWindows(context.Context, window.SeriesQuery, []string) ([]window.WindowRow, error) {
	return nil, errReached
}

// fuzzPaths are the GET endpoints whose query parameters are fuzzed.
var fuzzPaths = []string{
	"/api/v1/series", "/api/v1/live", "/api/v1/topk", "/api/v1/topk/live", "/api/v1/events",
	"/api/v1/alerts", "/api/v1/alerts/recent", "/api/v1/notifications", "/api/v1/batch/runs/r1",
	"/api/v1/silences", "/api/v1/stream", "/api/v1/pipeline",
}

// FuzzQueryParams sends arbitrary query strings to every GET endpoint of
// the API (no panic recovery, so a panic fails the test) and checks that
// each is either refused with 400 and a JSON error naming a parameter, or
// passes validation and reaches storage. Seed corpus:
// testdata/fuzz/FuzzQueryParams.
func FuzzQueryParams(f *testing.F) {
	r := reached{}
	a := app.Application{Queries: app.Queries{
		Series: query.NewSeriesHandler(r, reachedBatch{}), Live: query.NewLiveHandler(r), Top: query.NewLiveTopHandler(r, r),
		Search: query.NewSearchHandler(r, r, r, r), Batch: query.NewBatchReportHandler(r), Admin: r,
		Notifications: query.NewNotificationsHandler(r), Pipeline: query.NewPipelineHandler(r, time.Second),
	}}
	e := echo.New()
	plain := httpserver.New(nil, nil).HTTPErrorHandler
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		if errors.Is(err, errReached) {
			_ = c.NoContent(299)
			return
		}
		plain(err, c)
	}
	ports.NewHTTPServer(a, ports.StreamConfig{}, noAuth()).Register(e)

	for _, s := range []struct {
		path uint8
		q    string
	}{
		{0, "metric=requests&from=2015-05-17T00:00:00Z&to=2015-05-21T00:00:00Z&step=1h&group_by=status_class&filter=status=200"},
		{0, "metric=requests&from=-9223372036854775808&to=9223372036854775807&step=1m"},
		{0, "metric=requests&from=1&to=0&step=7m&filter=noequals"},
		{1, "metric=requests&metric=bytes"},
		{2, "metric=requests_by_client&by=client_ip&n=3&from=0&to=99999999"},
		{3, "metric=top_pages&by=page&n=999999999&window_start=-1"},
		{4, "from=0&to=1&type=click&field=status=500&field=prop.a=b&limit=1000&cursor=eyJ0IjoxfQ"},
		{4, "from=0&to=1&cursor=%ff%fe"},
		{5, "state=firing&severity=warning&filter=client_ip=1.2.3.4&from=0&to=1&limit=5"},
		{6, "limit=0"}, {7, "limit=-5"}, {8, "min_rel_diff=NaN&limit=1e3"}, {9, "state=all"},
		{10, "metric=a&metric=b"}, {11, "x=1"}, {0, "%zz"}, {0, ";&=&&"},
	} {
		f.Add(s.path, s.q)
	}
	f.Fuzz(func(t *testing.T, which uint8, rawQuery string) {
		path := fuzzPaths[int(which)%len(fuzzPaths)]
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL.Path, req.URL.RawQuery = path, rawQuery
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		switch rec.Code {
		case 299, http.StatusServiceUnavailable: // validated; storage or feed reached
			return
		case http.StatusBadRequest:
		default:
			t.Fatalf("GET %s?%s: %d %s", path, rawQuery, rec.Code, rec.Body)
		}
		var body httpserver.ErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("GET %s?%s: 400 without a JSON error: %q", path, rawQuery, rec.Body)
		}
		if body.Code != "bad_request" || !strings.Contains(body.Message, "parameter ") {
			t.Fatalf("GET %s?%s: 400 %+v does not name a parameter", path, rawQuery, body)
		}
		if utf8.ValidString(rawQuery) && !utf8.ValidString(body.Message) {
			t.Fatalf("GET %s?%s: message is not UTF-8: %q", path, rawQuery, body.Message)
		}
	})
}
