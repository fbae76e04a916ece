package app

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/events"
)

// TestDecodeBatchAgreesWithEvents checks the fast decoder against
// events.DecodeBatch on valid and invalid records.
func TestDecodeBatchAgreesWithEvents(t *testing.T) {
	t.Parallel()
	valid, err := events.EncodeBatch([]events.Event{
		{V: 1, ID: "a", Type: events.TypeHTTPRequest, Time: 1, ClientIP: "1.2.3.4", Method: "GET", Status: 200, Bytes: 5, Path: "/ü\"x"},
		{V: 1, ID: "b", Type: events.TypePurchase, Time: 2, UserID: "u", Amount: 9.5, Properties: map[string]string{"k": "v"}},
	})
	require.NoError(t, err)
	validJSON, err := events.EncodeBatchJSON([]events.Event{
		{V: 1, ID: "a", Type: events.TypeHTTPRequest, Time: 1, ClientIP: "1.2.3.4", Method: "GET", Status: 200, Bytes: 5, Path: "/ü\"x"},
	})
	require.NoError(t, err)
	for _, payload := range []string{
		string(valid), string(validJSON), string(valid[:len(valid)-3]), "\x08\x03", `{"v":2,"events":[]}`, `{"v":1,"events":[{"v":9}]}`, `{"v":1,"events":[`, `[]`, `{"v":1,"events":[{"v":1,"bytes":"x"}]}`,
		// Absurd values (events.CheckBounds): year 9999, a time far ahead of
		// the receive time, a negative byte count, no time.
		`{"v":1,"events":[{"v":1,"event_id":"x","event_time":253402300799000}]}`,
		`{"v":1,"events":[{"v":1,"event_id":"x","event_time":1800000000000,"receive_time":1700000000000}]}`,
		`{"v":1,"events":[{"v":1,"event_id":"x","event_time":1,"bytes":-5}]}`,
		`{"v":1,"events":[{"v":1,"event_id":"x"}]}`,
	} {
		want, wantErr := events.DecodeBatch([]byte(payload))
		got, gotErr := decodeBatch([]byte(payload), nil)
		require.Equal(t, want, got, payload)
		require.Equal(t, wantErr == nil, gotErr == nil, payload)
		if wantErr != nil {
			require.ErrorIs(t, gotErr, events.ErrUndecodable, payload)
		}
	}
}

// TestDecodeBatchIntoBuffer checks that decoding into a reused, cleared
// buffer gives what events.DecodeBatch gives, with no field left over from
// the previous record, also when the record is longer than the buffer.
func TestDecodeBatchIntoBuffer(t *testing.T) {
	t.Parallel()
	first, err := events.EncodeBatch([]events.Event{
		{V: 1, ID: "a", Type: events.TypeServiceRequest, Time: 1, Service: "s", LatencyMs: 3, Status: 500},
		{V: 1, ID: "b", Type: events.TypePurchase, Time: 2, UserID: "u", Amount: 9.5, Properties: map[string]string{"k": "v"}},
	})
	require.NoError(t, err)
	long := make([]events.Event, 100)
	for i := range long {
		long[i] = events.Event{V: 1, ID: "l", Type: events.TypePageView, Time: int64(i + 1), Page: "/p"}
	}
	second, err := events.EncodeBatch(long)
	require.NoError(t, err)
	buf := make([]events.Event, 0, 4)
	for _, payload := range [][]byte{first, second, first} {
		want, err := events.DecodeBatch(payload)
		require.NoError(t, err)
		got, err := decodeBatch(payload, buf)
		require.NoError(t, err)
		require.Equal(t, want, got)
		buf = got[:cap(got)]
		clear(buf)
		buf = buf[:0]
	}
}
