// Package ports exposes the collector's use cases over HTTP (echo): it
// decodes requests, calls package app and maps results and errors to
// status codes and JSON bodies. It logs nothing per request.
package ports

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/streamwatch/streamwatch/pkg/auth"
	"github.com/streamwatch/streamwatch/pkg/httpserver"
	"github.com/streamwatch/streamwatch/services/collector/internal/app"
)

// ContentTypeNDJSON selects NDJSON parsing of POST /v1/events bodies.
const ContentTypeNDJSON = "application/x-ndjson"

// IngestResponse is the JSON body of a 202 answer, and of a 400 answer when
// every item was rejected (then Code is "bad_request" and Message the first
// item's error). T is EventRejection or LineRejection.
type IngestResponse[T any] struct {
	// Code is set on errors only ("bad_request").
	Code string `json:"code,omitempty"`
	// Message is set on errors only: the first rejection's reason.
	Message string `json:"message,omitempty"`
	// Accepted is the number of events published and acknowledged by Kafka.
	Accepted int `json:"accepted"`
	// Rejected lists the invalid items in input order; omitted when none.
	Rejected []T `json:"rejected,omitempty"`
}

// EventRejection is a rejected item of POST /v1/events.
type EventRejection struct {
	// Index is the 0-based position in the JSON array, or the 0-based line
	// index in an NDJSON body.
	Index int64 `json:"index"`
	// Error names the problem, e.g. `field "status": expected a number, got string`.
	Error string `json:"error"`
}

// LineRejection is a rejected line of POST /v1/logs.
type LineRejection struct {
	// Line is the 1-based line number in the source (first_line + offset).
	Line int64 `json:"line"`
	// Error names the problem, e.g. `status "abc" is not a number`.
	Error string `json:"error"`
}

// HTTPServer serves the ingest endpoints. Safe for concurrent use.
type HTTPServer struct {
	app          app.Application
	maxBodyBytes int64
	guard        *auth.Guard
}

// NewHTTPServer returns the handlers for application; request bodies larger
// than maxBodyBytes bytes are refused with 413. guard admits requests (an
// API key with the ingest scope, within its rate limit).
func NewHTTPServer(application app.Application, maxBodyBytes int64, guard *auth.Guard) *HTTPServer {
	return &HTTPServer{app: application, maxBodyBytes: maxBodyBytes, guard: guard}
}

// Register adds POST /v1/events, POST /v1/samples and POST /v1/logs to e,
// each behind guard.Require(auth.ScopeIngest): 401 without a valid key,
// 403 for a key without the ingest scope, 429 with Retry-After beyond the
// key's rate. The key's tenant scopes the events' source (see app.Limits).
func (s *HTTPServer) Register(e *echo.Echo) {
	ingest := s.guard.Require(auth.ScopeIngest, false)
	e.POST("/v1/events", s.PostEvents, ingest)
	e.POST("/v1/samples", s.PostSamples, ingest)
	e.POST("/v1/logs", s.PostLogs, ingest)
}

// tenant returns the tenant of the request's API key ("" for none).
func tenant(c echo.Context) string {
	if k := auth.FromContext(c); k != nil {
		return k.Tenant
	}
	return ""
}

// PostEvents handles POST /v1/events: a JSON array of events, or NDJSON
// (Content-Type application/x-ndjson, or a body whose first non-space byte
// is not '['). It answers only after Kafka acknowledged the valid events:
//
//   - 202 {"accepted": n, "rejected": [{"index": i, "error": "..."}]} when at
//     least one event was accepted ("rejected" omitted when empty);
//   - 400 {"code": "bad_request", "message": first error, "accepted": 0,
//     "rejected": [...]} when every item was invalid;
//   - 400 ErrorBody for an empty body or array ("no events") or a malformed
//     JSON array (the message names the byte offset);
//   - 413 when the body exceeds the limit, 415 for a Content-Encoding;
//   - 503 {"code": "unavailable"} with Retry-After when Kafka did not
//     acknowledge; nothing counts as accepted then.
func (s *HTTPServer) PostEvents(c echo.Context) error {
	return s.ingestJSON(c, s.app.IngestEvents)
}

// PostSamples handles POST /v1/samples: metric samples
// {"series": "cpu", "labels": {"host": "a"}, "value": 0.93, "timestamp":
// "2026-11-21T10:00:00Z" or ms}, as a JSON array or NDJSON, published to
// events.raw as metric_sample events keyed by series and labels. Each
// sample's event id is derived from its series, labels and timestamp, so a
// re-sent series is deduplicated. Answers exactly as PostEvents.
func (s *HTTPServer) PostSamples(c echo.Context) error {
	return s.ingestJSON(c, s.app.IngestSamples)
}

