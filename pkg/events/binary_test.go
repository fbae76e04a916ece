package events_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/bufbuild/protocompile"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/streamwatch/streamwatch/pkg/events"
)

// everyField is an event with every field of every kind set (no consumer
// sees such a mix, but the codec must carry each field on its own).
func everyField() events.Event {
	return events.Event{
		V: 1, ID: "ev-ß-1", Type: events.TypePurchase, Time: 1_795_255_200_123, ReceiveTime: 1_795_255_201_000,
		Key: "u1", Source: "access.log:17", UserID: "u1", SessionID: "s1", Page: "/p/ü", ProductID: "prod-9",
		Amount: 19.99, Query: "shoes size=42", Properties: map[string]string{"b": "2", "a": "", "": "empty key", "utm": "mail"},
		Service: "checkout", Endpoint: "/api/pay", LatencyMs: 0.25, Status: 503,
		ClientIP: "2001:db8::1", Method: "PATCH", Path: "/x?y=1", Protocol: "HTTP/3", Bytes: 1 << 40,
		Referrer: "https://example.org/", UserAgent: "Mozilla/5.0 (X11; Linux x86_64)",
		Series: "cpu_usage", Labels: map[string]string{"host": "h1", "dc": "fra"}, Value: -1e-300,
	}
}

// randomEvent draws an event of a random kind with random (valid) values.
func randomEvent(rng *rand.Rand, i int) events.Event {
	str := func() string {
		if rng.IntN(4) == 0 {
			return ""
		}
		b := make([]byte, rng.IntN(300))
		for j := range b {
			b[j] = byte(rng.IntN(256))
		}
		return string(b)
	}
	e := events.Event{V: 1, ID: fmt.Sprintf("e%d", i), Type: events.Types[rng.IntN(len(events.Types))],
		Time: 1 + rng.Int64N(events.MaxTime), ReceiveTime: rng.Int64N(events.MaxTime), Key: str(), Source: str()}
	switch e.Type.Kind() {
	case events.KindBehaviour:
		e.UserID, e.SessionID, e.Page, e.ProductID, e.Query = str(), str(), str(), str(), str()
		e.Amount = rng.Float64() * 1000
	case events.KindServiceRequest:
		e.Service, e.Endpoint, e.LatencyMs, e.Status = str(), str(), rng.ExpFloat64()*50, 100+rng.IntN(500)
	case events.KindHTTPRequest:
		e.ClientIP, e.Method, e.Path, e.Protocol = str(), []string{"GET", "POST", str()}[rng.IntN(3)], str(), []string{"HTTP/1.1", str()}[rng.IntN(2)]
		e.Bytes, e.Referrer, e.UserAgent, e.Status = rng.Int64N(1<<50), str(), str(), 100+rng.IntN(500)
	case events.KindMetricSample:
		e.Series, e.Value = str(), rng.NormFloat64()*1e6
	}
	for range rng.IntN(3) {
		if e.Properties == nil {
			e.Properties = map[string]string{}
		}
		e.Properties[str()] = str()
	}
	if e.Type == events.TypeMetricSample && rng.IntN(2) == 0 {
		e.Labels = map[string]string{str(): str(), "k": str()}
	}
	return e
}

// TestBinaryRoundTrip: random batches of every kind, with strings of any
// bytes and sizes (lengths that need one, two and three varint bytes),
// decode to exactly the events encoded, and equal batches encode to equal
// bytes.
func TestBinaryRoundTrip(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 7))
	big := everyField()
	big.UserAgent = string(make([]byte, 20_000))                          // a 3-byte length prefix
	small := events.Event{V: 1, ID: "s", Type: events.TypeClick, Time: 1} // a 1-byte one
	for round := range 200 {
		in := []events.Event{everyField(), small}
		for i := range rng.IntN(50) {
			in = append(in, randomEvent(rng, i))
		}
		if round%10 == 0 {
			in = append(in, big)
		}
		b, err := events.EncodeBatch(in)
		require.NoError(t, err)
		require.Equal(t, []byte{0x08, 0x02}, b[:2], "a v2 payload starts with its version")
		out, err := events.DecodeBatch(b)
		require.NoError(t, err)
		require.Equal(t, in, out)
		again, err := events.EncodeBatch(out)
		require.NoError(t, err)
		require.Equal(t, b, again, "encoding is deterministic")

		// Shared strings, from a payload that is the start of a larger
		// buffer (as a Kafka client may hand it over): the same events.
		inBuf := append(append([]byte{}, b...), 0x12, 0x7f, 0xff, 0x00)[:len(b)]
		shared, err := events.DecodeBatchShared(inBuf, nil, json.Unmarshal)
		require.NoError(t, err)
		require.Equal(t, in, shared)
	}
	empty, err := events.EncodeBatch(nil)
	require.NoError(t, err)
	out, err := events.DecodeBatch(empty)
	require.NoError(t, err)
	require.Empty(t, out)
}

