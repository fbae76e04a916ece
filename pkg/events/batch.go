package events

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Schemas of events.raw (and events.late) records, the value of their
// schema metadata. This build writes BatchSchema and reads both.
const (
	// BatchSchema is the binary format (Protocol Buffers wire format of
	// events.proto, see binary.go), written by this build.
	BatchSchema = "events.batch.v2"
	// BatchSchemaJSON is the JSON format of earlier builds ({"v":1,
	// "events":[...]}), still read so that the log stays replayable.
	BatchSchemaJSON = "events.batch.v1"
)

// ErrUndecodable is wrapped by DecodeBatch errors: the record is poison and
// belongs on the dead-letter topic.
var ErrUndecodable = errors.New("undecodable batch record")

// Batch is the JSON payload of one events.batch.v1 record: events of one
// Kafka partition, in the order the collector received them.
type Batch struct {
	// V is the batch schema version (1).
	V int `json:"v"`
	// Events are the events; each keeps its own schema version.
	Events []Event `json:"events"`
}

// CheckBatchSchema returns an error wrapping ErrUndecodable unless schema,
// the schema metadata of a record, is BatchSchema, BatchSchemaJSON or empty
// (a record without metadata: the payload decides).
func CheckBatchSchema(schema string) error {
	switch schema {
	case "", BatchSchema, BatchSchemaJSON:
		return nil
	}
	return fmt.Errorf("%w: schema %q, this build reads %q and %q", ErrUndecodable, schema, BatchSchema, BatchSchemaJSON)
}

// EncodeBatch encodes events as one batch record payload in the binary
// format (schema BatchSchema); it appends to a fresh slice (see AppendBatch
// to reuse one). It never fails; the error is kept for the callers of the
// JSON codec it replaced.
func EncodeBatch(evs []Event) ([]byte, error) {
	return AppendBatch(make([]byte, 0, 64+200*len(evs)), evs), nil
}

// EncodeBatchJSON encodes events as one JSON record payload of schema
// BatchSchemaJSON, as builds before the binary format wrote them; for
// tools and compatibility tests. It fails only if an event cannot be
// encoded (a NaN or infinite number).
func EncodeBatchJSON(evs []Event) ([]byte, error) {
	b, err := json.Marshal(Batch{V: 1, Events: evs})
	if err != nil {
		return nil, fmt.Errorf("encode batch of %d events: %w", len(evs), err)
	}
	return b, nil
}

// DecodeBatch decodes a batch record payload of either schema: binary v2
// (first byte 0x08) or JSON v1. It accepts event schema versions up to
// SchemaVersion and events within CheckBounds; anything else, a malformed
// payload and another batch version return an error wrapping
// ErrUndecodable (the whole record is poison: the collector never writes
// such an event).
func DecodeBatch(payload []byte) ([]Event, error) {
	return DecodeBatchInto(payload, nil, json.Unmarshal)
}

// DecodeBatchInto is DecodeBatch into buf's array: a caller that reuses its
// buffer allocates no event slice per record, only the events' strings.
// The result may share buf's array. Binary events are reset before they
// are filled; JSON v1 payloads are decoded with unmarshal (e.g.
// encoding/json.Unmarshal, or a faster compatible decoder) into buf, whose
// elements must then be zero up to its capacity (decoding into an element
// keeps the fields the JSON lacks).
func DecodeBatchInto(payload []byte, buf []Event, unmarshal func([]byte, any) error) ([]Event, error) {
	return decodeBatch(payload, buf, unmarshal, false)
}

// DecodeBatchShared is DecodeBatchInto for a caller that keeps no string of
// the events beyond the record, or copies the ones it keeps
// (strings.Clone): the strings of a binary record's events are substrings
// of one copy of the payload instead of one allocation each (about 6 fewer
// allocations per event), so one kept string keeps that whole copy alive.
// JSON records decode as with DecodeBatchInto.
func DecodeBatchShared(payload []byte, buf []Event, unmarshal func([]byte, any) error) ([]Event, error) {
	return decodeBatch(payload, buf, unmarshal, true)
}

func decodeBatch(payload []byte, buf []Event, unmarshal func([]byte, any) error, shared bool) ([]Event, error) {
	var evs []Event
	if isBinaryBatch(payload) {
		var err error
		if evs, err = decodeBinaryBatch(payload, buf, shared); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUndecodable, err)
		}
	} else {
		b := Batch{Events: buf[:0]}
		if err := unmarshal(payload, &b); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUndecodable, err)
		}
		if b.V != 1 {
			return nil, fmt.Errorf("%w: batch version %d (this build reads 1 as JSON and 2 as binary)", ErrUndecodable, b.V)
		}
		evs = b.Events
	}
	for i := range evs {
		if v := evs[i].V; v < 1 || v > SchemaVersion {
			return nil, fmt.Errorf("%w: event %d has schema version %d (this build reads 1..%d)", ErrUndecodable, i, v, SchemaVersion)
		}
		if err := evs[i].CheckBounds(); err != nil {
			return nil, fmt.Errorf("%w: event %d (%s): %w", ErrUndecodable, i, evs[i].ID, err)
		}
	}
	return evs, nil
}
