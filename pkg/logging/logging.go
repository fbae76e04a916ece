// Package logging builds the JSON slog logger every service uses and bridges
// it to Watermill.
package logging

import (
	"io"
	"log/slog"
	"strings"

	"github.com/ThreeDotsLabs/watermill"
)

// New returns a JSON logger writing to w at the given level ("debug",
// "info", "warn", "error"; anything else is info), with a "service" attribute.
// Records logged with a context that carries a span get "trace_id" and
// "span_id" (TraceHandler).
func New(w io.Writer, level, service string) *slog.Logger {
	var l slog.Level
	switch strings.ToLower(level) {
	case "debug":
		l = slog.LevelDebug
	case "warn", "warning":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		l = slog.LevelInfo
	}
	return slog.New(NewTraceHandler(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))).With("service", service)
}

// Watermill adapts logger to Watermill's LoggerAdapter. Watermill logs
// every subscription, handler and consumer-group event at info, which is
// noise next to the services' own lifecycle logs, so its info goes to slog's
// debug and its trace below debug; warnings and errors keep their level.
func Watermill(logger *slog.Logger) watermill.LoggerAdapter {
	return watermill.NewSlogLoggerWithLevelMapping(logger, map[slog.Level]slog.Level{
		watermill.LevelTrace: slog.LevelDebug - 4,
		slog.LevelInfo:       slog.LevelDebug,
	})
}
