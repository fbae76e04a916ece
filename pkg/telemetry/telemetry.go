// Package telemetry sets up OpenTelemetry for a service: traces exported
// with OTLP when OTEL_EXPORTER_OTLP_ENDPOINT (or the traces-specific
// variable) is set, a no-op tracer provider otherwise; metrics from an SDK
// meter provider read by the Prometheus exporter, served at GET /metrics by
// package httpserver. It also holds the small helpers the other packages
// share: the W3C trace-context propagation through message metadata and
// span links carried in a context.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
)

// ShutdownFunc flushes and stops telemetry; safe to call more than once.
type ShutdownFunc func(ctx context.Context) error

// ServiceName returns the OpenTelemetry service name of a Streamwatch
// service: "streamwatch-<service>".
func ServiceName(service string) string { return "streamwatch-" + service }

// Setup installs, for service "streamwatch-<service>":
//
//   - the W3C trace-context and baggage propagator;
//   - a tracer provider exporting with OTLP over HTTP/protobuf or gRPC
//     (OTEL_EXPORTER_OTLP_PROTOCOL), configured by the standard
//     OTEL_EXPORTER_OTLP_* and OTEL_BSP_* variables, when
//     OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set
//     (otherwise the global no-op provider stays: spans cost next to nothing
//     and nothing is exported);
//   - a meter provider whose instruments are read by the OpenTelemetry
//     Prometheus exporter, registered on prometheus.DefaultRegisterer (next
//     to the Go runtime and process collectors) and served by MetricsHandler.
//
// Setup is meant to run once per process (boot.Main calls it): a second
// call would register a second exporter, and each metric would be served
// twice. It fails when the trace exporter cannot be built from the variables (e.g. an
// unsupported protocol).
func Setup(ctx context.Context, service string) (ShutdownFunc, error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	// Schemaless, so the merge cannot conflict with the SDK's own schema URL.
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(ServiceName(service))))
	if err != nil {
		return nil, fmt.Errorf("otel resource: %w", err)
	}
	var tp *sdktrace.TracerProvider
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
		exp, err := newTraceExporter(ctx)
		if err != nil {
			return nil, err
		}
		tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	}
	mp, err := NewMeterProvider(res, prometheus.DefaultRegisterer)
	if err != nil {
		if tp != nil {
			_ = tp.Shutdown(ctx)
		}
		return nil, err
	}
	otel.SetMeterProvider(mp)
	shutdowns := []ShutdownFunc{mp.Shutdown}
	if tp != nil {
		otel.SetTracerProvider(tp)
		shutdowns = append(shutdowns, tp.Shutdown)
	}
	return func(ctx context.Context) error {
		var errs []error
		for i := len(shutdowns) - 1; i >= 0; i-- {
			errs = append(errs, shutdowns[i](ctx))
		}
		return errors.Join(errs...)
	}, nil
}

// newTraceExporter returns the OTLP span exporter for the protocol in
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL:
// "http/protobuf" (the default) or "grpc". Both exporters read the other
// OTEL_EXPORTER_OTLP_* variables themselves.
func newTraceExporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	name, proto := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		name, proto = "OTEL_EXPORTER_OTLP_PROTOCOL", os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var exp sdktrace.SpanExporter
	var err error
	switch proto {
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, fmt.Errorf("%s=%q: want http/protobuf or grpc", name, proto)
	}
	if err != nil {
		return nil, fmt.Errorf("otlp trace exporter (%s): %w", proto, err)
	}
	return exp, nil
}

// NewMeterProvider returns an SDK meter provider for res whose metrics are
// collected by an OpenTelemetry Prometheus exporter registered on reg. Use
// a fresh prometheus.NewRegistry() in tests. It fails when reg already
// holds an exporter.
func NewMeterProvider(res *resource.Resource, reg prometheus.Registerer) (*sdkmetric.MeterProvider, error) {
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	return sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res)), nil
}

// MetricsHandler serves the metrics of prometheus.DefaultGatherer (the
// meter provider of Setup, the Go runtime and the process) in the
// Prometheus text exposition format.
func MetricsHandler() http.Handler { return promhttp.Handler() }
