package ports

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/alertsearch"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/eventsearch"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/window"
)

var (
	topkParams    = map[string]bool{"metric": false, "by": false, "from": false, "to": false, "n": false, "filter": true}
	eventsParams  = map[string]bool{"from": false, "to": false, "type": true, "field": true, "limit": false, "cursor": false}
	alertsParams  = map[string]bool{"state": true, "severity": true, "filter": true, "from": false, "to": false, "limit": false}
	recentParams  = map[string]bool{"limit": false}
	liveTopParams = map[string]bool{"metric": false, "by": false, "n": false, "window_start": false}
)

// MaxRecent is the most entries GET /api/v1/alerts/recent returns (the
// notifier keeps the latest 100).
const MaxRecent = 100

// TopKResponse is the body of GET /api/v1/topk.
type TopKResponse struct {
	Metric string      `json:"metric"`
	By     string      `json:"by"`
	From   int64       `json:"from"`
	To     int64       `json:"to"`
	Top    []TopKEntry `json:"top"`
}

// TopKEntry is one label value: its summed value and event count.
type TopKEntry struct {
	Key   string  `json:"key"`
	Value float64 `json:"value"`
	Count int64   `json:"count"`
}

// EventsResponse is the body of GET /api/v1/events: one page, and the
// cursor of the next ("" on the last page).
type EventsResponse struct {
	Events     []events.Event `json:"events"`
	NextCursor string         `json:"next_cursor"`
}

// AlertsResponse is the body of GET /api/v1/alerts.
type AlertsResponse struct {
	Alerts []alerts.Alert `json:"alerts"`
}

// RecentResponse is the body of GET /api/v1/alerts/recent: the notifier's
// entries as it wrote them, newest first.
type RecentResponse struct {
	Alerts []json.RawMessage `json:"alerts"`
}

func (s *HTTPServer) topk(c echo.Context) error {
	params := c.QueryParams()
	if err := checkParams(params, topkParams); err != nil {
		return badRequest(err)
	}
	from, errFrom := parseTime("from", params.Get("from"))
	to, errTo := parseTime("to", params.Get("to"))
	n, errN := parseInt("n", params.Get("n"), 10)
	filters, errF := parseFilters(params["filter"])
	if err := errors.Join(errFrom, errTo, errN, errF); err != nil {
		return badRequest(err)
	}
	q, err := window.NewTopKQuery(params.Get("metric"), params.Get("by"), from, to, n, filters)
	if err != nil {
		return badRequest(err)
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), queryTimeout)
	defer cancel()
	top, err := s.app.Queries.Search.TopK(ctx, q)
	if err != nil {
		return err
	}
	resp := TopKResponse{Metric: q.Metric(), By: q.By(), From: q.From(), To: q.To(), Top: make([]TopKEntry, len(top))}
	for i, e := range top {
		resp.Top[i] = TopKEntry(e)
	}
	return c.JSON(http.StatusOK, resp)
}

// LiveTopKResponse is the body of GET /api/v1/topk/live: the ranking of
// one window from Redis; window_start -1 and no entries when the live view
// has no window of the metric.
type LiveTopKResponse struct {
	Metric      string      `json:"metric"`
	By          string      `json:"by"`
	WindowStart int64       `json:"window_start"`
	Top         []TopKEntry `json:"top"`
}

