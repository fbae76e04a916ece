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
	return decodeRecord(schema, payload, nil)
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
	return decodeRecord(schema, payload, &selector{
		skipRaw: func(msg []byte) bool {
			h, ok := peekHead(msg)
			return ok && h.unchanged
		},
		drop: func(r *Result) bool { return r.Unchanged },
	})
}

// DecodeRecordSelect is DecodeRecord for a consumer that reads some
// metrics only (the detector: the metrics its rules name): a result whose
// metric keep rejects is left out, and its shard and watermark (ms) are
// handed to skipped (nil: not wanted), in record order, so the consumer
// can still follow every shard's watermark. In a binary batch such a
// result is not decoded or validated: only its metric, shard and
// watermark fields are read. In the JSON schemas every result is decoded
// and validated, then filtered. keep gets the metric name's bytes, valid
// only during the call. Errors as DecodeRecord; the index in an error
// counts the skipped results too.
func DecodeRecordSelect(schema string, payload []byte, keep func(metric []byte) bool, skipped func(shard int32, watermark int64)) ([]Result, error) {
	if skipped == nil {
		skipped = func(int32, int64) {}
	}
	return decodeRecord(schema, payload, &selector{
		skipRaw: func(msg []byte) bool {
			h, ok := peekHead(msg)
			if !ok || keep(h.metric) {
				return false // decoded, and a broken one named
			}
			skipped(h.shard, h.watermark)
			return true
		},
		drop: func(r *Result) bool {
			if keep([]byte(r.Metric)) {
				return false
			}
			skipped(r.Shard, r.Watermark)
			return true
		},
	})
}

// selector leaves results out of a decoded record: skipRaw from a binary
// batch before decoding (a Result message's bytes), drop from the JSON
// schemas after decoding and validation.
type selector struct {
	skipRaw func(msg []byte) bool
	drop    func(r *Result) bool
}

func decodeRecord(schema string, payload []byte, sel *selector) ([]Result, error) {
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
	var rs []Result
	switch schema {
	case ResultSchema:
		var r Result
		if err := json.Unmarshal(payload, &r); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrUndecodable, schema, err)
		}
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrUndecodable, schema, err)
		}
		rs = []Result{r}
	case BatchSchemaV2:
		var skip func([]byte) bool
		if sel != nil {
			skip = sel.skipRaw
		}
		out, err := decodeBinaryBatch(payload, skip)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrUndecodable, schema, err)
		}
		return out, nil
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
		rs = b.Results
	default:
		return nil, fmt.Errorf("%w: unknown schema %q", ErrUndecodable, schema)
	}
	if sel != nil {
		rs = slices.DeleteFunc(rs, func(r Result) bool { return sel.drop(&r) })
	}
	return rs, nil
}
