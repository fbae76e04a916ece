package metrics

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// BatchSchema is the schema metadata of a metrics.windows record that holds
// several results as JSON (Batch); ResultSchema marks a record holding one
// Result; BatchSchemaV2 (binary.go) is the binary batch the aggregator
// writes since issue 10.
const BatchSchema = "metrics.windows.batch.v1"

// ErrUndecodable is wrapped by DecodeRecord errors: the record is poison.
var ErrUndecodable = errors.New("undecodable window result record")

// Batch is the payload of a metrics.windows record with several results,
// all with the same record key (metric + labels) or all from one shard.
type Batch struct {
	V       int      `json:"v"`
	Results []Result `json:"results"`
}

// EncodeBatch encodes results as one record payload (schema BatchSchema).
func EncodeBatch(rs []Result) ([]byte, error) {
	b, err := json.Marshal(Batch{V: 1, Results: rs})
	if err != nil {
		return nil, fmt.Errorf("encode %d window results: %w", len(rs), err)
	}
	return b, nil
}

// DecodeRecord decodes a metrics.windows record of any schema: schema is
// the record's schema metadata (ResultSchema, BatchSchema, BatchSchemaV2,
// or "" to detect from the payload: a binary batch starts with 0x08, a JSON
// object with a "results" array is a JSON batch). Every
// result is validated. Errors wrap ErrUndecodable and name the schema and,
// for a batch, the index of the bad result.
func DecodeRecord(schema string, payload []byte) ([]Result, error) {
	return decodeRecord(schema, payload, false)
}

// DecodeRecordChanged is DecodeRecord without the Unchanged results (a
// final that repeats its window's previous revision): what a projection of
// values alone, such as the query service's live view, needs. In a binary
// batch (BatchSchemaV2) these are skipped without being decoded or
// validated, only their framing is checked, so the minute boundary's
// finals, nine in ten of them Unchanged, cost a scan of their tags; in the
// JSON schemas every result is decoded and validated, then filtered. It
// returns an empty slice when every result is Unchanged. Errors as
// DecodeRecord; the index in an error counts the skipped results too.
func DecodeRecordChanged(schema string, payload []byte) ([]Result, error) {
	return decodeRecord(schema, payload, true)
}

func decodeRecord(schema string, payload []byte, skipUnchanged bool) ([]Result, error) {
	if schema == "" && isBinaryBatch(payload) {
		schema = BatchSchemaV2
	}
	if schema == "" {
		var probe struct {
			Results json.RawMessage `json:"results"`
		}
		if json.Unmarshal(payload, &probe) == nil && len(probe.Results) > 0 {
			schema = BatchSchema
		} else {
			schema = ResultSchema
		}
	}
	switch schema {
	case ResultSchema:
		var r Result
		if err := json.Unmarshal(payload, &r); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrUndecodable, schema, err)
		}
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrUndecodable, schema, err)
		}
		if skipUnchanged && r.Unchanged {
			return []Result{}, nil
		}
		return []Result{r}, nil
	case BatchSchemaV2:
		rs, err := decodeBinaryBatch(payload, skipUnchanged)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrUndecodable, schema, err)
		}
		for i := range rs {
			if err := rs[i].Validate(); err != nil {
				return nil, fmt.Errorf("%w: %s: result %d: %w", ErrUndecodable, schema, i, err)
			}
		}
		return rs, nil
	case BatchSchema:
		var b Batch
		if err := json.Unmarshal(payload, &b); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrUndecodable, schema, err)
		}
		if b.V != 1 {
			return nil, fmt.Errorf("%w: %s: batch version %d (this build reads 1)", ErrUndecodable, schema, b.V)
		}
		for i := range b.Results {
			if err := b.Results[i].Validate(); err != nil {
				return nil, fmt.Errorf("%w: %s: result %d: %w", ErrUndecodable, schema, i, err)
			}
		}
		if skipUnchanged {
			return slices.DeleteFunc(b.Results, func(r Result) bool { return r.Unchanged }), nil
		}
		return b.Results, nil
	}
	return nil, fmt.Errorf("%w: unknown schema %q", ErrUndecodable, schema)
}
