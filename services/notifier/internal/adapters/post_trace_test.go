package adapters

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.opentelemetry.io/otel/trace/noop"
)

// recordingProvider records the attributes every span starts with.
type recordingProvider struct {
	embedded.TracerProvider
	mu    sync.Mutex
	attrs []string
}

func (p *recordingProvider) Tracer(string, ...trace.TracerOption) trace.Tracer {
	return recordingTracer{p: p}
}

type recordingTracer struct {
	embedded.Tracer
	p *recordingProvider
}

func (t recordingTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	cfg := trace.NewSpanStartConfig(opts...)
	t.p.mu.Lock()
	t.p.attrs = append(t.p.attrs, "name="+name)
	for _, a := range cfg.Attributes() {
		t.p.attrs = append(t.p.attrs, fmt.Sprintf("%s=%s", a.Key, a.Value.Emit()))
	}
	t.p.mu.Unlock()
	ctx, span := noop.NewTracerProvider().Tracer("").Start(ctx, name)
	return ctx, recordingSpan{Span: span, p: t.p}
}

// recordingSpan records the attributes set after the start.
type recordingSpan struct {
	trace.Span
	p *recordingProvider
}

func (s recordingSpan) SetAttributes(kv ...attribute.KeyValue) {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	for _, a := range kv {
		s.p.attrs = append(s.p.attrs, fmt.Sprintf("%s=%s", a.Key, a.Value.Emit()))
	}
}

// TestReceiverURLNeverReachesTraces posts to a receiver whose URL holds a
// token in its path and query (as Slack and DingTalk URLs do): the request
// reaches the real URL, and no span attribute contains the token. Not
// parallel: it sets the global tracer provider otelhttp uses.
func TestReceiverURLNeverReachesTraces(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.RequestURI()
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	rec := &recordingProvider{}
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(rec)
	defer otel.SetTracerProvider(prev)

	target := srv.URL + "/services/T000/B000/SECRETPATH?access_token=SECRETQUERY"
	if _, err := postJSON(context.Background(), newHTTPClient(), target, map[string]string{"a": "b"}); err != nil {
		t.Fatal(err)
	}
	if got != "/services/T000/B000/SECRETPATH?access_token=SECRETQUERY" {
		t.Fatalf("receiver got %q", got)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	all := strings.Join(rec.attrs, "\n")
	if !strings.Contains(all, "url.full=") {
		t.Fatalf("no client span recorded:\n%s", all)
	}
	if strings.Contains(all, "SECRET") {
		t.Fatalf("a span carries the receiver's token:\n%s", all)
	}
}
