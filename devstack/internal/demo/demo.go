// Package demo replays an Apache access log through a running Streamwatch
// (collector in, query API out) and summarises what the query API reports.
// The streamwatch-dev command uses it.
package demo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultChunkLines is how many log lines go in one collector request.
const DefaultChunkLines = 1000

// Client talks to the collector and the query API of one stack. Its
// methods are safe for concurrent use.
type Client struct {
	// HTTP sends the requests; nil means http.DefaultClient.
	HTTP *http.Client
	// CollectorURL and QueryURL are base URLs (http://host:port).
	CollectorURL string
	QueryURL     string
}

func (c *Client) http() *http.Client {
	if c.HTTP == nil {
		return http.DefaultClient
	}
	return c.HTTP
}

// Rejection is a log line the collector refused.
type Rejection struct {
	// Line is the 1-based line number in the file.
	Line int `json:"line"`
	// Error says why.
	Error string `json:"error"`
}

// Replay is the outcome of replaying one file.
type Replay struct {
	// Lines is the number of lines sent.
	Lines int
	// Accepted is the sum of the collector's accepted counts.
	Accepted int
	// Rejected lists every refused line, in file order.
	Rejected []Rejection
	// From and To bound the file's timestamps, whole hours in UTC: From is
	// the hour of the earliest line, To the hour after the latest one
	// (exclusive). Both are zero when no line had a timestamp.
	From, To time.Time
}

