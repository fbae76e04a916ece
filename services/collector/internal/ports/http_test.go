package ports_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/auth"
	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/httpserver"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/services/collector/internal/app"
	"github.com/streamwatch/streamwatch/services/collector/internal/ports"
)

// apacheLogs is the real 10,000-line sample at the repository root.
const apacheLogs = "../../../../testdata/apache_logs"

const maxBody = 5 << 20

var now = time.Date(2026, time.January, 2, 3, 4, 5, 0, time.UTC)

// fakePublisher records what was published. The Kafka path itself is
// tested end to end in package service.
type fakePublisher struct {
	mu     sync.Mutex
	err    error
	topics []string
	events []events.Event
}

func (f *fakePublisher) PublishEvents(_ context.Context, topic string, evs []events.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.topics = append(f.topics, topic)
	f.events = append(f.events, evs...)
	return nil
}

func (f *fakePublisher) published() []events.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]events.Event(nil), f.events...)
}

func newServer(pub app.EventPublisher) *echo.Echo {
	e := httpserver.New(slog.New(slog.DiscardHandler), nil)
	guard, err := auth.NewGuard(auth.Config{Mode: auth.ModeOff}, nil)
	if err != nil {
		panic(err)
	}
	ports.NewHTTPServer(app.New(pub, func() time.Time { return now }, app.Limits{}), maxBody, guard).Register(e)
	return e
}

type request struct {
	target      string
	contentType string
	body        io.Reader
	header      map[string]string
}

func do(t *testing.T, e *echo.Echo, r request) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, r.target, r.body)
	if r.contentType != "" {
		req.Header.Set(echo.HeaderContentType, r.contentType)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

// response is the union of IngestResponse and httpserver.ErrorBody.
type response struct {
	Code     string      `json:"code"`
	Message  string      `json:"message"`
	Accepted int         `json:"accepted"`
	Rejected []rejection `json:"rejected"`
}

type rejection struct {
	Index *int64 `json:"index"`
	Line  *int64 `json:"line"`
	Error string `json:"error"`
}

func decode(t *testing.T, rec *httptest.ResponseRecorder) (response, map[string]any) {
	t.Helper()
	var r response
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &r), rec.Body.String())
	var raw map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &raw))
	return r, raw
}

func ptr(n int64) *int64 { return &n }

const (
	click    = `{"type":"click","event_time":"2015-05-17T10:05:03Z","user_id":"u1","page":"/home"}`
	view     = `{"event_id":"client-1","type":"page_view","event_time":1431857103000,"user_id":"u2"}`
	request1 = `{"type":"http_request","event_time":"2015-05-17T10:05:03+02:00","client_ip":"10.0.0.1","method":"GET","path":"/","status":200}`
)

