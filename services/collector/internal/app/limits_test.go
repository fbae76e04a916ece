package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/services/collector/internal/app"
)

// clock is 2027-01-15T08:00:00Z; these times are relative to it.
func ms(d time.Duration) int64 { return clock().Add(d).UnixMilli() }

func click(extra string, at int64) string {
	return fmt.Sprintf(`{"type":"click","user_id":"u","event_time":%d%s}`, at, extra)
}

func TestIngestEventsLimits(t *testing.T) {
	t.Parallel()
	limits := app.Limits{MaxEventBytes: 300, MaxJSONDepth: 4, MaxJSONFields: 10, MaxEventAge: 24 * time.Hour, MaxEventSkew: time.Hour}
	nested := `,"properties":{"a":` + strings.Repeat(`{"b":`, 4) + `1` + strings.Repeat(`}`, 4) + `}`
	manyProps := `,"properties":{` + strings.Repeat(`"k":"v",`, 10) + `"z":"v"}`
	tests := []struct {
		name    string
		item    string
		wantErr string
	}{
		{"valid", click("", ms(-time.Minute)), ""},
		{"too large", click(`,"page":"`+strings.Repeat("p", 300)+`"`, ms(0)), "invalid event: event is 367 bytes, more than the limit of 300 (COLLECTOR_MAX_EVENT_BYTES)"},
		{"too deep", click(nested, ms(0)), "invalid event: JSON nested deeper than 4 levels (COLLECTOR_MAX_JSON_DEPTH)"},
		{"brackets in strings do not count", click(`,"page":"[[[[{{{{:::::::::::"`, ms(0)), ""},
		{"too many fields", click(manyProps, ms(0)), "invalid event: more than 10 JSON fields (COLLECTOR_MAX_JSON_FIELDS)"},
		{"far future", click("", ms(2*time.Hour)), `field "event_time": 2027-01-15T10:00:00Z is more than 1h0m0s in the future (COLLECTOR_MAX_EVENT_SKEW)`},
		{"near future", click("", ms(59*time.Minute)), ""},
		{"far past", click("", ms(-25*time.Hour)), `field "event_time": 2027-01-14T07:00:00Z is more than 24h0m0s in the past (COLLECTOR_MAX_EVENT_AGE)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pub := &fakePublisher{}
			// The item travels with a valid one: that one is always accepted.
			body := "[" + tt.item + "," + click("", ms(0)) + "]"
			res, err := app.New(pub, clock, limits).IngestEvents.Handle(context.Background(), app.IngestEvents{Body: strings.NewReader(body)})
			require.NoError(t, err)
			if tt.wantErr == "" {
				require.Equal(t, 2, res.Accepted)
				require.Empty(t, res.Rejected)
				return
			}
			require.Equal(t, 1, res.Accepted, "the valid item of the request is accepted")
			require.Len(t, res.Rejected, 1)
			require.EqualValues(t, 0, res.Rejected[0].Position)
			require.Equal(t, tt.wantErr, res.Rejected[0].ErrorMessage())
			require.ErrorIs(t, res.Rejected[0].Err, events.ErrInvalid)
			require.Len(t, pub.published(), 1)
		})
	}
}

func TestIngestEventsRefusesDeepArrayBeforeDecoding(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	_, err := app.New(&fakePublisher{}, clock, app.Limits{MaxJSONDepth: 8}).IngestEvents.Handle(context.Background(), app.IngestEvents{Body: strings.NewReader(body)})
	require.ErrorContains(t, err, "JSON nested deeper than 128 levels")
	var reqErr *app.RequestError
	require.ErrorAs(t, err, &reqErr)
}

func TestIngestSamplesTimeBounds(t *testing.T) {
	t.Parallel()
	pub := &fakePublisher{}
	body := fmt.Sprintf(`{"series":"cpu","value":1,"timestamp":%d}`+"\n"+`{"series":"cpu","value":1,"timestamp":%d}`, ms(3*time.Hour), ms(0))
	res, err := app.New(pub, clock, app.Limits{MaxEventSkew: time.Hour}).IngestSamples.Handle(context.Background(), app.IngestEvents{Body: strings.NewReader(body)})
	require.NoError(t, err)
	require.Equal(t, 1, res.Accepted)
	require.Len(t, res.Rejected, 1)
	require.Contains(t, res.Rejected[0].ErrorMessage(), "in the future (COLLECTOR_MAX_EVENT_SKEW)")
}

// The real 2015 access log replays with the default bounds (no age bound)
// and is refused line by line when an age bound is configured.
func TestIngestLogsEventAgeBound(t *testing.T) {
	t.Parallel()
	lines := `83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /a HTTP/1.1" 200 203023 "-" "ua"` + "\n" +
		fmt.Sprintf(`83.149.9.216 - - [%s] "GET /b HTTP/1.1" 200 1 "-" "ua"`, clock().Add(-time.Minute).Format("02/Jan/2006:15:04:05 -0700")) + "\n"
	pub := &fakePublisher{}
	res, err := app.New(pub, clock, app.Limits{MaxEventSkew: time.Hour}).IngestLogs.Handle(context.Background(), app.IngestLogs{Body: strings.NewReader(lines), Source: "s"})
	require.NoError(t, err)
	require.Equal(t, 2, res.Accepted, "no age bound: 2015 replays")

	res, err = app.New(pub, clock, app.Limits{MaxEventAge: 7 * 24 * time.Hour}).IngestLogs.Handle(context.Background(), app.IngestLogs{Body: strings.NewReader(lines), Source: "s"})
	require.NoError(t, err)
	require.Equal(t, 1, res.Accepted)
	require.Len(t, res.Rejected, 1)
	require.EqualValues(t, 1, res.Rejected[0].Position)
	require.Equal(t, `field "event_time": 2015-05-17T10:05:03Z is more than 168h0m0s in the past (COLLECTOR_MAX_EVENT_AGE)`, res.Rejected[0].ErrorMessage())
}

func TestTenantScopesTheSource(t *testing.T) {
	t.Parallel()
	pub := &fakePublisher{}
	a := app.New(pub, clock, app.Limits{})
	body := "[" + click("", ms(0)) + "," + click(`,"source":"shop/eu"`, ms(0)) + "," + click(`,"source":"other"`, ms(0)) + "," + click(`,"source":"shopping"`, ms(0)) + "]"
	res, err := a.IngestEvents.Handle(context.Background(), app.IngestEvents{Body: strings.NewReader(body), Tenant: "shop"})
	require.NoError(t, err)
	require.Equal(t, 2, res.Accepted)
	require.Len(t, res.Rejected, 2)
	require.Equal(t, `field "source": "other" is outside the API key's tenant "shop" (allowed: "shop" or "shop/...")`, res.Rejected[0].ErrorMessage())
	require.EqualValues(t, 3, res.Rejected[1].Position, `"shopping" is not "shop/..."`)
	got := pub.published()
	require.Equal(t, "shop", got[0].Source, "an event without a source gets the tenant")
	require.Equal(t, "shop/eu", got[1].Source)

	line := `83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /a HTTP/1.1" 200 1 "-" "ua"` + "\n"
	_, err = a.IngestLogs.Handle(context.Background(), app.IngestLogs{Body: strings.NewReader(line), Source: "web1.log", Tenant: "shop"})
	require.ErrorContains(t, err, `source "web1.log" is outside the API key's tenant "shop"`)
	res, err = a.IngestLogs.Handle(context.Background(), app.IngestLogs{Body: strings.NewReader(line), Source: "shop/web1.log", Tenant: "shop"})
	require.NoError(t, err)
	require.Equal(t, 1, res.Accepted)
	res, err = a.IngestLogs.Handle(context.Background(), app.IngestLogs{Body: strings.NewReader(line), Tenant: "shop"})
	require.NoError(t, err)
	require.Equal(t, 1, res.Accepted)
	got = pub.published()
	require.Equal(t, "shop/web1.log", got[len(got)-2].Source)
	require.Equal(t, "shop", got[len(got)-1].Source)
}

func (f *fakePublisher) published() []events.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]events.Event(nil), f.events...)
}