// ingestJSON reads a JSON array or NDJSON body, hands it to h and answers
// as PostEvents describes; PostEvents and PostSamples differ only in h.
func (s *HTTPServer) ingestJSON(c echo.Context, h *app.IngestEventsHandler) error {
	body, err := s.body(c)
	if err != nil {
		return err
	}
	res, err := h.Handle(c.Request().Context(), app.IngestEvents{
		Body:   body,
		NDJSON: isNDJSON(c.Request().Header.Get(echo.HeaderContentType)),
		Tenant: tenant(c),
		Size:   c.Request().ContentLength,
	})
	if err != nil {
		return s.httpError(c, err)
	}
	return respond(c, res, func(r app.Rejection) EventRejection {
		return EventRejection{Index: r.Position, Error: r.ErrorMessage()}
	})
}

// PostLogs handles POST /v1/logs?format=combined&source=NAME&first_line=N:
// a body of access-log lines. format defaults to combined (the only one
// supported); source names the log and makes event ids "source:line";
// first_line (default 1) is the source line number of the body's first
// line. Answers as PostEvents, with rejections {"line": L, "error": "..."}
// where L is the 1-based source line; 400 ErrorBody for an unsupported
// format, a first_line that is not a positive integer, a source that is too
// long, or a body without lines ("no log lines").
func (s *HTTPServer) PostLogs(c echo.Context) error {
	cmd := app.IngestLogs{
		Format: c.QueryParam("format"),
		Source: c.QueryParam("source"),
		Tenant: tenant(c),
	}
	if v := c.QueryParam("first_line"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return httpserver.Error(http.StatusBadRequest, "first_line %q is not a positive integer", v)
		}
		cmd.FirstLine = n
	}
	body, err := s.body(c)
	if err != nil {
		return err
	}
	cmd.Body = body
	cmd.Size = c.Request().ContentLength
	res, err := s.app.IngestLogs.Handle(c.Request().Context(), cmd)
	if err != nil {
		return s.httpError(c, err)
	}
	return respond(c, res, func(r app.Rejection) LineRejection {
		return LineRejection{Line: r.Position, Error: r.ErrorMessage()}
	})
}

// body returns the request body limited to maxBodyBytes: a declared
// Content-Length over the limit is refused at once, an undeclared one stops
// with *http.MaxBytesError once the limit is read.
func (s *HTTPServer) body(c echo.Context) (io.Reader, error) {
	req := c.Request()
	if enc := req.Header.Get(echo.HeaderContentEncoding); enc != "" && enc != "identity" {
		return nil, httpserver.Error(http.StatusUnsupportedMediaType, "Content-Encoding %q is not supported; send the body uncompressed", enc)
	}
	if req.ContentLength > s.maxBodyBytes {
		return nil, s.tooLarge()
	}
	return http.MaxBytesReader(c.Response().Writer, req.Body, s.maxBodyBytes), nil
}

func (s *HTTPServer) tooLarge() error {
	return httpserver.Error(http.StatusRequestEntityTooLarge, "request body larger than the limit of %d bytes (COLLECTOR_MAX_BODY_BYTES)", s.maxBodyBytes)
}

// httpError maps a use-case error to an echo HTTP error.
func (s *HTTPServer) httpError(c echo.Context, err error) error {
	var reqErr *app.RequestError
	switch {
	case errors.As(err, &reqErr):
		return httpserver.Error(http.StatusBadRequest, "%s", reqErr.Reason)
	case errors.Is(err, app.ErrUnavailable):
		c.Response().Header().Set("Retry-After", "1")
		return httpserver.Error(http.StatusServiceUnavailable, "%s; nothing was accepted, retry the request", err.Error())
	}
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return s.tooLarge()
	}
	if errors.Is(err, app.ErrBody) {
		return httpserver.Error(http.StatusBadRequest, "%s", err.Error())
	}
	return fmt.Errorf("ingest: %w", err)
}

// respond writes 202 with the result, or 400 when nothing was accepted.
func respond[T any](c echo.Context, res app.Result, item func(app.Rejection) T) error {
	out := IngestResponse[T]{Accepted: res.Accepted}
	for _, r := range res.Rejected {
		out.Rejected = append(out.Rejected, item(r))
	}
	if res.Accepted == 0 && len(res.Rejected) > 0 {
		out.Code = "bad_request"
		out.Message = res.Rejected[0].ErrorMessage()
		return c.JSON(http.StatusBadRequest, out)
	}
	return c.JSON(http.StatusAccepted, out)
}

// isNDJSON reports whether the Content-Type header selects NDJSON.
func isNDJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == ContentTypeNDJSON
}
