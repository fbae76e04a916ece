package events_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/streamwatch/streamwatch/pkg/events"
)

var fuzzReceive = time.UnixMilli(1_800_000_000_000)

// checkMessage fails unless err has a one-line-able, non-empty message that
// is valid UTF-8 when the input was (client input is echoed quoted).
func checkMessage(t *testing.T, err error, input []byte) {
	t.Helper()
	msg := err.Error()
	if strings.TrimSpace(msg) == "" {
		t.Fatalf("empty error message for %q", input)
	}
	if utf8.Valid(input) && !utf8.ValidString(msg) {
		t.Fatalf("error message is not UTF-8: %q", msg)
	}
}

// FuzzParseInput checks the collector's event decoder: it never panics;
// it either returns an error wrapping ErrInvalid with a message, or an
// event that passes Validate and survives the batch codec unchanged.
// Seed corpus: testdata/fuzz/FuzzParseInput.
func FuzzParseInput(f *testing.F) {
	for _, s := range []string{
		`{"type":"page_view","user_id":"u1","page":"/home","event_time":"2026-11-21T10:00:00Z"}`,
		`{"type":"service_request","service":"checkout","status":502,"latency_ms":840,"event_time":1763719200000}`,
		`{"type":"http_request","client_ip":"::1","method":"GET","status":200,"event_time":1,"properties":{"a":"b"}}`,
		`{"type":"purchase","user_id":"u","amount":-1,"event_time":"bad"}`,
		`{"type":"click","user_id":"u","event_time":1e300}`,
		`{"type":"click","user_id":"u","event_time":-9.3e18,"v":2}`,
		`{"type":"metric_sample","series":"cpu","labels":{"h":"a"},"value":1,"event_time":5}`,
		`{"unknown":1}`, `[]`, `null`, `{"type":"click"} {}`, `{"type":`, "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, ok := parsed(t, events.ParseInput, data)
		if !ok {
			return
		}
		if ev.ID == "" || ev.Key != ev.EntityKey() || ev.ReceiveTime != fuzzReceive.UnixMilli() {
			t.Fatalf("collector fields not filled: %+v", ev)
		}
		roundTrip(t, ev)
	})
}

// FuzzParseSample is FuzzParseInput for POST /v1/samples.
func FuzzParseSample(f *testing.F) {
	for _, s := range []string{
		`{"series":"cpu_percent","labels":{"host":"h1"},"value":42.5,"timestamp":"2026-11-21T10:00:00Z"}`,
		`{"series":"cpu","value":0,"timestamp":1}`,
		`{"series":"Cpu","value":1,"timestamp":1}`,
		`{"series":"cpu","labels":{"a b":"c"},"value":1,"timestamp":1}`,
		`{"series":"cpu","value":null,"timestamp":1}`,
		`{"series":"cpu","value":1,"timestamp":-1}`,
		`{"series":"cpu","value":1e309,"timestamp":1}`,
		`{}`, `1`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, ok := parsed(t, events.ParseSample, data)
		if !ok {
			return
		}
		again, err := events.ParseSample(data, fuzzReceive)
		if err != nil || again.ID != ev.ID {
			t.Fatalf("sample id not deterministic: %q then %q (%v)", ev.ID, again.ID, err)
		}
		roundTrip(t, ev)
	})
}

// FuzzDecodeBatch checks the consumers' decoder of events.raw records: it
// never panics, and refuses with ErrUndecodable (the record goes to the
// dead-letter topic) or returns events that encode back to a decodable
// batch of the same events.
func FuzzDecodeBatch(f *testing.F) {
	good, err := events.EncodeBatch([]events.Event{{V: 1, ID: "a", Type: events.TypeClick, Time: 1, UserID: "u", Key: "u"}})
	if err != nil {
		f.Fatal(err)
	}
	rich, err := events.EncodeBatch([]events.Event{{V: 1, ID: "r", Type: events.TypeMetricSample, Time: 2, Series: "cpu",
		Labels: map[string]string{"host": "h"}, Value: 0.5, Properties: map[string]string{"k": "v"}, UserAgent: strings.Repeat("x", 200)}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(rich)
	f.Add(rich[:len(rich)/2])
	f.Add([]byte{0x08, 0x02, 0x12, 0x05, 0xfa, 0x06, 0x01, 'x', 0x08}) // unknown field 111 in an event
	for _, s := range []string{string(good), `{"v":1,"events":[]}`, `{"v":2,"events":[]}`, `{"v":1,"events":[{"v":9}]}`, `{"v":1,"events":[{"v":1,"properties":{"a":1}}]}`, `[`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		evs, err := events.DecodeBatch(data)
		if err != nil {
			if !errors.Is(err, events.ErrUndecodable) {
				t.Fatalf("error %q does not wrap ErrUndecodable", err)
			}
			checkMessage(t, err, data)
			return
		}
		b, err := events.EncodeBatch(evs)
		if err != nil {
			return // e.g. a float that JSON cannot carry back: never produced by DecodeBatch itself
		}
		back, err := events.DecodeBatch(b)
		if err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
		if len(back) != len(evs) {
			t.Fatalf("re-encoded batch has %d events, want %d", len(back), len(evs))
		}
	})
}

// parsed runs a client-input parser on data: an error must wrap ErrInvalid
// and have a message (then ok is false), an event must validate.
func parsed(t *testing.T, parse func([]byte, time.Time) (events.Event, error), data []byte) (events.Event, bool) {
	t.Helper()
	ev, err := parse(data, fuzzReceive)
	if err != nil {
		if !errors.Is(err, events.ErrInvalid) {
			t.Fatalf("error %q does not wrap ErrInvalid", err)
		}
		checkMessage(t, err, data)
		return events.Event{}, false
	}
	if verr := ev.Validate(); verr != nil {
		t.Fatalf("accepted an invalid event: %v", verr)
	}
	return ev, true
}

// roundTrip checks that ev survives EncodeBatch and DecodeBatch.
func roundTrip(t *testing.T, ev events.Event) {
	t.Helper()
	b, err := events.EncodeBatch([]events.Event{ev})
	if err != nil {
		t.Fatalf("encode accepted event: %v", err)
	}
	got, err := events.DecodeBatch(b)
	if err != nil {
		t.Fatalf("decode accepted event: %v", err)
	}
	if len(got) != 1 || !reflect.DeepEqual(normalize(got[0]), normalize(ev)) {
		gj, _ := json.Marshal(got)
		t.Fatalf("round trip changed the event:\n got %s\nwant %+v", gj, ev)
	}
}

// normalize maps an empty map to nil: omitempty drops empty maps.
func normalize(e events.Event) events.Event {
	if len(e.Properties) == 0 {
		e.Properties = nil
	}
	if len(e.Labels) == 0 {
		e.Labels = nil
	}
	return e
}

// FuzzIsName: IsName agrees with NameRe on any string, including
// non-ASCII bytes, upper case, digits first and the empty string.
func FuzzIsName(f *testing.F) {
	for _, s := range []string{"", "a", "_", "9", "a9", "_9_", "A", "aB", "a-b", "a b", "é", "a\x00", "requests_by_status", "a\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := events.IsName(s), events.NameRe.MatchString(s); got != want {
			t.Fatalf("IsName(%q) = %v, NameRe says %v", s, got, want)
		}
	})
}
