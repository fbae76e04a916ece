package ports_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/events"
)

func TestPostSamples(t *testing.T) {
	t.Parallel()
	pub := &fakePublisher{}
	e := newServer(pub)
	body := `{"series":"cpu","labels":{"host":"a"},"value":0.93,"timestamp":"2026-11-21T10:00:00Z"}
{"series":"cpu","labels":{"host":"a"},"timestamp":1795255260000}
{"series":"cpu","labels":{"host":"a"},"value":0.5,"timestamp":1795255260000}
`
	rec := do(t, e, request{target: "/v1/samples", contentType: "application/x-ndjson", body: strings.NewReader(body)})
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	r, _ := decode(t, rec)
	require.Equal(t, 2, r.Accepted)
	require.Len(t, r.Rejected, 1)
	require.Equal(t, int64(1), *r.Rejected[0].Index)
	require.Contains(t, r.Rejected[0].Error, `field "value": missing`)
	got := pub.published()
	require.Len(t, got, 2)
	require.Equal(t, events.TypeMetricSample, got[0].Type)
	require.Equal(t, `cpu{host="a"}`, got[0].Key)
	require.InDelta(t, 0.93, got[0].Value, 1e-12)

	rec = do(t, e, request{target: "/v1/samples", body: strings.NewReader(`[{"series":"Bad Name","value":1,"timestamp":1}]`)})
	require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
}
