package events

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

var diffReceive = time.UnixMilli(1_800_000_000_000)

// diffSeeds are inputs for the differential fuzz tests: the shapes clients
// send and the corners where the fast decoder must step aside.
var diffSeeds = []string{
	`{"type":"page_view","user_id":"u1","page":"/home","event_time":"2026-11-21T10:00:00Z"}`,
	`{"event_id":"gen-1-2","type":"service_request","event_time":1763719200000,"service":"checkout","endpoint":"/api/checkout","status":502,"latency_ms":840.25}`,
	`{"type":"http_request","client_ip":"::1","method":"GET","status":200,"event_time":1,"properties":{"a":"b","a":"c"}}`,
	` {"type":"click","user_id":"u\u00e9\n\"\\\/\b\f\r\t","event_time":1e3} `,
	`{"type":"click","user_id":"u","event_time":-9.3e18,"v":2,"amount":1E-2}`,
	`{"type":"click","user_id":"u","event_time":"2026-11-21T10:00:00.123456789+02:00","properties":{}}`,
	`{"Type":"click","user_id":"u","event_time":1}`,
	`{"type":"click","type":"search","user_id":"u","event_time":1}`,
	`{"type":"click","user_id":null,"event_time":1}`,
	`{"type":"click","user_id":"u","event_time":1,"status":1.0}`,
	`{"type":"click","user_id":"u","event_time":1,"status":99999999999999999999}`,
	`{"type":"click","user_id":"\ud83d\ude00","event_time":1}`,
	"{\"type\":\"click\",\"user_id\":\"\xff\",\"event_time\":1}",
	`{"type":"click","user_id":"u","event_time":01}`,
	`{"type":"click","user_id":"u","event_time":1,}`,
	`{"\u0074ype":"click","user_id":"u","event_time":1}`,
	`{"type":"metric_sample","series":"cpu","labels":{"h":"a"},"value":1,"event_time":5}`,
	`{"series":"cpu","labels":{"host":"h1"},"value":42.5,"timestamp":"2026-11-21T10:00:00Z"}`,
	`{"series":"cpu","value":null,"timestamp":1}`,
	`{"series":"cpu","value":-0,"timestamp":1.5}`,
	`{"type":"click","user_id":"u","event_time":123456789012345}`,
	`{"type":"click","user_id":"u","event_time":12345678901234567}`,
	`{"type":"click","user_id":"u","event_time":1,"properties":{"a":"b"},"properties":{"c":"d"}}`,
	`{"unknown":1}`, `[]`, `null`, `{"type":"click"} {}`, `{"type":`, "", `{}`, `{"a":[1,{"b":true}]}`,
}

// addSeeds adds diffSeeds and the committed corpus of name.
func addSeeds(f *testing.F, name string) {
	for _, s := range diffSeeds {
		f.Add([]byte(s))
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "fuzz", name, "*"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		// "go test fuzz v1\n[]byte(...)": only the simple quoted form is read.
		if _, q, ok := strings.Cut(string(b), "[]byte("); ok {
			var v string
			if err := json.Unmarshal([]byte(strings.TrimSuffix(strings.TrimSpace(q), ")")), &v); err == nil {
				f.Add([]byte(v))
			}
		}
	}
}

// FuzzDecodeInputMatchesEncodingJSON is the differential test of the fast
// decoder: whenever DecodeInput accepts an object, encoding/json (with
// DisallowUnknownFields, as parseInputStd decodes) accepts the same text
// into the same Input, the Shape is what a ':'/bracket count gives, and
// ParseInput returns what parseInputStd returns (the same Event, or the
// same error message).
func FuzzDecodeInputMatchesEncodingJSON(f *testing.F) {
	addSeeds(f, "FuzzParseInput")
	f.Fuzz(func(t *testing.T, data []byte) {
		matchesEncodingJSON(t, data, DecodeInput)
		sameResult(t, data, ParseInput, parseInputStd)
	})
}

