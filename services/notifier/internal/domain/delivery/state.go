// Package delivery keeps the notifier's memory of what it has delivered, per
// partition of the alerts topic. No I/O.
package delivery

// Retention is how far back in event time (ms) the state remembers sent
// alerts: 7 days. An alert state change older than the newest one seen minus
// Retention that arrives again is treated as new.
const Retention int64 = 7 * 24 * 3600 * 1000

// State remembers which alert state changes were delivered.
type State struct {
	// Sent maps an alert state change id (alerts.Alert.ID) to its StartsAt, ms.
	Sent map[string]int64 `json:"sent"`
	// Newest is the largest StartsAt seen, ms.
	Newest int64 `json:"newest"`
}

// NewState returns an empty state.
func NewState() *State { return &State{Sent: map[string]int64{}} }

// Seen reports whether the state change id was delivered already.
func (s *State) Seen(id string) bool {
	_, ok := s.Sent[id]
	return ok
}

// MarkSent records a delivered state change and forgets those older than
// Retention before the newest.
func (s *State) MarkSent(id string, startsAt int64) {
	s.Sent[id] = startsAt
	if startsAt > s.Newest {
		s.Newest = startsAt
	}
	for k, t := range s.Sent {
		if t < s.Newest-Retention {
			delete(s.Sent, k)
		}
	}
}
