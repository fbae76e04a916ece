package app

import (
	gojson "github.com/goccy/go-json"

	"github.com/streamwatch/streamwatch/pkg/events"
)

// decodeBatch decodes an events.raw batch record as events.DecodeBatch does
// (both schemas, the same version and bounds checks, errors wrapping
// events.ErrUndecodable) into buf's array (see events.DecodeBatchShared; buf
// must be all zero values up to its capacity for a JSON record). Binary
// (events.batch.v2) records use the events package's protowire decoder,
// with the strings of a record's events sharing one copy of the payload:
// the windowing engine copies the few it keeps (label sets, top-k keys),
// TestApplyKeepsNoRecord checks that. JSON (events.batch.v1) records,
// written by builds before it, use goccy/go-json, about 3 times faster
// than encoding/json on them.
func decodeBatch(payload []byte, buf []events.Event) ([]events.Event, error) {
	return events.DecodeBatchShared(payload, buf, gojson.Unmarshal)
}
