package events_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/events"
)

func TestParseSample(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1_700_000_000_000)
	e, err := events.ParseSample([]byte(`{"series":"cpu","labels":{"host":"a","core":"1"},"value":0,"timestamp":"2026-11-21T10:00:00Z"}`), now)
	require.NoError(t, err)
	require.Equal(t, events.TypeMetricSample, e.Type)
	require.Equal(t, `cpu{core="1",host="a"}`, e.Key)
	require.Equal(t, time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC).UnixMilli(), e.Time)
	again, err := events.ParseSample([]byte(`{"labels":{"core":"1","host":"a"},"series":"cpu","value":5,"timestamp":1795255200000}`), now)
	require.NoError(t, err)
	require.Equal(t, e.ID, again.ID, "same series and time: same id")

	b, err := events.EncodeBatch([]events.Event{e})
	require.NoError(t, err)
	back, err := events.DecodeBatch(b)
	require.NoError(t, err)
	require.Equal(t, e, back[0])

	for _, tc := range []struct{ in, want string }{
		{`{"series":"cpu","timestamp":1}`, `field "value": missing`},
		{`{"series":"cpu","value":1}`, `field "timestamp": missing`},
		{`{"series":"CPU load","value":1,"timestamp":1}`, `field "series"`},
		{`{"series":"cpu","labels":{"Host":"a"},"value":1,"timestamp":1}`, `field "labels.Host"`},
		{`{"series":"cpu","value":"high","timestamp":1}`, `field "value"`},
		{`{"series":"cpu","value":1,"timestamp":1,"unit":"%"}`, `unit`},
	} {
		_, err := events.ParseSample([]byte(tc.in), now)
		require.ErrorIs(t, err, events.ErrInvalid, tc.in)
		require.ErrorContains(t, err, tc.want, tc.in)
	}
}
