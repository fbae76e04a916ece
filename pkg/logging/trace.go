package logging

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// TraceHandler wraps a slog.Handler and adds "trace_id" and "span_id"
// (lower-case hex, as W3C trace context and Jaeger show them) to every
// record logged with a context that carries a valid span context (the
// *Context logging methods); other records pass through unchanged.
type TraceHandler struct{ next slog.Handler }

var _ slog.Handler = TraceHandler{}

// NewTraceHandler returns next wrapped in a TraceHandler.
func NewTraceHandler(next slog.Handler) TraceHandler { return TraceHandler{next: next} }

// Enabled implements slog.Handler.
func (h TraceHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h TraceHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx != nil {
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			r = r.Clone()
			r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
		}
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h TraceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return TraceHandler{next: h.next.WithAttrs(as)}
}

// WithGroup implements slog.Handler.
func (h TraceHandler) WithGroup(name string) slog.Handler {
	return TraceHandler{next: h.next.WithGroup(name)}
}
