package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/streamwatch/streamwatch/pkg/logging"
)

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as permanent: the record is poison and goes to the
// dead-letter topic instead of being retried. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err: err}
}

// IsPermanent reports whether err (or an error it wraps) was marked Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// NewRouter returns a Watermill router with the router-wide middleware, in
// order: tracing and metrics (a consumer span "process <topic>" continuing
// the record's trace context, in msg.Context() for the handler; records,
// events, latency and events per record counted per handler and topic),
// Retry (transient errors are retried 5 times with exponential backoff,
// then the message is nacked and redelivered) and Recoverer (a panic
// becomes an error, never a crash). Add DeadLetter per handler.
func NewRouter(logger *slog.Logger) (*message.Router, error) {
	ins, err := newInstruments()
	if err != nil {
		return nil, err
	}
	wl := logging.Watermill(logger)
	r, err := message.NewRouter(message.RouterConfig{CloseTimeout: 15 * time.Second}, wl)
	if err != nil {
		return nil, fmt.Errorf("watermill router: %w", err)
	}
	r.AddMiddleware(
		instrument(ins),
		middleware.Retry{
			MaxRetries:      5,
			InitialInterval: 100 * time.Millisecond,
			MaxInterval:     5 * time.Second,
			Multiplier:      2,
			Logger:          wl,
			ShouldRetry:     func(p middleware.RetryParams) bool { return !IsPermanent(p.Err) },
		}.Middleware,
		middleware.Recoverer,
	)
	return r, nil
}

// DeadLetter returns handler middleware that sends a message whose handler
// returned a Permanent error (or panicked) to DLQ(topic), with the error and
// the source position and the handler name (MetaConsumer) in metadata, and then acks it so the consumer goes on.
// Transient errors pass through to Retry. If the dead-letter publish fails,
// the error is returned and the message is redelivered. Dead-lettered
// records are counted (streamwatch.dead_letters by source topic) and keep
// the trace context of the original.
func DeadLetter(pub message.Publisher, topic string, logger *slog.Logger) message.HandlerMiddleware {
	ins, _ := newInstruments() // on error the counter is skipped, never the dead-lettering
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := callRecovering(h, msg)
			var panicked middleware.RecoveredPanicError
			if err == nil || !(IsPermanent(err) || errors.As(err, &panicked)) {
				return out, err
			}
			dl := message.NewMessage(watermill.NewUUID(), msg.Payload)
			dl.SetContext(msg.Context())
			for k, v := range msg.Metadata {
				if k != MetaPartition {
					dl.Metadata.Set(k, v)
				}
			}
			dl.Metadata.Set(MetaError, err.Error())
			dl.Metadata.Set(MetaSourceTopic, topic)
			if h := consumerName(msg.Context()); h != "" {
				dl.Metadata.Set(MetaConsumer, h)
			}
			if p, o, ok := Position(msg); ok {
				dl.Metadata.Set(MetaSourcePartition, strconv.Itoa(int(p)))
				dl.Metadata.Set(MetaSourceOffset, strconv.FormatInt(o, 10))
			}
			if perr := pub.Publish(DLQ(topic), dl); perr != nil {
				// Transient on purpose (the original error is only quoted), so
				// Retry backs off while the dead-letter topic is unreachable.
				return nil, fmt.Errorf("dead-letter %s: %w (original error: %s)", DLQ(topic), perr, err.Error())
			}
			if ins != nil {
				ins.deadLetters.Add(msg.Context(), 1, metric.WithAttributes(attribute.String("topic", topic)))
			}
			Logger(logger).WarnContext(msg.Context(), "record sent to dead-letter topic", "topic", topic, "dlq", DLQ(topic), "error", err.Error())
			return nil, nil
		}
	}
}

type consumerKey struct{}

// ContextWithConsumer returns ctx naming the consumer (its group) that
// handles a message outside a Watermill router, such as a batch consumer:
// DeadLetter records it as MetaConsumer, as it does the router's handler
// name.
func ContextWithConsumer(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, consumerKey{}, name)
}

// consumerName is the router's handler name in ctx, else the name
// ContextWithConsumer put there, else "".
func consumerName(ctx context.Context) string {
	if h := message.HandlerNameFromCtx(ctx); h != "" {
		return h
	}
	h, _ := ctx.Value(consumerKey{}).(string)
	return h
}

// callRecovering calls h and turns a panic into a permanent error, so that a
// record that crashes its handler is dead-lettered instead of redelivered
// forever.
func callRecovering(h message.HandlerFunc, msg *message.Message) (out []*message.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, Permanent(fmt.Errorf("handler panic: %v", r))
		}
	}()
	return h(msg)
}