// FuzzDecodeSampleMatchesEncodingJSON is FuzzDecodeInputMatchesEncodingJSON
// for samples.
func FuzzDecodeSampleMatchesEncodingJSON(f *testing.F) {
	addSeeds(f, "FuzzParseSample")
	f.Fuzz(func(t *testing.T, data []byte) {
		matchesEncodingJSON(t, data, DecodeSample)
		sameResult(t, data, ParseSample, parseSampleStd)
	})
}

// matchesEncodingJSON checks one fast decoder on data: when it accepts,
// encoding/json decodes the same bytes into an equal T, and the shape is
// what countShape gives.
func matchesEncodingJSON[T any](t *testing.T, data []byte, decode func(string, int, *T) (int, Shape, bool)) {
	t.Helper()
	var fast T
	end, shape, ok := decode(string(data), 0, &fast)
	if !ok {
		return
	}
	if end > len(data) {
		t.Fatalf("end %d beyond the input (%d bytes)", end, len(data))
	}
	item := data[:end]
	var std T
	dec := json.NewDecoder(bytes.NewReader(item))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&std); err != nil {
		t.Fatalf("fast decoder accepted %q, encoding/json refuses: %v", item, err)
	}
	if dec.More() {
		t.Fatalf("fast decoder stopped before the end of the object in %q", item)
	}
	if !reflect.DeepEqual(fast, std) {
		t.Fatalf("decoders differ on %q:\nfast %+v\n std %+v", item, fast, std)
	}
	if want := countShape(item); shape != want {
		t.Fatalf("shape of %q: %+v, want %+v", item, shape, want)
	}
}

// FuzzSkipJSONMatchesValid checks SkipJSON against json.Valid: what it
// skips is valid JSON, and a valid UTF-8 value within the depth is skipped
// whole.
func FuzzSkipJSONMatchesValid(f *testing.F) {
	addSeeds(f, "FuzzParseInput")
	f.Add([]byte(`[[[[1]]]]`))
	f.Add([]byte(` [ "a" , -0.5e+7 , true , false , null , { } , [ ] ] `))
	f.Fuzz(func(t *testing.T, data []byte) {
		const maxDepth = 4
		end, ok := SkipJSON(string(data), 0, maxDepth)
		if ok && !json.Valid(data[:end]) {
			t.Fatalf("SkipJSON accepted %q, json.Valid refuses", data[:end])
		}
		whole := ok && SkipSpace(string(data), end) == len(data)
		if json.Valid(data) && countShape(data).Depth <= maxDepth && utf8.Valid(data) && !whole {
			t.Fatalf("SkipJSON refused the valid %q (ok %v, end %d)", data, ok, end)
		}
	})
}

// sameResult checks that parse (with the fast path) and std (encoding/json
// only) agree on data: equal events, or errors with equal messages. A
// UUIDv7 assigned to an event without event_id differs by nature and is
// compared by version only.
func sameResult(t *testing.T, data []byte, parse, std func([]byte, time.Time) (Event, error)) {
	t.Helper()
	got, gerr := parse(data, diffReceive)
	want, werr := std(data, diffReceive)
	if (gerr == nil) != (werr == nil) || (gerr != nil && gerr.Error() != werr.Error()) {
		t.Fatalf("results differ on %q:\n got err %v\nwant err %v", data, gerr, werr)
	}
	if gerr != nil {
		return
	}
	if got.ID != want.ID {
		g, err1 := uuid.Parse(got.ID)
		w, err2 := uuid.Parse(want.ID)
		if err1 != nil || err2 != nil || g.Version() != 7 || w.Version() != 7 {
			t.Fatalf("event ids differ on %q: %q vs %q", data, got.ID, want.ID)
		}
		got.ID = want.ID
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events differ on %q:\n got %+v\nwant %+v", data, got, want)
	}
}

// countShape counts what the collector's checkJSONShape counts: ':'
// outside strings and the deepest bracket nesting.
func countShape(data []byte) Shape {
	var sh Shape
	depth, inString := 0, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			sh.Depth = max(sh.Depth, depth)
		case '}', ']':
			depth--
		case ':':
			sh.Fields++
		}
	}
	return sh
}
