package events

import (
	"encoding/json"
	"errors"
	"fmt"
)

// BatchSchema is the value of the schema metadata on events.raw records.
const BatchSchema = "events.batch.v1"

// ErrUndecodable is wrapped by DecodeBatch errors: the record is poison and
// belongs on the dead-letter topic.
var ErrUndecodable = errors.New("undecodable batch record")

// Batch is the payload of one events.raw record: events of one Kafka
// partition, in the order the collector received them.
type Batch struct {
	// V is the batch schema version (1).
	V int `json:"v"`
	// Events are the events; each keeps its own schema version.
	Events []Event `json:"events"`
}

// EncodeBatch encodes events as one batch record payload (JSON, schema
// events.batch.v1). It fails only if an event cannot be encoded.
func EncodeBatch(evs []Event) ([]byte, error) {
	b, err := json.Marshal(Batch{V: 1, Events: evs})
	if err != nil {
		return nil, fmt.Errorf("encode batch of %d events: %w", len(evs), err)
	}
	return b, nil
}

// DecodeBatch decodes a batch record payload. It accepts batch versions up to
// 1 and event schema versions up to SchemaVersion, and events within
// CheckBounds; anything else, and malformed JSON, returns an error wrapping
// ErrUndecodable (the whole record is poison: the collector never writes
// such an event).
func DecodeBatch(payload []byte) ([]Event, error) {
	var b Batch
	if err := json.Unmarshal(payload, &b); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUndecodable, err)
	}
	if b.V < 1 || b.V > 1 {
		return nil, fmt.Errorf("%w: batch version %d (this build reads 1)", ErrUndecodable, b.V)
	}
	for i := range b.Events {
		if v := b.Events[i].V; v < 1 || v > SchemaVersion {
			return nil, fmt.Errorf("%w: event %d has schema version %d (this build reads 1..%d)", ErrUndecodable, i, v, SchemaVersion)
		}
		if err := b.Events[i].CheckBounds(); err != nil {
			return nil, fmt.Errorf("%w: event %d (%s): %w", ErrUndecodable, i, b.Events[i].ID, err)
		}
	}
	return b.Events, nil
}
