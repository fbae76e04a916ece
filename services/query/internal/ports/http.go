package ports

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/streamwatch/streamwatch/pkg/auth"
	"github.com/streamwatch/streamwatch/pkg/httpserver"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/services/query/internal/app"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/window"
)

// queryTimeout bounds the storage work of one API request.
const queryTimeout = 30 * time.Second

// HTTPServer is the REST API of the query service. Every parameter is
// validated before storage is touched; a bad one is answered 400 with an
// httpserver.ErrorBody naming it. Safe for concurrent use.
type HTTPServer struct {
	app    app.Application
	stream StreamConfig
	guard  *auth.Guard
}

// WindowFeed delivers window results as the projector stores them.
type WindowFeed interface {
	// Subscribe returns a channel of the results of metricNames (all when
	// empty), buffered for size, and a function that unsubscribes.
	Subscribe(metricNames []string, size int) (<-chan metrics.Result, func())
}

// StreamConfig configures GET /api/v1/stream.
type StreamConfig struct {
	// Feed is where results come from; nil answers the stream with 503.
	Feed WindowFeed
	// Heartbeat is the interval of ": heartbeat" comments (<= 0: 15 s).
	Heartbeat time.Duration
	// Stop, when closed, ends every open stream (server shutdown; open
	// streams would otherwise hold the graceful shutdown until its
	// timeout). Nil never stops.
	Stop <-chan struct{}
}

// NewHTTPServer returns the API over a, streaming from stream.Feed, with
// access checked by guard (see Register).
func NewHTTPServer(a app.Application, stream StreamConfig, guard *auth.Guard) *HTTPServer {
	if stream.Heartbeat <= 0 {
		stream.Heartbeat = 15 * time.Second
	}
	return &HTTPServer{app: a, stream: stream, guard: guard}
}

// Register adds the API routes to e (documented in api/openapi/query.yml,
// served at /api/openapi.json):
//
//	GET /api/v1/series?metric=NAME&from=T&to=T&step=1m|5m|1h|1d[&group_by=LABEL][&filter=LABEL=VALUE ...]
//	GET /api/v1/live?metric=NAME[&metric=NAME ...]
//	GET /api/v1/stream[?metric=NAME ...]  (Server-Sent Events)
//	GET /api/v1/topk?metric=NAME&by=LABEL&from=T&to=T[&n=N][&filter=LABEL=VALUE ...]
//	GET /api/v1/topk/live?metric=NAME&by=LABEL[&n=N][&window_start=T]  (Redis, latest window by default)
//	GET /api/v1/events?from=T&to=T[&type=TYPE ...][&field=FIELD=VALUE ...][&limit=N][&cursor=C]
//	GET /api/v1/alerts[?state=S ...][&severity=S ...][&filter=LABEL=VALUE ...][&from=T][&to=T][&limit=N]
//	GET /api/v1/alerts/recent[?limit=N]
//	GET /api/v1/batch/runs/{id}[?min_rel_diff=X][&limit=N], POST /api/v1/batch/runs {"from":T,"to":T,"metrics":[...]}
//	GET /api/v1/rules, GET|PUT|DELETE /api/v1/rules/{id}, POST /api/v1/rules
//	GET /api/v1/silences[?state=active|expired|all], GET|PUT|DELETE /api/v1/silences/{id}, POST /api/v1/silences
//	POST /api/v1/alerts/{fingerprint}/ack
//	GET /api/v1/notifications[?limit=N]
//	GET /api/v1/pipeline  (Kafka consumer lag, late and dead-letter records; cached 2 s)
//
// T is RFC 3339 or integer milliseconds since the epoch.
//
// Access (pkg/auth): every GET under /api/v1 needs a key with the read
// scope, sent as a header or, for the dashboard, as the cookie set by
// opening "/?key=<read key>"; every POST, PUT and DELETE (rules, silences,
// acknowledgements, batch runs) needs the admin scope in a header (a cookie
// never authorizes a change). /api/openapi.json, the dashboard's static
// files and the health endpoints are open.
func (s *HTTPServer) Register(e *echo.Echo) {
	read := s.guard.Require(auth.ScopeRead, true)
	admin := s.guard.Require(auth.ScopeAdmin, false)
	login := s.guard.Login(auth.ScopeRead)
	e.Pre(func(next echo.HandlerFunc) echo.HandlerFunc {
		withLogin := login(next)
		return func(c echo.Context) error {
			if p := c.Request().URL.Path; p == "/" || p == "/index.html" {
				return withLogin(c)
			}
			return next(c)
		}
	})
	e.GET("/api/openapi.json", serveOpenAPI)
	g := e.Group("/api/v1")
	g.GET("/series", s.series, read)
	g.GET("/live", s.live, read)
	g.GET("/stream", s.streamWindows, read)
	g.GET("/topk", s.topk, read)
	g.GET("/topk/live", s.liveTopK, read)
	g.GET("/events", s.events, read)
	g.GET("/alerts", s.alerts, read)
	g.GET("/alerts/recent", s.recentAlerts, read)
	g.GET("/batch/runs/:id", s.batchRun, read)
	g.POST("/batch/runs", s.startBatchRun, admin)
	g.GET("/notifications", s.notifications, read)
	g.GET("/pipeline", s.pipeline, read)
	s.registerAdmin(g, read, admin)
}

