package telemetry

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Inject writes the trace context of ctx (W3C "traceparent", "tracestate"
// and "baggage" with the global propagator) into md, a message's metadata
// or headers. It does nothing, and allocates nothing, when ctx carries no
// valid span context, so untraced messages stay as they were.
func Inject(ctx context.Context, md map[string]string) {
	if !trace.SpanContextFromContext(ctx).IsValid() || md == nil {
		return
	}
	otel.GetTextMapPropagator().Inject(ctx, propagation.MapCarrier(md))
}

// Extract returns ctx with the remote trace context found in md (see
// Inject); ctx itself when md holds none.
func Extract(ctx context.Context, md map[string]string) context.Context {
	if _, ok := md["traceparent"]; !ok {
		return ctx
	}
	return otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(md))
}

type linksKey struct{}

// WithLinks returns ctx carrying span links, for a span that a callee
// starts on behalf of many callers (a batched insert links to the spans of
// the records in the batch, OpenTelemetry's batch-processing convention).
func WithLinks(ctx context.Context, links []trace.Link) context.Context {
	if len(links) == 0 {
		return ctx
	}
	return context.WithValue(ctx, linksKey{}, links)
}

// Links returns the span links WithLinks put into ctx, or nil.
func Links(ctx context.Context) []trace.Link {
	l, _ := ctx.Value(linksKey{}).([]trace.Link)
	return l
}

// LinksOf returns one link per distinct valid span context of scs, in
// order: what WithLinks needs for a batch assembled from many callers.
func LinksOf(scs []trace.SpanContext) []trace.Link {
	var links []trace.Link
	seen := make(map[trace.SpanID]bool, len(scs))
	for _, sc := range scs {
		if !sc.IsValid() || seen[sc.SpanID()] {
			continue
		}
		seen[sc.SpanID()] = true
		links = append(links, trace.Link{SpanContext: sc})
	}
	return links
}