// TestDecodeBatchReadsJSONv1: records written by builds before the binary
// format decode to the same events.
func TestDecodeBatchReadsJSONv1(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 3))
	in := []events.Event{everyField()}
	for i := range 100 {
		e := randomEvent(rng, i)
		for k, v := range map[*string]string{&e.Key: "k", &e.Source: "s"} {
			*k = v // JSON replaces invalid UTF-8: keep the strings comparable
		}
		in = append(in, sanitize(e))
	}
	b, err := events.EncodeBatchJSON(in)
	require.NoError(t, err)
	require.Equal(t, byte('{'), b[0])
	out, err := events.DecodeBatch(b)
	require.NoError(t, err)
	require.Equal(t, in, out)
}

// sanitize makes e's strings valid UTF-8, as every JSON v1 record had them.
func sanitize(e events.Event) events.Event {
	b, _ := json.Marshal(e)
	var back events.Event
	_ = json.Unmarshal(b, &back)
	return back
}

// TestDecodeBatchIntoResetsReusedEvents: a reused buffer holding other
// events gives exactly the payload's events, with no field left over.
func TestDecodeBatchIntoResetsReusedEvents(t *testing.T) {
	t.Parallel()
	buf := make([]events.Event, 4)
	for i := range buf {
		buf[i] = everyField()
	}
	in := []events.Event{{V: 1, ID: "a", Type: events.TypeClick, Time: 9, UserID: "u"}, {V: 1, ID: "b", Type: events.TypePageView, Time: 10}}
	b, err := events.EncodeBatch(in)
	require.NoError(t, err)
	out, err := events.DecodeBatchInto(b, buf, json.Unmarshal)
	require.NoError(t, err)
	require.Equal(t, in, out)
	require.Same(t, &buf[0], &out[0], "decoded into the buffer's array")
}

// TestDecodeBatchAllocatesOnce: without a buffer (as the detector and the
// query service decode), or with one too small, the events are decoded
// into one array of exactly their number, not one grown by append; a
// large enough buffer is used as it is. Unknown batch fields do not count.
func TestDecodeBatchAllocatesOnce(t *testing.T) {
	t.Parallel()
	in := benchBatch()[:300]
	b, err := events.EncodeBatch(in)
	require.NoError(t, err)
	b = protowire.AppendTag(b, 7, protowire.BytesType) // a later build's batch field
	b = protowire.AppendString(b, "not an event")
	for name, decode := range map[string]func([]byte, []events.Event, func([]byte, any) error) ([]events.Event, error){
		"into": events.DecodeBatchInto, "shared": events.DecodeBatchShared,
	} {
		for _, buf := range [][]events.Event{nil, make([]events.Event, 0, 10)} {
			out, err := decode(b, buf, json.Unmarshal)
			require.NoError(t, err, name)
			require.Equal(t, in, out, name)
			require.Equal(t, len(in), cap(out), "%s, buffer of %d: one array of the events' number", name, cap(buf))
		}
		buf := make([]events.Event, 0, 400)
		out, err := decode(b, buf, json.Unmarshal)
		require.NoError(t, err, name)
		require.Same(t, &buf[:1][0], &out[0], "%s: decoded into the buffer's array", name)
	}
}

// TestBinarySkipsUnknownFields: fields a later build adds (to the batch or
// to an event) are skipped, as protobuf readers do.
func TestBinarySkipsUnknownFields(t *testing.T) {
	t.Parallel()
	in := everyField()
	var ev []byte
	ev = protowire.AppendTag(ev, 99, protowire.BytesType)
	ev = protowire.AppendString(ev, "from the future")
	ev = protowire.AppendTag(ev, 3, protowire.BytesType)
	ev = protowire.AppendString(ev, string(in.Type))
	ev = protowire.AppendTag(ev, 1, protowire.VarintType)
	ev = protowire.AppendVarint(ev, 1)
	ev = protowire.AppendTag(ev, 4, protowire.VarintType)
	ev = protowire.AppendVarint(ev, uint64(in.Time))
	ev = protowire.AppendTag(ev, 100, protowire.Fixed32Type)
	ev = protowire.AppendFixed32(ev, 7)
	b := []byte{0x08, 0x02}
	b = protowire.AppendTag(b, 7, protowire.VarintType)
	b = protowire.AppendVarint(b, 123)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, ev)
	out, err := events.DecodeBatch(b)
	require.NoError(t, err)
	require.Equal(t, []events.Event{{V: 1, Type: in.Type, Time: in.Time}}, out)
}

