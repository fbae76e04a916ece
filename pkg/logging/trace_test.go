package logging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/streamwatch/streamwatch/pkg/logging"
)

func TestLinesCarryTraceAndSpanIDs(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	logger := logging.New(&buf, "info", "test").With("k", "v")
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("test").Start(context.Background(), "op")
	defer span.End()

	logger.InfoContext(ctx, "with span")
	logger.Info("without span")
	logger.WithGroup("g").InfoContext(ctx, "grouped", "x", 1)

	dec := json.NewDecoder(&buf)
	var lines []map[string]any
	for dec.More() {
		var m map[string]any
		require.NoError(t, dec.Decode(&m))
		lines = append(lines, m)
	}
	require.Len(t, lines, 3)
	sc := span.SpanContext()
	require.Equal(t, sc.TraceID().String(), lines[0]["trace_id"])
	require.Equal(t, sc.SpanID().String(), lines[0]["span_id"])
	require.Equal(t, "test", lines[0]["service"])
	require.Equal(t, "v", lines[0]["k"])
	require.NotContains(t, lines[1], "trace_id")
	require.NotContains(t, lines[1], "span_id")
	g, ok := lines[2]["g"].(map[string]any)
	require.True(t, ok, "group g: %v", lines[2])
	require.Equal(t, sc.TraceID().String(), g["trace_id"], "ids inside the open group, as slog does with every attribute")
}
