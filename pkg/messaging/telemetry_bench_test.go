package messaging

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"

	"github.com/streamwatch/streamwatch/pkg/telemetry"
)

// BenchmarkInstrument measures what the router's tracing-and-metrics
// middleware adds per handled record: with the global no-op providers
// (tracing and metrics off), and with the SDK meter provider and the
// Prometheus exporter that telemetry.Setup installs (tracing off: the
// production default without OTEL_EXPORTER_OTLP_ENDPOINT).
func BenchmarkInstrument(b *testing.B) {
	run := func(b *testing.B) {
		ins, err := newInstruments()
		if err != nil {
			b.Fatal(err)
		}
		h := instrument(ins)(func(*message.Message) ([]*message.Message, error) { return nil, nil })
		msg := message.NewMessage("id", nil)
		msg.Metadata.Set(MetaCount, "500")
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			msg.SetContext(ctx)
			if _, err := h(msg); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("noop", run)
	b.Run("prometheus", func(b *testing.B) {
		mp, err := telemetry.NewMeterProvider(nil, prometheus.NewRegistry())
		if err != nil {
			b.Fatal(err)
		}
		prev := otel.GetMeterProvider()
		otel.SetMeterProvider(mp)
		defer otel.SetMeterProvider(prev)
		run(b)
	})
}
