// Package httpserver builds the echo server every Streamwatch service runs:
// JSON errors, panic recovery, /healthz, /readyz and /metrics, server spans
// (OpenTelemetry, otelhttp) named by route, and graceful shutdown. Body
// limits are the handlers' business (each knows its own).
package httpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamwatch/streamwatch/pkg/telemetry"
)

// ReadyFunc reports whether a dependency is ready; nil means ready.
type ReadyFunc func(ctx context.Context) error

// ErrorBody is the JSON body of every 4xx/5xx answer.
type ErrorBody struct {
	// Code is a stable, machine-readable slug (e.g. "bad_request").
	Code string `json:"code"`
	// Message is for humans and names the problem.
	Message string `json:"message"`
}

// New returns an echo instance with Recover, a JSON error handler, the
// health endpoints and the metrics: GET /healthz answers 200 while the
// process runs; GET /readyz answers 200 when every check returns nil within
// 2 s, otherwise 503 with the failing check's name and error; GET /metrics
// serves telemetry.MetricsHandler (Prometheus text format). A middleware
// names the server span of Handler "<METHOD> <route>" and labels the HTTP
// metrics with the route. A nil logger discards.
func New(logger *slog.Logger, checks map[string]ReadyFunc) *echo.Echo {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.Use(middleware.Recover(), routeSpan)
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		code := http.StatusInternalServerError
		body := ErrorBody{Code: "internal", Message: "internal error"}
		var he *echo.HTTPError
		if errors.As(err, &he) {
			code = he.Code
			body.Code = slug(code)
			body.Message = fmt.Sprint(he.Message)
		} else {
			logger.ErrorContext(c.Request().Context(), "request failed", "path", c.Path(), "error", err.Error())
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(code)
			return
		}
		_ = c.JSON(code, body)
	}
	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		for name, check := range checks {
			if err := check(ctx); err != nil {
				return c.JSON(http.StatusServiceUnavailable, ErrorBody{Code: "not_ready", Message: name + ": " + err.Error()})
			}
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
	})
	e.GET("/metrics", echo.WrapHandler(telemetry.MetricsHandler()))
	return e
}

// routeSpan names the otelhttp server span after the matched route (the
// span starts before echo routes the request) and adds http.route to the
// span and to the request metrics.
func routeSpan(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		route := c.Path()
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			span.SetName(c.Request().Method + " " + route)
			span.SetAttributes(attribute.String("http.route", route))
		}
		if l, ok := otelhttp.LabelerFromContext(ctx); ok {
			l.Add(attribute.String("http.route", route))
		}
		return next(c)
	}
}

// untraced are the paths probes and scrapers call: no spans for them.
var untraced = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// Handler returns e wrapped in otelhttp: a server span per request (the
// parent comes from the request's W3C traceparent header), named by
// routeSpan, and the http.server.* metrics; health probes and /metrics are
// not traced. Run serves it; in-process tests serve it with httptest.
func Handler(e *echo.Echo) http.Handler {
	return otelhttp.NewHandler(e, "http.server",
		otelhttp.WithFilter(func(r *http.Request) bool { return !untraced[r.URL.Path] }))
}

// Error returns an *echo.HTTPError whose JSON body has the given status
// and message; the code slug comes from the status.
func Error(status int, format string, args ...any) error {
	return echo.NewHTTPError(status, fmt.Sprintf(format, args...))
}

func slug(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "bad_request"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusRequestEntityTooLarge:
		return "payload_too_large"
	case http.StatusUnsupportedMediaType:
		return "unsupported_media_type"
	case http.StatusUnprocessableEntity:
		return "unprocessable"
	case http.StatusTooManyRequests:
		return "rate_limited"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	if status >= 500 {
		return "internal"
	}
	return "error"
}

// Run serves Handler(e) on addr until ctx is done, then shuts down gracefully within
// timeout. It returns nil after a clean shutdown and the listen error
// otherwise (e.g. the address is in use).
func Run(ctx context.Context, e *echo.Echo, addr string, timeout time.Duration) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           Handler(e),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      0, // SSE streams stay open; handlers bound their own work.
		IdleTimeout:       120 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", addr, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown http %s: %w", addr, err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", addr, err)
	}
	return nil
}