func TestPostEvents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		req          request
		wantStatus   int
		wantAccepted int
		wantRejected []rejection
		wantMessage  string // substring of message for 4xx
		wantIDs      []string
	}{
		{
			name:         "valid array",
			req:          request{contentType: "application/json", body: strings.NewReader("[" + click + "," + view + "," + request1 + "]")},
			wantStatus:   http.StatusAccepted,
			wantAccepted: 3,
			wantIDs:      []string{"", "client-1", ""},
		},
		{
			name:         "NDJSON by content type",
			req:          request{contentType: "application/x-ndjson; charset=utf-8", body: strings.NewReader(click + "\n\n" + view + "\r\n")},
			wantStatus:   http.StatusAccepted,
			wantAccepted: 2,
		},
		{
			name:         "NDJSON by first byte",
			req:          request{contentType: "application/json", body: strings.NewReader("  " + click + "\n" + view)},
			wantStatus:   http.StatusAccepted,
			wantAccepted: 2,
		},
		{
			name: "mixed valid and invalid keeps the valid ones",
			req: request{body: strings.NewReader("[" + click + `,
				{"type":"click","event_time":1,"user_id":"u","amount":"abc"},` + view + `,
				{"type":"nope","event_time":1},` + request1 + "]")},
			wantStatus:   http.StatusAccepted,
			wantAccepted: 3,
			wantRejected: []rejection{
				{Index: ptr(1), Error: `field "amount": expected a number, got string`},
				{Index: ptr(3), Error: `field "type": unknown type "nope" (one of page_view, click, add_cart, purchase, search, service_request, http_request, metric_sample)`},
			},
		},
		{
			name: "NDJSON rejections carry the line index",
			req: request{contentType: ports.ContentTypeNDJSON, body: strings.NewReader(
				click + "\n\n{not json\n" + view + "\n" + `{"type":"click","event_time":1}`)},
			wantStatus:   http.StatusAccepted,
			wantAccepted: 2,
			wantRejected: []rejection{
				{Index: ptr(2), Error: "invalid event: malformed JSON at byte 2: invalid character 'n' looking for beginning of object key string"},
				{Index: ptr(4), Error: `field "user_id": required for click`},
			},
		},
		{
			name:        "malformed JSON array names the byte offset",
			req:         request{body: strings.NewReader(`[` + click + `, {"type": }]`)},
			wantStatus:  http.StatusBadRequest,
			wantMessage: "malformed JSON array at byte 95: invalid character '}' looking for beginning of value",
		},
		{
			name:        "trailing data after the array",
			req:         request{body: strings.NewReader(`[` + click + `] x`)},
			wantStatus:  http.StatusBadRequest,
			wantMessage: "malformed JSON array at byte 86: invalid character 'x' after top-level value",
		},
		{
			name:         "wrong field type names the field",
			req:          request{body: strings.NewReader(`[{"type":"service_request","event_time":1,"service":"api","status":"500"}]`)},
			wantStatus:   http.StatusBadRequest,
			wantRejected: []rejection{{Index: ptr(0), Error: `field "status": expected a number, got string`}},
			wantMessage:  `field "status": expected a number, got string`,
		},
		{
			name:         "missing required field names the field",
			req:          request{body: strings.NewReader(`[{"type":"purchase","event_time":1,"amount":3}]`)},
			wantStatus:   http.StatusBadRequest,
			wantRejected: []rejection{{Index: ptr(0), Error: `field "user_id": required for purchase`}},
			wantMessage:  `field "user_id": required for purchase`,
		},
		{
			name:       "several problems in one item are listed on one line",
			req:        request{body: strings.NewReader(`[{"type":"http_request"}]`)},
			wantStatus: http.StatusBadRequest,
			wantRejected: []rejection{{Index: ptr(0), Error: `field "event_time": missing or not after the epoch; ` +
				`field "client_ip": required for http_request; field "method": required for http_request; ` +
				`field "status": 0 is not an HTTP status (100..599)`}},
		},
		{
			name:         "unknown type",
			req:          request{body: strings.NewReader(`[{"type":"telemetry","event_time":1}]`)},
			wantStatus:   http.StatusBadRequest,
			wantRejected: []rejection{{Index: ptr(0), Error: `field "type": unknown type "telemetry" (one of page_view, click, add_cart, purchase, search, service_request, http_request, metric_sample)`}},
		},
		{
			name:         "unknown field",
			req:          request{body: strings.NewReader(`[{"type":"click","event_time":1,"user_id":"u","colour":"red"}]`)},
			wantStatus:   http.StatusBadRequest,
			wantRejected: []rejection{{Index: ptr(0), Error: `field "colour": unknown field (schema v1)`}},
		},
		{
			name:         "item that is not an object",
			req:          request{body: strings.NewReader(`[42]`)},
			wantStatus:   http.StatusBadRequest,
			wantRejected: []rejection{{Index: ptr(0), Error: "invalid event: expected a JSON object, got number"}},
		},
		{name: "empty body", req: request{body: strings.NewReader("")}, wantStatus: http.StatusBadRequest, wantMessage: "no events"},
		{name: "blank body", req: request{body: strings.NewReader(" \n\t\n")}, wantStatus: http.StatusBadRequest, wantMessage: "no events"},
		{name: "empty array", req: request{body: strings.NewReader(" [ ] ")}, wantStatus: http.StatusBadRequest, wantMessage: "no events"},
		{
			name:        "compressed body",
			req:         request{body: strings.NewReader("x"), header: map[string]string{"Content-Encoding": "gzip"}},
			wantStatus:  http.StatusUnsupportedMediaType,
			wantMessage: `Content-Encoding "gzip" is not supported`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pub := &fakePublisher{}
			rec := do(t, newServer(pub), request{target: "/v1/events", contentType: tt.req.contentType, body: tt.req.body, header: tt.req.header})
			require.Equal(t, tt.wantStatus, rec.Code, rec.Body.String())
			got, raw := decode(t, rec)
			published := pub.published()

			if tt.wantStatus == http.StatusAccepted {
				require.Equal(t, tt.wantAccepted, got.Accepted)
				require.Equal(t, tt.wantRejected, got.Rejected)
				if len(tt.wantRejected) == 0 {
					require.NotContains(t, raw, "rejected")
				}
				require.Len(t, published, tt.wantAccepted)
				require.Equal(t, []string{messaging.TopicEventsRaw}, pub.topics)
				for i, ev := range published {
					require.NoError(t, ev.Validate())
					require.Equal(t, now.UnixMilli(), ev.ReceiveTime)
					require.Equal(t, ev.EntityKey(), ev.Key)
					switch {
					case i < len(tt.wantIDs) && tt.wantIDs[i] != "":
						require.Equal(t, tt.wantIDs[i], ev.ID)
					case ev.ID == "client-1": // given by the client
					default:
						id, err := uuid.Parse(ev.ID)
						require.NoError(t, err)
						require.Equal(t, uuid.Version(7), id.Version())
					}
				}
				return
			}

			require.Empty(t, published)
			require.Contains(t, got.Message, tt.wantMessage)
			if tt.wantRejected != nil {
				require.Equal(t, "bad_request", got.Code)
				require.Equal(t, tt.wantRejected, got.Rejected)
				require.Equal(t, tt.wantRejected[0].Error, got.Message)
				require.Contains(t, raw, "accepted")
				require.Zero(t, got.Accepted)
			} else {
				require.NotContains(t, raw, "rejected")
			}
		})
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestBodyTooLarge sends 10 MB bodies: with a Content-Length over the limit
// nothing is read; without one, reading stops at the limit.
func TestBodyTooLarge(t *testing.T) {
	t.Parallel()
	big := func() io.Reader {
		item := []byte(click + ",")
		return io.MultiReader(strings.NewReader("["), bytes.NewReader(bytes.Repeat(item, 10_000_000/len(item))), strings.NewReader(click+"]"))
	}
	tests := []struct {
		name          string
		target        string
		contentLength bool
		wantMaxRead   int64
	}{
		{"events with Content-Length", "/v1/events", true, 0},
		{"events streamed", "/v1/events", false, maxBody + 64<<10},
		{"logs with Content-Length", "/v1/logs?source=x", true, 0},
		{"logs streamed", "/v1/logs?source=x", false, maxBody + 64<<10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pub := &fakePublisher{}
			body := &countingReader{r: big()}
			req := httptest.NewRequest(http.MethodPost, tt.target, body)
			req.ContentLength = -1
			if tt.contentLength {
				req.ContentLength = 10_000_000
			}
			rec := httptest.NewRecorder()
			newServer(pub).ServeHTTP(rec, req)
			require.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, rec.Body.String())
			got, _ := decode(t, rec)
			require.Equal(t, "payload_too_large", got.Code)
			require.Contains(t, got.Message, "5242880 bytes")
			require.LessOrEqual(t, body.n, tt.wantMaxRead)
			require.Empty(t, pub.published())
		})
	}
}

func TestPublisherFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		target string
		body   string
	}{
		{"events", "/v1/events", "[" + click + "]"},
		{"logs", "/v1/logs?source=x", sampleLine + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pub := &fakePublisher{err: errors.New("kafka: client has run out of available brokers")}
			rec := do(t, newServer(pub), request{target: tt.target, body: strings.NewReader(tt.body)})
			require.Equal(t, http.StatusServiceUnavailable, rec.Code)
			require.Equal(t, "1", rec.Header().Get("Retry-After"))
			got, raw := decode(t, rec)
			require.Equal(t, "unavailable", got.Code)
			require.Contains(t, got.Message, "run out of available brokers")
			require.NotContains(t, raw, "accepted")
		})
	}
}

const sampleLine = `83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /presentations/logstash-monitorama-2013/images/kibana-search.png HTTP/1.1" 200 203023 "http://semicomplete.com/presentations/logstash-monitorama-2013/" "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/32.0.1700.77 Safari/537.36"`

func TestPostLogs(t *testing.T) {
	t.Parallel()
	line := func(ip, status string) string {
		return ip + ` - - [17/May/2015:10:05:03 +0000] "GET /a HTTP/1.1" ` + status + ` 12 "-" "curl/8"`
	}
	long := line("10.0.0.9", "200") + strings.Repeat("x", 70<<10)
	tests := []struct {
		name         string
		target       string
		body         string
		wantStatus   int
		wantRejected []rejection
		wantIDs      []string // "uuid" for a UUIDv7
		wantMessage  string
	}{
		{
			name:         "one bad line",
			target:       "/v1/logs?format=combined&source=apache_logs",
			body:         line("10.0.0.1", "200") + "\n" + line("10.0.0.2", "abc") + "\n" + line("10.0.0.3", "404") + "\n",
			wantStatus:   http.StatusAccepted,
			wantRejected: []rejection{{Line: ptr(2), Error: `status "abc" is not a number`}},
			wantIDs:      []string{"apache_logs:1", "apache_logs:3"},
		},
		{
			name:   "first_line offsets ids and rejected lines; blank lines count",
			target: "/v1/logs?source=web-1.log&first_line=100",
			body: line("10.0.0.1", "200") + "\r\n\r\n" + `10.0.0.2 - - [17/May/2015:10:05:03 +0000] "-" 408 0 "-" "-"` + "\r\n" +
				line("10.0.0.3", "200"),
			wantStatus:   http.StatusAccepted,
			wantRejected: []rejection{{Line: ptr(102), Error: `request "-" is not "METHOD PATH PROTOCOL"`}},
			wantIDs:      []string{"web-1.log:100", "web-1.log:103"},
		},
		{
			name:       "without source the ids are UUIDv7",
			target:     "/v1/logs",
			body:       line("10.0.0.1", "200") + "\n" + line("10.0.0.2", "200"),
			wantStatus: http.StatusAccepted,
			wantIDs:    []string{"uuid", "uuid"},
		},
		{
			name:         "a line over 64 KiB is rejected alone",
			target:       "/v1/logs?source=s",
			body:         line("10.0.0.1", "200") + "\n" + long + "\n" + line("10.0.0.3", "200") + "\n",
			wantStatus:   http.StatusAccepted,
			wantRejected: []rejection{{Line: ptr(2), Error: "line longer than 65536 bytes"}},
			wantIDs:      []string{"s:1", "s:3"},
		},
		{
			name:         "a valid line with an invalid event",
			target:       "/v1/logs?source=s",
			body:         line("example.com", "200") + "\n" + line("10.0.0.2", "200"),
			wantStatus:   http.StatusAccepted,
			wantRejected: []rejection{{Line: ptr(1), Error: `field "client_ip": "example.com" is not an IP address`}},
			wantIDs:      []string{"s:2"},
		},
		{
			name:         "every line bad",
			target:       "/v1/logs?source=s",
			body:         "garbage\n" + line("10.0.0.2", "999"),
			wantStatus:   http.StatusBadRequest,
			wantRejected: []rejection{{Line: ptr(1), Error: "line ends before the ident field"}, {Line: ptr(2), Error: "status 999 is not an HTTP status (100..599)"}},
			wantMessage:  "line ends before the ident field",
		},
		{name: "unsupported format", target: "/v1/logs?format=json", body: "x", wantStatus: http.StatusBadRequest, wantMessage: `format "json" is not supported (supported: combined)`},
		{name: "first_line zero", target: "/v1/logs?first_line=0", body: "x", wantStatus: http.StatusBadRequest, wantMessage: `first_line "0" is not a positive integer`},
		{name: "first_line not a number", target: "/v1/logs?first_line=abc", body: "x", wantStatus: http.StatusBadRequest, wantMessage: `first_line "abc" is not a positive integer`},
		{name: "first_line too large", target: "/v1/logs?first_line=1000000000000001", body: "x", wantStatus: http.StatusBadRequest, wantMessage: "first_line 1000000000000001 is not in 1..1000000000000000"},
		{name: "source too long", target: "/v1/logs?source=" + strings.Repeat("s", 101), body: "x", wantStatus: http.StatusBadRequest, wantMessage: "source is longer than 100 bytes"},
		{name: "empty body", target: "/v1/logs", body: "", wantStatus: http.StatusBadRequest, wantMessage: "no log lines"},
		{name: "blank lines only", target: "/v1/logs", body: "\n \r\n\n", wantStatus: http.StatusBadRequest, wantMessage: "no log lines"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pub := &fakePublisher{}
			rec := do(t, newServer(pub), request{target: tt.target, contentType: "text/plain", body: strings.NewReader(tt.body)})
			require.Equal(t, tt.wantStatus, rec.Code, rec.Body.String())
			got, raw := decode(t, rec)
			require.Equal(t, tt.wantRejected, got.Rejected)
			if len(tt.wantRejected) == 0 {
				require.NotContains(t, raw, "rejected")
			}
			require.Contains(t, got.Message, tt.wantMessage)
			published := pub.published()
			if tt.wantStatus != http.StatusAccepted {
				require.Empty(t, published)
				return
			}
			require.Equal(t, len(tt.wantIDs), got.Accepted)
			require.Len(t, published, len(tt.wantIDs))
			for i, ev := range published {
				require.NoError(t, ev.Validate())
				require.Equal(t, events.TypeHTTPRequest, ev.Type)
				require.Equal(t, ev.ClientIP, ev.Key)
				require.Equal(t, now.UnixMilli(), ev.ReceiveTime)
				if tt.wantIDs[i] == "uuid" {
					id, err := uuid.Parse(ev.ID)
					require.NoError(t, err)
					require.Equal(t, uuid.Version(7), id.Version())
					continue
				}
				require.Equal(t, tt.wantIDs[i], ev.ID)
			}
		})
	}
}

