package service

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/stream"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/app"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/domain/window"
)

// instrumentationName names the aggregator's meter.
const instrumentationName = "github.com/streamwatch/streamwatch/services/aggregator"

// observeGauges registers the aggregator's state gauges, read from
// op.Gauges() at each collection, per events.raw partition this instance
// processed: open window keys, remembered event ids, estimated state bytes,
// and the watermark delay (processing time minus the partition's
// watermark, seconds; partitions without a watermark yet are left out).
// It returns the function that unregisters them.
func observeGauges(op *app.Aggregate, now func() time.Time) (func() error, error) {
	m := otel.Meter(instrumentationName)
	windows, err1 := m.Int64ObservableGauge("streamwatch.aggregator.windows.open", metric.WithUnit("{window}"),
		metric.WithDescription("Active window keys (metric, labels, window) of a partition"))
	seen, err2 := m.Int64ObservableGauge("streamwatch.aggregator.seen_ids", metric.WithUnit("{event}"),
		metric.WithDescription("Event ids a partition remembers for deduplication"))
	bytes, err3 := m.Int64ObservableGauge("streamwatch.aggregator.state.size", metric.WithUnit("By"),
		metric.WithDescription("Estimated heap of a partition's window state"))
	delay, err4 := m.Float64ObservableGauge("streamwatch.aggregator.watermark.delay", metric.WithUnit("s"),
		metric.WithDescription("Processing time minus the partition's event-time watermark"))
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return nil, fmt.Errorf("aggregator gauges: %w", err)
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		t := now().UnixMilli()
		for part, g := range op.Gauges() {
			attrs := metric.WithAttributes(attribute.String("partition", strconv.Itoa(int(part))))
			o.ObserveInt64(windows, int64(g.Windows), attrs)
			o.ObserveInt64(seen, int64(g.SeenIDs), attrs)
			o.ObserveInt64(bytes, g.Bytes, attrs)
			if g.Watermark > 0 {
				o.ObserveFloat64(delay, float64(t-g.Watermark)/1000, attrs)
			}
		}
		return nil
	}, windows, seen, bytes, delay)
	if err != nil {
		return nil, fmt.Errorf("aggregator gauges: %w", err)
	}
	return reg.Unregister, nil
}

// countingOperator is the aggregator's operator plus two counters of what
// Apply emits: late events (the events of its events.late records) and
// window results records by topic. Decoding a late record to count its
// events costs only when events are late.
type countingOperator struct {
	*app.Aggregate
	late   metric.Int64Counter
	output metric.Int64Counter
}

var _ stream.Operator[*window.State] = countingOperator{}

func newCountingOperator(op *app.Aggregate) (countingOperator, error) {
	m := otel.Meter(instrumentationName)
	late, err1 := m.Int64Counter("streamwatch.aggregator.late_events", metric.WithUnit("{event}"),
		metric.WithDescription("Events too late for their windows, sent to events.late"))
	output, err2 := m.Int64Counter("streamwatch.aggregator.outputs", metric.WithUnit("{record}"),
		metric.WithDescription("Records emitted by the windowing operator, by topic (before the checkpoint commit)"))
	if err := errors.Join(err1, err2); err != nil {
		return countingOperator{}, fmt.Errorf("aggregator counters: %w", err)
	}
	return countingOperator{Aggregate: op, late: late, output: output}, nil
}

// Apply implements stream.Operator.
func (c countingOperator) Apply(ctx context.Context, st *window.State, msg *message.Message, offset int64) ([]stream.Output, error) {
	outs, err := c.Aggregate.Apply(ctx, st, msg, offset)
	if err != nil {
		return outs, err
	}
	c.count(ctx, outs)
	return outs, nil
}

// Tick implements stream.Operator.
func (c countingOperator) Tick(ctx context.Context, st *window.State, now time.Time) ([]stream.Output, bool, error) {
	outs, changed, err := c.Aggregate.Tick(ctx, st, now)
	if err == nil {
		c.count(ctx, outs)
	}
	return outs, changed, err
}

func (c countingOperator) count(ctx context.Context, outs []stream.Output) {
	for i := range outs {
		c.output.Add(ctx, 1, metric.WithAttributes(attribute.String("topic", outs[i].Topic)))
		if outs[i].Topic != messaging.TopicEventsLate {
			continue
		}
		if evs, err := events.DecodeBatch(outs[i].Payload); err == nil {
			c.late.Add(ctx, int64(len(evs)))
		}
	}
}
