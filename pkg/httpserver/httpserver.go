// Package httpserver builds the echo server every Streamwatch service runs:
// JSON errors, panic recovery, /healthz and /readyz, and graceful shutdown.
// Body limits are the handlers' business (each knows its own).
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

// New returns an echo instance with Recover, a JSON error handler, and the
// health endpoints: GET /healthz answers 200 while the process runs; GET
// /readyz answers 200 when every check returns nil within 2 s, otherwise 503
// with the failing check's name and error.
// A nil logger discards.
func New(logger *slog.Logger, checks map[string]ReadyFunc) *echo.Echo {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.Use(middleware.Recover())
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
			logger.Error("request failed", "path", c.Path(), "error", err.Error())
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
	return e
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

// Run serves e on addr until ctx is done, then shuts down gracefully within
// timeout. It returns nil after a clean shutdown and the listen error
// otherwise (e.g. the address is in use).
func Run(ctx context.Context, e *echo.Echo, addr string, timeout time.Duration) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           e,
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