// TestBinaryRefusesMalformed: every truncation of a valid payload, another
// batch version, and a known field with the wrong wire type are refused
// with ErrUndecodable and a message that names the problem; none panics.
func TestBinaryRefusesMalformed(t *testing.T) {
	t.Parallel()
	good, err := events.EncodeBatch([]events.Event{everyField(), everyField()})
	require.NoError(t, err)
	for n := 1; n < len(good); n++ {
		evs, err := events.DecodeBatch(good[:n])
		if err == nil {
			// A cut between two events is a shorter valid batch.
			require.Less(t, len(evs), 2, "prefix of %d bytes", n)
			continue
		}
		require.ErrorIs(t, err, events.ErrUndecodable, "prefix of %d bytes", n)
	}
	for name, tc := range map[string]struct {
		payload []byte
		want    string
	}{
		"version 3":      {[]byte{0x08, 0x03}, "batch version 3"},
		"version 0":      {append([]byte{0x08, 0x00}, good[2:]...), "batch version 0"},
		"time as bytes":  {[]byte{0x08, 0x02, 0x12, 0x03, 0x22, 0x01, 'x'}, "event 0: field 4 has wire type 2, want 0"},
		"event too long": {[]byte{0x08, 0x02, 0x12, 0x7f, 0x08}, "event 0"},
		"bad varint":     {[]byte{0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "batch version"},
		"schema v9":      {[]byte{0x08, 0x02, 0x12, 0x02, 0x08, 0x09}, "event 0 has schema version 9"},
		"after 2100":     {protowire.AppendBytes([]byte{0x08, 0x02, 0x12}, protowire.AppendVarint([]byte{0x08, 0x01, 0x20}, uint64(events.MaxTime+1))), `field "event_time"`},
	} {
		_, err := events.DecodeBatch(tc.payload)
		require.ErrorIs(t, err, events.ErrUndecodable, name)
		require.ErrorContains(t, err, tc.want, name)
	}
}

// TestCheckBatchSchema: both formats' schema names and a record without
// one pass; any other schema is poison.
func TestCheckBatchSchema(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"", events.BatchSchema, events.BatchSchemaJSON} {
		require.NoError(t, events.CheckBatchSchema(ok))
	}
	err := events.CheckBatchSchema("events.batch.v9")
	require.ErrorIs(t, err, events.ErrUndecodable)
	require.ErrorContains(t, err, `schema "events.batch.v9"`)
}

// TestBinaryMatchesProto compiles events.proto and checks that this codec
// and the protobuf runtime agree both ways: a payload EncodeBatch writes
// parses as the Batch message with every field where events.proto says,
// and a Batch the protobuf runtime marshals decodes to the same events.
func TestBinaryMatchesProto(t *testing.T) {
	t.Parallel()
	// The default accessor reads the file from the package directory.
	files, err := (&protocompile.Compiler{Resolver: &protocompile.SourceResolver{}}).Compile(context.Background(), "events.proto")
	require.NoError(t, err)
	batchDesc := files[0].Messages().ByName("Batch")
	require.NotNil(t, batchDesc)

	in := []events.Event{everyField(), {V: 1, ID: "b", Type: events.TypeClick, Time: 2, UserID: "u"}}
	b, err := events.EncodeBatch(in)
	require.NoError(t, err)
	msg := dynamicpb.NewMessage(batchDesc)
	require.NoError(t, proto.Unmarshal(b, msg))
	require.EqualValues(t, 2, msg.Get(batchDesc.Fields().ByName("v")).Uint())
	list := msg.Get(batchDesc.Fields().ByName("events")).List()
	require.Equal(t, len(in), list.Len())

	// Every field of events.Event by its JSON name, which events.proto uses
	// as the field name.
	var want map[string]any
	raw, err := json.Marshal(in[0])
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &want))
	got := map[string]any{}
	list.Get(0).Message().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		got[string(fd.Name())] = protoValue(fd, v)
		return true
	})
	require.Equal(t, want, got)

	// The other way: the runtime's encoding decodes to the same events.
	back, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	require.NoError(t, err)
	out, err := events.DecodeBatch(back)
	require.NoError(t, err)
	require.Equal(t, in, out)
}

