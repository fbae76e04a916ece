package ports

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/streamwatch/streamwatch/pkg/httpserver"
	"github.com/streamwatch/streamwatch/services/query/internal/app/query"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/window"
)

var (
	batchRunParams = map[string]bool{"min_rel_diff": false, "limit": false}
	runIDRule      = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)
)

// MaxDivergences bounds the windows one batch report lists.
const MaxDivergences = 10_000

// BatchRunResponse is the body of GET /api/v1/batch/runs/{id}.
type BatchRunResponse struct {
	Run BatchRunJSON `json:"run"`
	// Compared is how many windows were compared; Divergent how many
	// differ (Divergences lists at most limit of them).
	Compared    int              `json:"compared"`
	Divergent   int              `json:"divergent"`
	Divergences []DivergenceJSON `json:"divergences"`
}

// BatchRunJSON is a batch run.
type BatchRunJSON struct {
	ID         string   `json:"id"`
	From       int64    `json:"from"`
	To         int64    `json:"to"`
	Metrics    []string `json:"metrics"`
	Skipped    []string `json:"skipped"`
	Status     string   `json:"status"`
	Windows    uint64   `json:"windows"`
	StartedMs  int64    `json:"started"`
	FinishedMs int64    `json:"finished"`
	Error      string   `json:"error,omitempty"`
}

// DivergenceJSON is one window where the layers differ.
type DivergenceJSON struct {
	Metric      string            `json:"metric"`
	Labels      map[string]string `json:"labels"`
	WindowStart int64             `json:"window_start"`
	WindowEnd   int64             `json:"window_end"`
	Speed       float64           `json:"speed"`
	Batch       float64           `json:"batch"`
	Diff        float64           `json:"diff"`
	RelDiff     float64           `json:"rel_diff"`
	SpeedOnly   bool              `json:"speed_only,omitempty"`
	BatchOnly   bool              `json:"batch_only,omitempty"`
}

func (s *HTTPServer) batchRun(c echo.Context) error {
	params := c.QueryParams()
	var errs []error
	errs = append(errs, checkParams(params, batchRunParams))
	id := c.Param("id")
	if !runIDRule.MatchString(id) {
		errs = append(errs, window.InvalidParam("id", "%q is not a run id ([A-Za-z0-9_.:-], 1..64)", id))
	}
	tol := 0.0
	if v := params.Get("min_rel_diff"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || f < 0 || f > 1 {
			errs = append(errs, window.InvalidParam("min_rel_diff", "%q is not a number in 0..1", v))
		}
		tol = f
	}
	limit, err := parseInt("limit", params.Get("limit"), 1000)
	errs = append(errs, err)
	if err == nil && (limit < 1 || limit > MaxDivergences) {
		errs = append(errs, window.InvalidParam("limit", "%d is outside 1..%d", limit, MaxDivergences))
	}
	if err := errors.Join(errs...); err != nil {
		return badRequest(err)
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), queryTimeout)
	defer cancel()
	rep, err := s.app.Queries.Batch.Handle(ctx, id, tol)
	if errors.Is(err, query.ErrRunNotFound) {
		return httpserver.Error(http.StatusNotFound, "batch run %s not found", id)
	}
	if err != nil {
		return err
	}
	r := rep.Run
	resp := BatchRunResponse{
		Run: BatchRunJSON{ID: r.ID, From: r.FromMs, To: r.ToMs, Metrics: nonNil(r.Metrics), Skipped: nonNil(r.Skipped), Status: r.Status,
			Windows: r.Windows, StartedMs: r.StartedMs, FinishedMs: r.FinishedMs, Error: r.Error},
		Compared: rep.Compared, Divergent: len(rep.Divergences), Divergences: []DivergenceJSON{},
	}
	for i, d := range rep.Divergences {
		if i >= limit {
			break
		}
		labels := d.Labels
		if labels == nil {
			labels = map[string]string{}
		}
		resp.Divergences = append(resp.Divergences, DivergenceJSON{Metric: d.Metric, Labels: labels, WindowStart: d.Start, WindowEnd: d.End,
			Speed: d.Speed, Batch: d.Batch, Diff: d.Diff, RelDiff: d.RelDiff, SpeedOnly: d.SpeedOnly, BatchOnly: d.BatchOnly})
	}
	return c.JSON(http.StatusOK, resp)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// batchRunTimeout bounds a batch run started through the API.
const batchRunTimeout = 10 * time.Minute

// BatchRunRequest is the body of POST /api/v1/batch/runs.
type BatchRunRequest struct {
	// From and To bound the event-time range (RFC 3339 or ms); whole
	// windows inside it are recomputed.
	From json.RawMessage `json:"from"`
	To   json.RawMessage `json:"to"`
	// Metrics limits the run to these definitions; empty: all.
	Metrics []string `json:"metrics,omitempty"`
}

// startBatchRun serves POST /api/v1/batch/runs: it runs the batch job
// synchronously (at most 10 minutes) and answers 201 with the run, or 400
// for bad input.
func (s *HTTPServer) startBatchRun(c echo.Context) error {
	if err := checkParams(c.QueryParams(), noParams); err != nil {
		return badRequest(err)
	}
	b, err := readBody(c)
	if err != nil {
		return err
	}
	var req BatchRunRequest
	if err := decodeStrict(b, &req); err != nil {
		return err
	}
	from, errFrom := parseTime("from", jsonScalar(req.From))
	to, errTo := parseTime("to", jsonScalar(req.To))
	errs := []error{errFrom, errTo}
	if errFrom == nil && errTo == nil {
		errs = append(errs, window.CheckRange(from, to))
	}
	for _, m := range req.Metrics {
		errs = append(errs, window.CheckMetric(m))
	}
	if err := errors.Join(errs...); err != nil {
		return badRequest(err)
	}
	// The run is synchronous and may outlast HTTP_WRITE_TIMEOUT.
	httpserver.ExtendWriteDeadline(c.Request().Context(), batchRunTimeout+time.Minute)
	ctx, cancel := context.WithTimeout(c.Request().Context(), batchRunTimeout)
	defer cancel()
	run, err := s.app.Commands.RunBatch.Handle(ctx, "b"+time.Now().UTC().Format("20060102T150405.000"), from, to, req.Metrics)
	if err != nil {
		return adminError(err)
	}
	return c.JSON(http.StatusCreated, BatchRunJSON{ID: run.ID, From: run.FromMs, To: run.ToMs, Metrics: nonNil(run.Metrics),
		Skipped: nonNil(run.Skipped), Status: run.Status, Windows: run.Windows, StartedMs: run.StartedMs, FinishedMs: run.FinishedMs, Error: run.Error})
}

// jsonScalar returns a JSON string's content or a number's text.
func jsonScalar(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return strings.TrimSpace(string(raw))
}
