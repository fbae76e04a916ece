// Package telemetry sets up OpenTelemetry tracing for a service: OTLP export
// when OTEL_EXPORTER_OTLP_ENDPOINT (or the traces-specific variable) is set,
// a no-op tracer provider otherwise.
package telemetry

import (
	"context"
	"fmt"
	"os"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
)

// ShutdownFunc flushes and stops telemetry; safe to call more than once.
type ShutdownFunc func(ctx context.Context) error

// Setup installs the global tracer provider and the W3C trace-context
// propagator for service "streamwatch-<service>". The exporter reads the
// standard OTEL_EXPORTER_OTLP_* variables (OTLP over HTTP/protobuf). With
// no endpoint configured nothing is exported and the returned shutdown is a
// no-op. It fails only when the exporter cannot be built from the variables.
func Setup(ctx context.Context, service string) (ShutdownFunc, error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("otlp trace exporter: %w", err)
	}
	// Schemaless, so the merge cannot conflict with the SDK's own schema URL.
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName("streamwatch-"+service)))
	if err != nil {
		return nil, fmt.Errorf("otel resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}