// SeriesResponse is the body of GET /api/v1/series.
type SeriesResponse struct {
	// Metric and Step echo the request.
	Metric string `json:"metric"`
	Step   string `json:"step"`
	// From and To are the requested range, ms since the epoch.
	From int64 `json:"from"`
	To   int64 `json:"to"`
	// Series has one entry without group_by (labels {}), else one per
	// label value with data, sorted by value.
	Series []SeriesJSON `json:"series"`
}

// SeriesJSON is one series: its labels and its points sorted by t.
type SeriesJSON struct {
	Labels map[string]string `json:"labels"`
	Points []PointJSON       `json:"points"`
}

// PointJSON is one bucket: t its start in ms, value the sum, layer the
// serving layer it came from: "speed" (window projections of the stream),
// "batch" (a batch run's recompute) or "mixed" (windows of both).
type PointJSON struct {
	T     int64   `json:"t"`
	Value float64 `json:"value"`
	Layer string  `json:"layer"`
}

// LiveResponse is the body of GET /api/v1/live.
type LiveResponse struct {
	Metrics []LiveJSON `json:"metrics"`
}

// LiveJSON is the latest window of one metric and label set, summed over
// shards; times in ms since the epoch.
type LiveJSON struct {
	Metric      string            `json:"metric"`
	Labels      map[string]string `json:"labels"`
	WindowStart int64             `json:"window_start"`
	WindowEnd   int64             `json:"window_end"`
	Value       float64           `json:"value"`
	Count       int64             `json:"count"`
}

var (
	seriesParams = map[string]bool{"metric": false, "from": false, "to": false, "step": false, "group_by": false, "filter": true}
	liveParams   = map[string]bool{"metric": true, "filter": true}
)

func (s *HTTPServer) series(c echo.Context) error {
	params := c.QueryParams()
	if err := checkParams(params, seriesParams); err != nil {
		return badRequest(err)
	}
	var errs []error
	from, err := parseTime("from", params.Get("from"))
	errs = append(errs, err)
	to, err := parseTime("to", params.Get("to"))
	errs = append(errs, err)
	step, err := window.ParseStep(params.Get("step"))
	errs = append(errs, err)
	filters, err := parseFilters(params["filter"])
	errs = append(errs, err)
	metric := params.Get("metric")
	errs = append(errs, window.CheckMetric(metric))
	if _, given := params["group_by"]; given && params.Get("group_by") == "" {
		errs = append(errs, window.InvalidParam("group_by", "empty (omit it for one series)"))
	}
	if err := errors.Join(errs...); err != nil {
		return badRequest(err)
	}
	q, err := window.NewSeriesQuery(metric, from, to, step, params.Get("group_by"), filters)
	if err != nil {
		return badRequest(err)
	}

	ctx, cancel := context.WithTimeout(c.Request().Context(), queryTimeout)
	defer cancel()
	series, err := s.app.Queries.Series.Handle(ctx, q)
	if err != nil {
		return err
	}
	resp := SeriesResponse{Metric: q.Metric(), Step: q.Step().String(), From: q.From(), To: q.To(), Series: make([]SeriesJSON, len(series))}
	for i, sr := range series {
		points := make([]PointJSON, len(sr.Points))
		for j, p := range sr.Points {
			points[j] = PointJSON{T: p.T, Value: p.Value, Layer: p.Layer}
		}
		resp.Series[i] = SeriesJSON{Labels: sr.Labels, Points: points}
	}
	return c.JSON(http.StatusOK, resp)
}

