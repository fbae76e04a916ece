package ports_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/auth"
	"github.com/streamwatch/streamwatch/pkg/httpserver"
	"github.com/streamwatch/streamwatch/services/collector/internal/app"
	"github.com/streamwatch/streamwatch/services/collector/internal/ports"
)

// TestIngestNeedsAnIngestKey runs the ingest endpoints behind real keys on
// a loopback server: no key, a wrong key and a read-only key are refused
// and publish nothing; an ingest key is accepted and its tenant applies; a
// key's bucket answers 429 with Retry-After; no answer and no log line
// contains a key.
func TestIngestNeedsAnIngestKey(t *testing.T) {
	t.Parallel()
	ingest, reader, limited := newKey(t), newKey(t), newKey(t)
	keys := strings.Join([]string{
		auth.Line("web", ingest, "shop", auth.ScopeIngest),
		auth.Line("dash", reader, "", auth.ScopeRead),
		auth.Line("tiny", limited, "", auth.ScopeIngest) + " rate=0.01 burst=1",
	}, "\n")
	logs := &bytes.Buffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	guard, err := auth.NewGuard(auth.Config{Mode: auth.ModeKeys, Keys: keys, RateLimit: 100, RateBurst: 100}, logger)
	require.NoError(t, err)
	pub := &fakePublisher{}
	e := httpserver.New(logger, nil)
	ports.NewHTTPServer(app.New(pub, func() time.Time { return now }, app.Limits{}), maxBody, guard).Register(e)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)

	event := `[{"type":"click","user_id":"u","event_time":1}]`
	post := func(path string, header map[string]string) (int, http.Header, string) {
		req, err := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(event))
		require.NoError(t, err)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, resp.Header, string(b)
	}
	wrong := auth.SecretPrefix + "wrongwrongwrongwrongwrongwrongwrongwrongwro"
	for _, path := range []string{"/v1/events", "/v1/samples", "/v1/logs"} {
		code, _, body := post(path, nil)
		require.Equal(t, http.StatusUnauthorized, code, path)
		require.Contains(t, body, "missing API key")
		code, _, body = post(path, map[string]string{"Authorization": "Bearer " + wrong})
		require.Equal(t, http.StatusUnauthorized, code, path)
		require.NotContains(t, body, wrong)
		code, _, body = post(path, map[string]string{"X-API-Key": reader})
		require.Equal(t, http.StatusForbidden, code, path)
		require.Contains(t, body, `API key \"dash\" lacks scope \"ingest\"`)
		require.NotContains(t, body, reader)
	}
	require.Empty(t, pub.published(), "refused requests publish nothing")

	code, _, body := post("/v1/events", map[string]string{"Authorization": "Bearer " + ingest})
	require.Equal(t, http.StatusAccepted, code, body)
	require.Equal(t, "shop", pub.published()[0].Source, "the key's tenant is the event's source")

	code, _, body = post("/v1/events", map[string]string{"X-API-Key": limited})
	require.Equal(t, http.StatusAccepted, code, body)
	code, header, body := post("/v1/events", map[string]string{"X-API-Key": limited})
	require.Equal(t, http.StatusTooManyRequests, code, body)
	require.Equal(t, "100", header.Get("Retry-After"), "one token per 100 s at 0.01 req/s")
	require.Len(t, pub.published(), 2)

	for _, secret := range []string{ingest, reader, limited, wrong} {
		require.NotContains(t, logs.String(), secret, "a key in the log")
	}
}

func newKey(t *testing.T) string {
	t.Helper()
	s, err := auth.Generate()
	require.NoError(t, err)
	return s
}

// TestLimitsAnswerItemByItem posts through a loopback server with the
// collector's limits: items beyond the event-time skew, the size, depth
// and field limits are listed with their reasons in a 202, the valid item
// of the request is published.
func TestLimitsAnswerItemByItem(t *testing.T) {
	t.Parallel()
	guard, err := auth.NewGuard(auth.Config{Mode: auth.ModeOff}, nil)
	require.NoError(t, err)
	pub := &fakePublisher{}
	limits := app.Limits{MaxEventBytes: 512, MaxJSONDepth: 3, MaxJSONFields: 20, MaxEventSkew: time.Hour}
	e := httpserver.New(nil, nil)
	ports.NewHTTPServer(app.New(pub, func() time.Time { return now }, limits), maxBody, guard).Register(e)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)

	ev := func(extra string, at time.Time) string {
		return `{"type":"click","user_id":"u","event_time":"` + at.Format(time.RFC3339) + `"` + extra + `}`
	}
	body := "[" + strings.Join([]string{
		ev("", now.Add(-time.Minute)),
		ev("", now.Add(3*time.Hour)),
		ev(`,"page":"`+strings.Repeat("x", 600)+`"`, now),
		ev(`,"properties":{"a":{"b":{"c":1}}}`, now),
		ev(`,"properties":{`+strings.Repeat(`"k":"v",`, 20)+`"z":"v"}`, now),
	}, ",") + "]"
	resp, err := srv.Client().Post(srv.URL+"/v1/events", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var got ports.IngestResponse[ports.EventRejection]
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	require.Equal(t, 1, got.Accepted)
	require.Len(t, pub.published(), 1)
	reasons := map[int64]string{}
	for _, r := range got.Rejected {
		reasons[r.Index] = r.Error
	}
	require.Contains(t, reasons[1], "in the future (COLLECTOR_MAX_EVENT_SKEW)")
	require.Contains(t, reasons[2], "(COLLECTOR_MAX_EVENT_BYTES)")
	require.Contains(t, reasons[3], "nested deeper than 3 levels (COLLECTOR_MAX_JSON_DEPTH)")
	require.Contains(t, reasons[4], "more than 20 JSON fields (COLLECTOR_MAX_JSON_FIELDS)")
}
