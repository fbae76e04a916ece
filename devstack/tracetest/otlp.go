// Package tracetest checks distributed tracing across the real service
// binaries on the embedded stack: each service exports its spans with OTLP
// over HTTP (the same OTEL_* configuration docker compose uses for
// Jaeger) to a Receiver on loopback that keeps them in memory, and the
// tests assert how the spans of one request connect across services.
package tracetest

import (
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one received span, ids in lower-case hex (empty Parent for a
// root span).
type Span struct {
	// Service is the resource's service.name, e.g. "streamwatch-collector".
	Service string
	Name    string
	Kind    string // server, client, consumer, producer, internal
	TraceID string
	SpanID  string
	Parent  string
	// Links are the span's links.
	Links []Link
	// Attrs holds the string and integer attributes, as strings.
	Attrs map[string]string
}

// Link is a span link.
type Link struct {
	TraceID, SpanID string
}

// Receiver is an OTLP/HTTP trace receiver (POST /v1/traces, protobuf,
// optionally gzip) that keeps every span in memory. Safe for concurrent use.
type Receiver struct {
	mu    sync.Mutex
	spans []Span
}

// Spans returns a copy of the spans received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans)
}

// ServeHTTP implements http.Handler.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
		http.Error(w, "want POST /v1/traces", http.StatusNotFound)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		defer gz.Close()
		body = gz
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var in coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &in); err != nil {
		http.Error(w, fmt.Sprintf("not an OTLP trace export: %v", err), http.StatusBadRequest)
		return
	}
	spans := convert(&in)
	r.mu.Lock()
	r.spans = append(r.spans, spans...)
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func convert(in *coltracepb.ExportTraceServiceRequest) []Span {
	var out []Span
	for _, rs := range in.GetResourceSpans() {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				sp := Span{
					Service: service, Name: s.GetName(), Kind: kind(s.GetKind()),
					TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					Parent: hex.EncodeToString(s.GetParentSpanId()), Attrs: map[string]string{},
				}
				for _, l := range s.GetLinks() {
					sp.Links = append(sp.Links, Link{TraceID: hex.EncodeToString(l.GetTraceId()), SpanID: hex.EncodeToString(l.GetSpanId())})
				}
				for _, a := range s.GetAttributes() {
					switch v := a.GetValue().GetValue().(type) {
					case *commonpb.AnyValue_StringValue:
						sp.Attrs[a.GetKey()] = v.StringValue
					case *commonpb.AnyValue_IntValue:
						sp.Attrs[a.GetKey()] = strconv.FormatInt(v.IntValue, 10)
					}
				}
				out = append(out, sp)
			}
		}
	}
	return out
}

func kind(k tracepb.Span_SpanKind) string {
	switch k {
	case tracepb.Span_SPAN_KIND_SERVER:
		return "server"
	case tracepb.Span_SPAN_KIND_CLIENT:
		return "client"
	case tracepb.Span_SPAN_KIND_CONSUMER:
		return "consumer"
	case tracepb.Span_SPAN_KIND_PRODUCER:
		return "producer"
	}
	return "internal"
}