func (s *HTTPServer) live(c echo.Context) error {
	params := c.QueryParams()
	if err := checkParams(params, liveParams); err != nil {
		return badRequest(err)
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), queryTimeout)
	defer cancel()
	filters, err := parseFilters(params["filter"])
	if err != nil {
		_, merr := window.LiveMetrics(params["metric"])
		return badRequest(errors.Join(merr, err))
	}
	values, err := s.app.Queries.Live.Handle(ctx, params["metric"], filters)
	if errors.Is(err, window.ErrInvalidParam) {
		return badRequest(err)
	}
	if err != nil {
		return err
	}
	resp := LiveResponse{Metrics: make([]LiveJSON, len(values))}
	for i, v := range values {
		resp.Metrics[i] = LiveJSON{
			Metric: v.Metric, Labels: v.Labels, WindowStart: v.WindowStart, WindowEnd: v.WindowEnd,
			Value: v.Value, Count: v.Count,
		}
	}
	return c.JSON(http.StatusOK, resp)
}

// checkParams rejects parameters not in allowed and repeats of those that
// may appear once (allowed[name] false).
func checkParams(params url.Values, allowed map[string]bool) error {
	names := make([]string, 0, len(params))
	for name := range params {
		names = append(names, name)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		repeatable, ok := allowed[name]
		switch {
		case !ok:
			known := make([]string, 0, len(allowed))
			for k := range allowed {
				known = append(known, k)
			}
			sort.Strings(known)
			errs = append(errs, window.InvalidParam(name, "unknown (this endpoint takes %s)", strings.Join(known, ", ")))
		case !repeatable && len(params[name]) > 1:
			errs = append(errs, window.InvalidParam(name, "given %d times", len(params[name])))
		}
	}
	return errors.Join(errs...)
}

// parseTime parses an RFC 3339 time or integer milliseconds since the
// epoch, returning ms.
func parseTime(param, s string) (int64, error) {
	if s == "" {
		return 0, window.InvalidParam(param, "missing (RFC 3339 or integer milliseconds)")
	}
	if isInteger(s) {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, window.InvalidParam(param, "%q is out of range", s)
		}
		return ms, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, window.InvalidParam(param, "%q is neither RFC 3339 nor integer milliseconds", s)
	}
	return t.UnixMilli(), nil
}

func isInteger(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// parseFilters splits each LABEL=VALUE at the first "="; labels are
// validated by window.NewSeriesQuery.
func parseFilters(raw []string) ([]window.Filter, error) {
	var errs []error
	filters := make([]window.Filter, 0, len(raw))
	for _, f := range raw {
		label, value, ok := strings.Cut(f, "=")
		if !ok {
			errs = append(errs, window.InvalidParam("filter", "%q is not LABEL=VALUE", f))
			continue
		}
		filters = append(filters, window.Filter{Label: label, Values: []string{value}})
	}
	return filters, errors.Join(errs...)
}

// badRequest turns validation errors into a 400 whose message lists every
// problem, separated by "; ".
func badRequest(err error) error {
	return httpserver.Error(http.StatusBadRequest, "%s", strings.ReplaceAll(err.Error(), "\n", "; "))
}