func (s *HTTPServer) liveTopK(c echo.Context) error {
	params := c.QueryParams()
	if err := checkParams(params, liveTopParams); err != nil {
		return badRequest(err)
	}
	metric, by := params.Get("metric"), params.Get("by")
	errs := []error{window.CheckMetric(metric)}
	if !window.ValidName(by) {
		errs = append(errs, window.InvalidParam("by", "%q is not a label name", by))
	}
	n, err := parseInt("n", params.Get("n"), 10)
	errs = append(errs, err)
	if err == nil && (n < 1 || n > window.MaxTopN) {
		errs = append(errs, window.InvalidParam("n", "%d is outside 1..%d", n, window.MaxTopN))
	}
	ws := int64(-1)
	if params.Has("window_start") {
		ws, err = parseTime("window_start", params.Get("window_start"))
		errs = append(errs, err)
		if err == nil && (ws < 0 || ws > window.MaxTimeMs) {
			errs = append(errs, window.InvalidParam("window_start", "%d ms is out of range", ws))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return badRequest(err)
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), queryTimeout)
	defer cancel()
	top, at, err := s.app.Queries.Top.Handle(ctx, metric, by, ws, n)
	if err != nil {
		return err
	}
	resp := LiveTopKResponse{Metric: metric, By: by, WindowStart: at, Top: make([]TopKEntry, len(top))}
	for i, e := range top {
		resp.Top[i] = TopKEntry(e)
	}
	return c.JSON(http.StatusOK, resp)
}

func (s *HTTPServer) events(c echo.Context) error {
	params := c.QueryParams()
	if err := checkParams(params, eventsParams); err != nil {
		return badRequest(err)
	}
	from, errFrom := parseTime("from", params.Get("from"))
	to, errTo := parseTime("to", params.Get("to"))
	limit, errL := parseInt("limit", params.Get("limit"), eventsearch.DefaultLimit)
	if err := errors.Join(errFrom, errTo, errL); err != nil {
		return badRequest(err)
	}
	q, err := eventsearch.NewQuery(from, to, params["type"], params["field"], limit, params.Get("cursor"))
	if err != nil {
		return badRequest(err)
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), queryTimeout)
	defer cancel()
	page, err := s.app.Queries.Search.Events(ctx, q)
	if err != nil {
		return err
	}
	if page.Events == nil {
		page.Events = []events.Event{}
	}
	return c.JSON(http.StatusOK, EventsResponse{Events: page.Events, NextCursor: page.Next})
}

func (s *HTTPServer) alerts(c echo.Context) error {
	params := c.QueryParams()
	if err := checkParams(params, alertsParams); err != nil {
		return badRequest(err)
	}
	var from, to int64
	var errs []error
	if params.Has("from") {
		var err error
		from, err = parseTime("from", params.Get("from"))
		errs = append(errs, err)
	}
	if params.Has("to") {
		var err error
		to, err = parseTime("to", params.Get("to"))
		errs = append(errs, err)
	}
	limit, err := parseInt("limit", params.Get("limit"), alertsearch.DefaultLimit)
	errs = append(errs, err)
	filters, err := parseFilters(params["filter"])
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return badRequest(err)
	}
	q, err := alertsearch.NewQuery(params["state"], params["severity"], filters, from, to, limit)
	if err != nil {
		return badRequest(err)
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), queryTimeout)
	defer cancel()
	list, err := s.app.Queries.Search.Alerts(ctx, q)
	if err != nil {
		return err
	}
	if list == nil {
		list = []alerts.Alert{}
	}
	return c.JSON(http.StatusOK, AlertsResponse{Alerts: list})
}

func (s *HTTPServer) recentAlerts(c echo.Context) error {
	params := c.QueryParams()
	if err := checkParams(params, recentParams); err != nil {
		return badRequest(err)
	}
	limit, err := parseInt("limit", params.Get("limit"), MaxRecent)
	if err != nil {
		return badRequest(err)
	}
	if limit < 1 || limit > MaxRecent {
		return badRequest(window.InvalidParam("limit", "%d is outside 1..%d", limit, MaxRecent))
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), queryTimeout)
	defer cancel()
	list, err := s.app.Queries.Search.Recent(ctx, limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, RecentResponse{Alerts: list})
}

// parseInt parses an optional decimal integer parameter; "" gives def.
func parseInt(param, s string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || len(s) > 9 {
		return 0, window.InvalidParam(param, "%q is not an integer", s)
	}
	return n, nil
}