// TestPostLogsDeterministicIDs posts the same lines twice: a replay yields
// the same event ids, so consumers deduplicate it.
func TestPostLogsDeterministicIDs(t *testing.T) {
	t.Parallel()
	body := strings.Repeat(sampleLine+"\n", 5) // identical lines are distinct requests
	pub := &fakePublisher{}
	e := newServer(pub)
	for range 2 {
		rec := do(t, e, request{target: "/v1/logs?source=apache_logs", body: strings.NewReader(body)})
		require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	}
	evs := pub.published()
	require.Len(t, evs, 10)
	for i, ev := range evs {
		require.Equal(t, fmt.Sprintf("apache_logs:%d", i%5+1), ev.ID)
	}
}

// TestPostLogsApacheSample ingests the whole real sample in one request.
func TestPostLogsApacheSample(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(apacheLogs)
	require.NoError(t, err)
	pub := &fakePublisher{}
	rec := do(t, newServer(pub), request{target: "/v1/logs?format=combined&source=apache_logs", contentType: "text/plain", body: bytes.NewReader(data)})
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	got, raw := decode(t, rec)
	require.Equal(t, 10000, got.Accepted)
	require.NotContains(t, raw, "rejected")

	evs := pub.published()
	require.Len(t, evs, 10000)
	ids := make(map[string]bool, len(evs))
	for i, ev := range evs {
		require.Equal(t, fmt.Sprintf("apache_logs:%d", i+1), ev.ID)
		ids[ev.ID] = true
	}
	require.Len(t, ids, 10000)

	// The sample has 17 lines that occur more than once (19 extra copies):
	// each copy is a distinct request and a distinct event all the same.
	sc := bufio.NewScanner(bytes.NewReader(data))
	count := map[string]int{}
	for sc.Scan() {
		count[sc.Text()]++
	}
	require.NoError(t, sc.Err())
	repeated := 0
	for _, n := range count {
		if n > 1 {
			repeated++
		}
	}
	require.Equal(t, 17, repeated)
	require.Len(t, count, 10000-19)
}
