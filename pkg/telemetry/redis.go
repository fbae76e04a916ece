package telemetry

import (
	"fmt"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// TracingEnabled reports whether the global tracer provider is an SDK
// provider (spans are recorded and exported), as Setup installs when an
// OTLP endpoint is configured and tests install with an in-memory exporter.
func TracingEnabled() bool {
	_, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider)
	return ok
}

// InstrumentRedis makes every command of rdb a client span (redisotel),
// without the statement text (checkpoint commits carry whole states) and
// without caller lookups. When tracing is off (TracingEnabled is false at
// the time of the call) it adds no hook, so the hot path pays nothing.
func InstrumentRedis(rdb redis.UniversalClient) error {
	if !TracingEnabled() {
		return nil
	}
	if err := redisotel.InstrumentTracing(rdb, redisotel.WithDBStatement(false), redisotel.WithCallerEnabled(false)); err != nil {
		return fmt.Errorf("redis tracing: %w", err)
	}
	return nil
}
