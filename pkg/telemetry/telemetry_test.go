package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"

	"github.com/streamwatch/streamwatch/pkg/telemetry"
)

// Not parallel: Setup installs global providers and registers on the
// default Prometheus registry (once per process).
func TestSetup(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
	_, err := telemetry.Setup(context.Background(), "test")
	require.ErrorContains(t, err, `OTEL_EXPORTER_OTLP_PROTOCOL="http/json"`)

	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	shutdown, err := telemetry.Setup(context.Background(), "test")
	require.NoError(t, err)
	defer func() { require.NoError(t, shutdown(context.Background())) }()
	require.True(t, telemetry.TracingEnabled(), "an endpoint turns tracing on")
	c, err := otel.Meter("test").Int64Counter("streamwatch.test.things")
	require.NoError(t, err)
	c.Add(context.Background(), 3)

	srv := httptest.NewServer(telemetry.MetricsHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(body), "streamwatch_test_things_total{")
	require.Contains(t, string(body), `service_name="streamwatch-test"`, "target_info carries the service name")
	require.Contains(t, string(body), "go_goroutines", "runtime metrics next to ours")
}