// Replay sends the file at path to the collector in chunks of chunkLines
// lines (DefaultChunkLines when < 1): POST /v1/logs?format=combined with the
// file's base name as source and the 1-based number of each chunk's first
// line as first_line. It stops at the first request that fails or is not
// answered with 202, returning what was sent so far.
func (c *Client) Replay(ctx context.Context, path string, chunkLines int) (Replay, error) {
	if chunkLines < 1 {
		chunkLines = DefaultChunkLines
	}
	f, err := os.Open(path)
	if err != nil {
		return Replay{}, fmt.Errorf("replay: %w", err)
	}
	defer f.Close()

	var (
		r          Replay
		chunk      bytes.Buffer
		firstLine  = 1
		inChunk    int
		minT, maxT time.Time
		source     = filepath.Base(path)
	)
	flush := func() error {
		if inChunk == 0 {
			return nil
		}
		accepted, rejected, err := c.postLogs(ctx, source, firstLine, chunk.Bytes())
		if err != nil {
			return fmt.Errorf("replay lines %d-%d: %w", firstLine, firstLine+inChunk-1, err)
		}
		r.Lines += inChunk
		r.Accepted += accepted
		r.Rejected = append(r.Rejected, rejected...)
		firstLine += inChunk
		inChunk = 0
		chunk.Reset()
		return nil
	}

	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if t, ok := LineTime(line); ok {
			if minT.IsZero() || t.Before(minT) {
				minT = t
			}
			if t.After(maxT) {
				maxT = t
			}
		}
		chunk.Write(line)
		chunk.WriteByte('\n')
		inChunk++
		if inChunk == chunkLines {
			if err := flush(); err != nil {
				return r, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return r, fmt.Errorf("replay: read %s: %w", path, err)
	}
	if err := flush(); err != nil {
		return r, err
	}
	if !minT.IsZero() {
		r.From = minT.UTC().Truncate(time.Hour)
		r.To = maxT.UTC().Truncate(time.Hour).Add(time.Hour)
	}
	return r, nil
}

// postLogs sends one chunk and decodes the 202 answer.
func (c *Client) postLogs(ctx context.Context, source string, firstLine int, body []byte) (accepted int, rejected []Rejection, err error) {
	q := url.Values{
		"format":     {"combined"},
		"source":     {source},
		"first_line": {strconv.Itoa(firstLine)},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.CollectorURL+"/v1/logs?"+q.Encode(), bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := c.http().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return 0, nil, statusError(resp)
	}
	var out struct {
		Accepted int         `json:"accepted"`
		Rejected []Rejection `json:"rejected"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, nil, fmt.Errorf("decode collector answer: %w", err)
	}
	return out.Accepted, out.Rejected, nil
}

// LineTime returns the time of an Apache log line: the first
// [02/Jan/2006:15:04:05 -0700] field. ok is false when there is none.
func LineTime(line []byte) (t time.Time, ok bool) {
	start := bytes.IndexByte(line, '[')
	if start < 0 {
		return time.Time{}, false
	}
	end := bytes.IndexByte(line[start:], ']')
	if end < 0 {
		return time.Time{}, false
	}
	t, err := time.Parse("02/Jan/2006:15:04:05 -0700", string(line[start+1:start+end]))
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

// SeriesQuery selects a metric over [From, To) in steps.
type SeriesQuery struct {
	// Metric is the metric name, e.g. "requests".
	Metric string
	// GroupBy is an optional label to split series by, e.g. "status_class".
	GroupBy string
	// From (inclusive) and To (exclusive) bound the range; sent in Unix ms.
	From, To time.Time
	// Step is the bucket width as the API spells it, e.g. "1h".
	Step string
}

// SeriesResponse is the query API's answer to a SeriesQuery.
type SeriesResponse struct {
	Metric string   `json:"metric"`
	Step   string   `json:"step"`
	Series []Series `json:"series"`
}

// Series is one labelled series of points.
type Series struct {
	Labels map[string]string `json:"labels"`
	Points []Point           `json:"points"`
}

// Point is one bucket: T is its start in Unix milliseconds.
type Point struct {
	T     int64   `json:"t"`
	Value float64 `json:"value"`
}

// Total returns the sum of every point of every series.
func (s SeriesResponse) Total() float64 {
	var sum float64
	for _, l := range s.Series {
		for _, p := range l.Points {
			sum += p.Value
		}
	}
	return sum
}

// QuerySeries runs GET /api/v1/series on the query API; any answer but 200
// is an error.
func (c *Client) QuerySeries(ctx context.Context, q SeriesQuery) (SeriesResponse, error) {
	v := url.Values{
		"metric": {q.Metric},
		"from":   {strconv.FormatInt(q.From.UnixMilli(), 10)},
		"to":     {strconv.FormatInt(q.To.UnixMilli(), 10)},
		"step":   {q.Step},
	}
	if q.GroupBy != "" {
		v.Set("group_by", q.GroupBy)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.QueryURL+"/api/v1/series?"+v.Encode(), nil)
	if err != nil {
		return SeriesResponse{}, err
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return SeriesResponse{}, fmt.Errorf("series %s: %w", q.Metric, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return SeriesResponse{}, fmt.Errorf("series %s: %w", q.Metric, statusError(resp))
	}
	var s SeriesResponse
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return SeriesResponse{}, fmt.Errorf("series %s: decode: %w", q.Metric, err)
	}
	return s, nil
}

// WaitForTotal polls QuerySeries(q) every interval until its Total equals
// want, and returns that answer. It gives up when ctx is done, with an
// error that has the last total seen (or the last error).
func (c *Client) WaitForTotal(ctx context.Context, q SeriesQuery, want float64, interval time.Duration) (SeriesResponse, error) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var lastErr error
	for {
		s, err := c.QuerySeries(ctx, q)
		switch {
		case err == nil && s.Total() == want:
			return s, nil
		case err == nil:
			lastErr = fmt.Errorf("%s total %v, want %v", q.Metric, s.Total(), want)
		case !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded):
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return SeriesResponse{}, fmt.Errorf("wait for %s: %w (last: %w)", q.Metric, ctx.Err(), lastErr)
		case <-ticker.C:
		}
	}
}

// WriteHourlyTable writes one row per hour that has requests: the hour in
// UTC, the request count, and the 4xx and 5xx counts taken from byClass
// (series labelled status_class), then a totals row.
func WriteHourlyTable(w io.Writer, requests, byClass SeriesResponse) error {
	type row struct{ requests, c4xx, c5xx float64 }
	rows := make(map[int64]*row)
	var hours []int64
	get := func(t int64) *row {
		r, ok := rows[t]
		if !ok {
			r = &row{}
			rows[t] = r
			hours = append(hours, t)
		}
		return r
	}
	for _, l := range requests.Series {
		for _, p := range l.Points {
			get(p.T).requests += p.Value
		}
	}
	for _, l := range byClass.Series {
		for _, p := range l.Points {
			switch l.Labels["status_class"] {
			case "4xx":
				get(p.T).c4xx += p.Value
			case "5xx":
				get(p.T).c5xx += p.Value
			}
		}
	}
	slices.Sort(hours)

	var b strings.Builder
	const format = "%-17s %10s %8s %8s\n"
	fmt.Fprintf(&b, format, "hour (UTC)", "requests", "4xx", "5xx")
	var total row
	for _, t := range hours {
		r := rows[t]
		if r.requests == 0 && r.c4xx == 0 && r.c5xx == 0 {
			continue
		}
		total.requests += r.requests
		total.c4xx += r.c4xx
		total.c5xx += r.c5xx
		fmt.Fprintf(&b, format, time.UnixMilli(t).UTC().Format("2006-01-02 15:04"), num(r.requests), num(r.c4xx), num(r.c5xx))
	}
	fmt.Fprintf(&b, format, "total", num(total.requests), num(total.c4xx), num(total.c5xx))
	_, err := io.WriteString(w, b.String())
	return err
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// statusError describes an unexpected answer with the start of its body.
func statusError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return fmt.Errorf("%s %s: %s: %s", resp.Request.Method, resp.Request.URL.Path, resp.Status, bytes.TrimSpace(body))
}
