package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/events"
)

// rawSamples are events of every kind with every field set, strings in
// UTF-8 and characters JSON escapes, for the decoder tests.
func rawSamples() []events.Event {
	return []events.Event{
		{V: 1, ID: "a", Type: events.TypeHTTPRequest, Time: 1_700_000_000_000, ReceiveTime: 1_700_000_000_001, Key: "10.0.0.1",
			Source: "access.log", ClientIP: "10.0.0.1", Method: "GET", Path: "/über?q=1", Protocol: "HTTP/1.1", Status: 200,
			Bytes: 5120, Referrer: "-", UserAgent: "Mozilla/5.0 (X11; Linux x86_64)"},
		{V: 1, ID: "b", Type: events.TypeServiceRequest, Time: 1_700_000_000_002, Key: "checkout", Service: "checkout",
			Endpoint: "/api/pay", LatencyMs: 12.375, Status: 503},
		{V: 1, ID: "c", Type: events.TypePurchase, Time: 1_700_000_000_003, Key: "u1", UserID: "u1", SessionID: "s1",
			Page: "/cart", ProductID: "p-9", Amount: 19.99, Query: "日本", Properties: map[string]string{"coupon": "X", "": "empty"}},
		{V: 1, ID: "d", Type: events.TypeMetricSample, Time: 1_700_000_000_004, Key: "cpu", Series: "cpu_load",
			Labels: map[string]string{"host": "h1"}, Value: -0.5e-3},
		{V: 1, ID: "e", Type: events.TypePageView, Time: 1, Key: "u2", UserID: "u2", Page: "/p", Properties: map[string]string{}},
		{V: 1, ID: `quote"and\backslash`, Type: events.TypeClick, Time: 2, Key: "<u3>&", UserID: "<u3>&"}, // escaped by EncodeBatch
	}
}

// jsonBatch is the reference: what encoding/json decodes.
func jsonBatch(t testing.TB, payload []byte) (events.Batch, error) {
	t.Helper()
	var b events.Batch
	err := json.Unmarshal(payload, &b)
	return b, err
}

// TestDecodeRawTakesEncodedBatches checks that what events.EncodeBatch
// writes takes the fast path and decodes exactly as encoding/json does,
// except where EncodeBatch escapes (then the fast path declines).
func TestDecodeRawTakesEncodedBatches(t *testing.T) {
	t.Parallel()
	samples := rawSamples()
	for i, e := range samples {
		payload, err := events.EncodeBatch([]events.Event{e})
		require.NoError(t, err)
		want, err := jsonBatch(t, payload)
		require.NoError(t, err)
		got, v, ok := decodeRaw(payload, nil)
		if i == len(samples)-1 {
			require.False(t, ok, "escapes decline the fast path")
			continue
		}
		require.True(t, ok, "sample %d: %s", i, payload)
		require.Equal(t, want.V, v)
		require.Equal(t, want.Events, got)
	}
	all, err := events.EncodeBatch(samples[:len(samples)-1])
	require.NoError(t, err)
	want, err := jsonBatch(t, all)
	require.NoError(t, err)
	buf := make([]events.Event, 2, 64)
	buf = buf[:0]
	got, v, ok := decodeRaw(all, buf)
	require.True(t, ok)
	require.Equal(t, 1, v)
	require.Equal(t, want.Events, got)
	require.Same(t, &buf[:1][0], &got[0], "decoded into the caller's buffer")
}