// protoValue converts v to what encoding/json gives for the same field.
func protoValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) any {
	if fd.IsMap() {
		m := map[string]any{}
		v.Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
			m[k.String()] = v.String()
			return true
		})
		return m
	}
	switch fd.Kind() {
	case protoreflect.StringKind:
		return v.String()
	case protoreflect.Int64Kind:
		return float64(v.Int())
	case protoreflect.Uint32Kind:
		return float64(v.Uint())
	case protoreflect.DoubleKind:
		return v.Float()
	}
	return fmt.Sprintf("unexpected kind %s", fd.Kind())
}

// BenchmarkDecodeBatch compares decoding one 500-event record of an
// access-log/service/behaviour mix in both formats (encoding/json for v1),
// into a buffer of the right size and, as the detector and the query
// service's projector decode (they keep each record's events), into none.
func BenchmarkDecodeBatch(b *testing.B) {
	evs := benchBatch()
	bin, err := events.EncodeBatch(evs)
	require.NoError(b, err)
	js, err := events.EncodeBatchJSON(evs)
	require.NoError(b, err)
	for _, f := range []struct {
		name    string
		payload []byte
		decode  func([]byte, []events.Event, func([]byte, any) error) ([]events.Event, error)
		nobuf   bool
	}{{"binary", bin, events.DecodeBatchInto, false}, {"binary-shared", bin, events.DecodeBatchShared, false}, {"json", js, events.DecodeBatchInto, false},
		{"binary-nobuf", bin, events.DecodeBatchInto, true}, {"binary-shared-nobuf", bin, events.DecodeBatchShared, true}} {
		b.Run(f.name, func(b *testing.B) {
			buf := make([]events.Event, 0, len(evs))
			if f.nobuf {
				buf = nil
			}
			b.SetBytes(int64(len(f.payload)))
			b.ReportAllocs()
			for b.Loop() {
				if f.name == "json" {
					clear(buf[:cap(buf)]) // JSON decodes into what is there
				}
				if _, err := f.decode(f.payload, buf, json.Unmarshal); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*float64(len(evs))/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkEncodeBatch compares encoding the same record in both formats.
func BenchmarkEncodeBatch(b *testing.B) {
	evs := benchBatch()
	b.Run("binary", func(b *testing.B) {
		var dst []byte
		b.ReportAllocs()
		for b.Loop() {
			dst = events.AppendBatch(dst[:0], evs)
		}
		b.ReportMetric(float64(len(dst))/float64(len(evs)), "bytes/event")
	})
	b.Run("json", func(b *testing.B) {
		var n int
		b.ReportAllocs()
		for b.Loop() {
			p, err := events.EncodeBatchJSON(evs)
			if err != nil {
				b.Fatal(err)
			}
			n = len(p)
		}
		b.ReportMetric(float64(n)/float64(len(evs)), "bytes/event")
	})
}

// benchBatch is 500 events: 60 % access-log requests, 20 % service
// requests, 20 % behaviour events.
func benchBatch() []events.Event {
	rng := rand.New(rand.NewPCG(1, 2))
	evs := make([]events.Event, 500)
	t := int64(1_795_255_200_000)
	for i := range evs {
		e := events.Event{V: 1, ID: fmt.Sprintf("0193a1c4-%04x-7000-8000-%012x", i, rng.Int64N(1<<40)), Time: t + int64(i), ReceiveTime: t + int64(i) + 40}
		switch r := rng.IntN(10); {
		case r < 6:
			e.Type, e.ClientIP, e.Method, e.Protocol = events.TypeHTTPRequest, fmt.Sprintf("10.0.%d.%d", rng.IntN(256), rng.IntN(256)), "GET", "HTTP/1.1"
			e.Path, e.Status, e.Bytes, e.Key = fmt.Sprintf("/page/%d", rng.IntN(300)), 200, rng.Int64N(50_000), e.ClientIP
			e.UserAgent, e.Referrer = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36", "-"
		case r < 8:
			e.Type, e.Service, e.Endpoint, e.Status, e.LatencyMs = events.TypeServiceRequest, fmt.Sprintf("svc-%d", rng.IntN(20)), "/api/v1/x", 200, rng.ExpFloat64()*40
			e.Key = e.Service
		default:
			e.Type, e.UserID, e.Page, e.SessionID = events.TypePageView, fmt.Sprintf("u%d", rng.IntN(5000)), fmt.Sprintf("/p/%d", rng.IntN(200)), "s1"
			e.Key = e.UserID
		}
		evs[i] = e
	}
	return evs
}
