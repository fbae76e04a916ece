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
	for _, payload := range []string{
		string(valid), `{"v":2,"events":[]}`, `{"v":1,"events":[{"v":9}]}`, `{"v":1,"events":[`, `[]`, `{"v":1,"events":[{"v":1,"bytes":"x"}]}`,
	} {
		want, wantErr := events.DecodeBatch([]byte(payload))
		got, gotErr := decodeBatch([]byte(payload))
		require.Equal(t, want, got, payload)
		require.Equal(t, wantErr == nil, gotErr == nil, payload)
		if wantErr != nil {
			require.ErrorIs(t, gotErr, events.ErrUndecodable, payload)
		}
	}
}
