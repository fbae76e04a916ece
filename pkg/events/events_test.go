package events_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/events"
)

var now = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

func TestParseInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		want     string // error substring; "" means valid
	}{
		{"page view", `{"type":"page_view","user_id":"u1","page":"/","event_time":"2026-11-21T09:59:00.5Z"}`, ""},
		{"ms time", `{"type":"service_request","service":"api","status":503,"latency_ms":12.5,"event_time":1763719140000}`, ""},
		{"http request", `{"type":"http_request","client_ip":"::1","method":"GET","status":200,"event_time":1}`, ""},
		{"malformed", `{"type":`, "truncated or empty JSON"},
		{"syntax", `{"type" "x"}`, "malformed JSON at byte"},
		{"wrong type", `{"type":"service_request","service":"a","status":"500","event_time":1}`, `field "status": expected a number, got string`},
		{"unknown field", `{"type":"click","user_id":"u","event_time":1,"usr":"x"}`, `field "usr": unknown field`},
		{"missing user", `{"type":"click","event_time":1}`, `field "user_id": required for click`},
		{"unknown type", `{"type":"clik","user_id":"u","event_time":1}`, `unknown type "clik"`},
		{"missing type", `{"user_id":"u","event_time":1}`, `field "type": missing`},
		{"bad time", `{"type":"click","user_id":"u","event_time":"yesterday"}`, `event_time`},
		{"no time", `{"type":"click","user_id":"u"}`, `field "event_time": missing`},
		{"bad ip", `{"type":"http_request","client_ip":"999.1.1.1","method":"GET","status":200,"event_time":1}`, `not an IP address`},
		{"bad status", `{"type":"http_request","client_ip":"1.1.1.1","method":"GET","status":99,"event_time":1}`, `99 is not an HTTP status`},
		{"future version", `{"v":2,"type":"click","user_id":"u","event_time":1}`, `unsupported schema version 2`},
		{"trailing", `{"type":"click","user_id":"u","event_time":1} {}`, `trailing data`},
		{"array", `[1]`, `expected a JSON object`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, err := events.ParseInput([]byte(tc.in), now)
			if tc.want == "" {
				require.NoError(t, err)
				require.Equal(t, 1, e.V)
				require.NotEmpty(t, e.ID, "an id is assigned")
				require.Equal(t, now.UnixMilli(), e.ReceiveTime)
				require.NotEmpty(t, e.Key)
				return
			}
			require.ErrorIs(t, err, events.ErrInvalid)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestEntityKeyAndTime(t *testing.T) {
	t.Parallel()
	e, err := events.ParseInput([]byte(`{"event_id":"x1","type":"purchase","user_id":"u9","amount":3.5,"event_time":"2015-05-17T10:05:03+02:00"}`), now)
	require.NoError(t, err)
	require.Equal(t, "x1", e.ID)
	require.Equal(t, "u9", e.Key)
	require.Equal(t, time.Date(2015, 5, 17, 8, 5, 3, 0, time.UTC).UnixMilli(), e.Time)
}

func TestValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	e := events.Event{V: 1, Type: events.TypeServiceRequest, Status: 42, LatencyMs: -1}
	err := e.Validate()
	for _, f := range []string{"event_id", "event_time", "service", "status", "latency_ms"} {
		require.ErrorContains(t, err, `"`+f+`"`)
	}
	var fe *events.FieldError
	require.True(t, errors.As(err, &fe))
}

func TestBatchRoundTripAndVersions(t *testing.T) {
	t.Parallel()
	in := []events.Event{{V: 1, ID: "a", Type: events.TypeClick, Time: 5, Key: "u", UserID: "u", Properties: map[string]string{"k": "v"}}}
	b, err := events.EncodeBatch(in)
	require.NoError(t, err)
	out, err := events.DecodeBatch(b)
	require.NoError(t, err)
	require.Equal(t, in, out)

	for _, bad := range []string{`{"v":2,"events":[]}`, `{"v":1,"events":[{"v":9}]}`, `not json`, `{"v":0}`} {
		_, err := events.DecodeBatch([]byte(bad))
		require.ErrorIs(t, err, events.ErrUndecodable, bad)
	}
}

func TestStatusClass(t *testing.T) {
	t.Parallel()
	require.Equal(t, "2xx", events.StatusClass(200))
	require.Equal(t, "5xx", events.StatusClass(599))
	require.Equal(t, "other", events.StatusClass(600))
	require.Equal(t, "other", events.StatusClass(0))
}

// TestDecodeBatchRefusesAbsurdEvents: a record with an event no consumer
// can use is poison as a whole (errors wrap ErrUndecodable and name the
// event and the field); the same events are refused by Validate, so the
// collector never writes them.
func TestDecodeBatchRefusesAbsurdEvents(t *testing.T) {
	t.Parallel()
	recv := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC).UnixMilli()
	ok := events.Event{V: 1, ID: "ok", Type: events.TypeHTTPRequest, Time: recv, ReceiveTime: recv, ClientIP: "1.2.3.4", Method: "GET", Status: 200}
	for _, tc := range []struct {
		name string
		edit func(*events.Event)
		want string
	}{
		{"year 9999", func(e *events.Event) { e.Time = 253402300799000; e.ReceiveTime = 0 }, `event 1 (bad): field "event_time": 9999-12-31T23:59:59Z is after 2100-01-01T00:00:00Z`},
		{"a millisecond after 2100", func(e *events.Event) { e.Time = events.MaxTime + 1 }, `field "event_time": 2100-01-01T00:00:00.001Z is after 2100-01-01T00:00:00Z`},
		{"no time", func(e *events.Event) { e.Time = 0 }, `field "event_time": missing or not after the epoch`},
		{"negative bytes", func(e *events.Event) { e.Bytes = -1 }, `field "bytes": negative`},
		{"negative latency", func(e *events.Event) {
			*e = events.Event{V: 1, ID: "bad", Type: events.TypeServiceRequest, Time: recv, Service: "s", Status: 200, LatencyMs: -3}
		}, `field "latency_ms": negative`},
		{"negative amount", func(e *events.Event) {
			*e = events.Event{V: 1, ID: "bad", Type: events.TypePurchase, Time: recv, UserID: "u", Amount: -0.5}
		}, `field "amount": negative`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bad := ok
			bad.ID = "bad"
			tc.edit(&bad)
			b, err := events.EncodeBatch([]events.Event{ok, bad})
			require.NoError(t, err)
			_, err = events.DecodeBatch(b)
			require.ErrorIs(t, err, events.ErrUndecodable)
			require.ErrorIs(t, err, events.ErrInvalid)
			require.ErrorContains(t, err, tc.want)
			require.Error(t, bad.Validate())
		})
	}
	edge := ok
	edge.Time = events.MaxTime // the last accepted instant
	b, err := events.EncodeBatch([]events.Event{ok, edge})
	require.NoError(t, err)
	got, err := events.DecodeBatch(b)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.NoError(t, edge.Validate())
}

// BenchmarkCheckBounds is the per-event cost DecodeBatch and the
// aggregator's decoder pay for the bounds (compare with decoding the event).
func BenchmarkCheckBounds(b *testing.B) {
	e := events.Event{V: 1, ID: "x", Type: events.TypeHTTPRequest, Time: 1_795_255_200_000, ClientIP: "1.2.3.4", Method: "GET", Status: 200, Bytes: 10}
	for b.Loop() {
		if err := e.CheckBounds(); err != nil {
			b.Fatal(err)
		}
	}
}
