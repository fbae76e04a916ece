package app

import (
	gojson "github.com/goccy/go-json"

	"github.com/streamwatch/streamwatch/pkg/metrics"
)

// decodeResults is metrics.DecodeRecord with a faster JSON decoder for
// batch records, the detector's hot path: a minute boundary brings every
// final window result of the minute at once, and encoding/json decoding
// them was ~60 % of Detect.Apply's time (BenchmarkApplyFinalBatch). A batch
// record that goccy/go-json decodes whole, with version 1 and every result
// valid, is returned as it is; any other record (another schema, or one
// that does not decode or validate) goes through metrics.DecodeRecord, so
// what is accepted and the error a poison record is dead-lettered with stay
// DecodeRecord's.
func decodeResults(schema string, payload []byte) ([]metrics.Result, error) {
	if schema == metrics.BatchSchema {
		var b metrics.Batch
		if gojson.UnmarshalNoEscape(payload, &b) == nil && b.V == 1 && allValid(b.Results) {
			return b.Results, nil
		}
	}
	return metrics.DecodeRecord(schema, payload)
}

func allValid(rs []metrics.Result) bool {
	for i := range rs {
		if rs[i].Validate() != nil {
			return false
		}
	}
	return true
}