// TestDecodeRawDeclinesOrAgrees feeds hand-written variants around the
// edges of the fast path: where it accepts a record, the result equals
// encoding/json's, and where it declines, the buffer is left zeroed.
func TestDecodeRawDeclinesOrAgrees(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		payload string
		fast    bool
	}{
		{`{"v":1,"events":[]}`, true},
		{` { "events" : [ { "v" : 1 , "event_id" : "x" , "event_time" : 5 } ] , "v" : 1 } `, true},
		{`{"v":1,"events":[{"v":1,"event_id":"x","amount":1e2,"latency_ms":-0,"status":404}]}`, true},
		{`{"v":1,"events":[{"v":1,"event_id":"x"}],"v":2}`, true},                    // last v wins
		{`{"v":1,"events":[{"v":1,"event_id":"x","event_id":"y"}]}`, true},           // last field wins
		{`{"v":1,"events":[{"V":1}]}`, false},                                        // case-insensitive in encoding/json
		{`{"v":1,"events":[{"v":1,"extra":1}]}`, false},                              // unknown key: ignored there
		{`{"v":1,"extra":[],"events":[]}`, false},                                    // unknown key
		{`{"v":1,"events":[{"v":1,"event_id":null}]}`, false},                        // null leaves the field
		{`{"v":1,"events":[{"v":1,"event_id":"a\u00e9"}]}`, false},                   // escape
		{`{"v":1,"events":[{"v":1,"event_id":"` + "\xff" + `"}]}`, false},            // invalid UTF-8 is replaced
		{`{"v":1,"events":[{"v":1,"bytes":1.5}]}`, false},                            // error there
		{`{"v":1,"events":[{"v":1,"bytes":"5"}]}`, false},                            // error there
		{`{"v":1,"events":[{"v":1,"status":01}]}`, false},                            // not JSON
		{`{"v":1,"events":[{"v":1,"amount":1.}]}`, false},                            // not JSON
		{`{"v":1,"events":[{"v":1,"amount":1e999}]}`, false},                         // out of range
		{`{"v":1,"events":[{"v":1,"bytes":99999999999999999999}]}`, false},           // out of range
		{`{"v":1,"events":[{"v":1,"properties":{"a":"1"},"properties":{}}]}`, false}, // maps merge there
		{`{"v":1,"events":[{"v":1}],"events":[]}`, false},
		{`{"v":1,"events":[{"v":1,"labels":{"a":1}}]}`, false},
		{`{"v":1,"events":[{"v":1}]} x`, false},
		{`{"v":1,"events":[{"v":1},]}`, false},
		{`{"v":1,"events":[{"v":1}`, false},
		{`[]`, false},
		{``, false},
	} {
		buf := make([]events.Event, 0, 4)
		got, v, ok := decodeRaw([]byte(tc.payload), buf)
		require.Equal(t, tc.fast, ok, "%s", tc.payload)
		if !ok {
			require.Equal(t, make([]events.Event, 4), buf[:4], "declined: buffer left zeroed: %s", tc.payload)
			continue
		}
		want, err := jsonBatch(t, []byte(tc.payload))
		require.NoError(t, err, tc.payload)
		require.Equal(t, want.V, v, tc.payload)
		require.Len(t, got, len(want.Events), tc.payload)
		for i := range got {
			require.Equal(t, want.Events[i], got[i], tc.payload)
		}
	}
}

// FuzzDecodeRaw checks on arbitrary input that the fast path either
// declines, leaving the buffer zeroed, or decodes exactly what
// encoding/json decodes.
func FuzzDecodeRaw(f *testing.F) {
	for _, e := range rawSamples() {
		p, err := events.EncodeBatch([]events.Event{e, e})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p)
	}
	f.Add([]byte(`{"v":1,"events":[{"v":1,"event_id":"x","amount":1e2,"status":-0}]}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		buf := make([]events.Event, 0, 3)
		got, v, ok := decodeRaw(payload, buf)
		if !ok {
			require.Equal(t, make([]events.Event, 3), buf[:3])
			return
		}
		want, err := jsonBatch(t, payload)
		require.NoError(t, err, "fast path accepted what encoding/json refuses: %q", payload)
		require.Equal(t, want.V, v)
		require.Len(t, got, len(want.Events))
		for i := range got {
			require.Equal(t, want.Events[i], got[i])
		}
	})
}

// BenchmarkDecode compares the fast path with the general decoder on a
// 500-event record of the sample kinds.
func BenchmarkDecode(b *testing.B) {
	samples := rawSamples()[:5]
	evs := make([]events.Event, 500)
	for i := range evs {
		evs[i] = samples[i%len(samples)]
		evs[i].ID = fmt.Sprintf("ev-%d", i)
	}
	payload, err := events.EncodeBatch(evs)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		decode func([]byte, []events.Event) ([]events.Event, error)
	}{
		{"goccy", decodeBatch},
		{"raw", func(p []byte, buf []events.Event) ([]events.Event, error) {
			evs, _, ok := decodeRaw(p, buf)
			if !ok {
				return nil, errors.New("declined")
			}
			return evs, nil
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			buf := make([]events.Event, 0, 500)
			b.ReportAllocs()
			for b.Loop() {
				evs, err := tc.decode(payload, buf)
				if err != nil {
					b.Fatal(err)
				}
				clear(evs)
			}
		})
	}
}
