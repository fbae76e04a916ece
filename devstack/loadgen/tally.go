package loadgen

import (
	"strconv"
	"time"
)

// Tally is the generator's exact account of what it produced. Minutes are
// event-time minute starts in ms since the epoch.
type Tally struct {
	// Total counts items produced (JSON events plus log lines).
	Total int64 `json:"total"`
	// Dropped counts base events skipped by a TrafficDrop incident.
	Dropped int64 `json:"dropped"`
	// ByType counts items per event type.
	ByType map[string]int64 `json:"by_type"`
	// LogLines counts access-log lines.
	LogLines int64 `json:"log_lines"`
	// RequestsPerMinute counts http_request and service_request items per
	// event-time minute.
	RequestsPerMinute map[int64]int64 `json:"requests_per_minute"`
	// ClientPerMinute counts access-log lines per "client_ip|minute".
	ClientPerMinute map[string]int64 `json:"client_per_minute"`
	// ServerErrorsPerMinute counts 5xx requests per event-time minute.
	ServerErrorsPerMinute map[int64]int64 `json:"server_errors_per_minute"`
}

func newTally() Tally {
	return Tally{
		ByType: map[string]int64{}, RequestsPerMinute: map[int64]int64{},
		ClientPerMinute: map[string]int64{}, ServerErrorsPerMinute: map[int64]int64{},
	}
}

func (t *Tally) add(it Item) {
	t.Total++
	t.ByType[it.Type]++
	minute := it.Time.Truncate(time.Minute).UnixMilli()
	if it.Line != "" {
		t.LogLines++
		t.ClientPerMinute[it.ClientIP+"|"+strconv.FormatInt(minute, 10)]++
	}
	if it.Type == "http_request" || it.Type == "service_request" {
		t.RequestsPerMinute[minute]++
		if it.Status >= 500 {
			t.ServerErrorsPerMinute[minute]++
		}
	}
}

// Requests returns the number of http_request and service_request items.
func (t *Tally) Requests() int64 { return t.ByType["http_request"] + t.ByType["service_request"] }
