package app

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/events"
)

func TestEventSlicesClearWhatTheyKeep(t *testing.T) {
	var p eventSlices
	s := p.get(4)
	require.Empty(t, s)
	require.Equal(t, 4, cap(s))
	s = append(s, events.Event{ID: "a", UserID: "u"}, events.Event{ID: "b"})
	p.put(s)
	for range 10 { // the pool may drop entries; whatever it returns is empty and cleared
		got := p.get(4)
		require.Empty(t, got)
		require.Equal(t, events.Event{}, got[:cap(got)][0], "no request's strings kept")
	}
	p.put(make([]events.Event, 0, maxPooledEvents+1)) // too large: dropped, not an error
}
