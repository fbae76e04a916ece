package app

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/streamwatch/streamwatch/pkg/events"
)

// recorder is an EventPublisher that keeps what it was given.
type recorder struct {
	mu  sync.Mutex
	evs []events.Event
}

func (r *recorder) PublishEvents(_ context.Context, _ string, evs []events.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, evs...)
	return nil
}

// FuzzFastArrayMatchesStd is the differential test of the one-pass paths
// (fastArray, and fastLines for NDJSON): for any body, read as a JSON array
// or as NDJSON, IngestEvents and IngestSamples answer exactly as their
// encoding/json path does (same request error, same accepted events,
// same rejections with the same positions and messages), with small limits
// so that the size, depth and field checks are exercised too. UUIDv7 ids
// assigned to events without event_id are compared by version only.
func FuzzFastArrayMatchesStd(f *testing.F) {
	for _, s := range []string{
		`[{"event_id":"a","type":"service_request","event_time":1763719200000,"service":"checkout","status":200,"latency_ms":8.5},
		  {"type":"page_view","user_id":"u1","event_time":"2026-11-21T10:00:00Z","properties":{"a":"b"}},
		  {"type":"click","user_id":"u","event_time":1,"unknown":1}, 1, null, [], "x",
		  {"type":"click","source":"other","user_id":"u","event_time":1},
		  {"type":"click","user_id":"u","event_time":1,"properties":{"a":{"b":{"c":{}}}}},
		  {"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13}]`,
		`[{"series":"cpu","labels":{"h":"a"},"value":1,"timestamp":5},{"series":"cpu","value":null,"timestamp":1}]`,
		`[{"type":"click","user_id":"` + strings.Repeat("x", 400) + `","event_time":1}]`,
		// 300 bytes, MaxEventBytes: fits as an array item, not as an NDJSON
		// line, whose "\n" counts.
		`{"type":"click","user_id":"u","event_time":1,"page":"` + strings.Repeat("p", 300-55) + `"}` + "\n",
		`[]`, ` [ ] `, `[1,]`, `[{"a":1}] x`, `[{"a":1}`, `[` + strings.Repeat("[", 130) + strings.Repeat("]", 130) + `]`,
		"[{\"type\":\"click\",\"user_id\":\"\xff\",\"event_time\":1}]", `[{"type":"click","user_id":"u","event_time":1e400}]`,
		"[\n{\"type\":\"click\",\"user_id\":\"u\",\"event_time\":1}\n,\t{}\r\n]\n",
		"{\"type\":\"click\",\"user_id\":\"u\",\"event_time\":1}\r\n\n \v\n{\"type\":\"click\",\n\"user_id\":\"u\",\"event_time\":1}\n{} {}\n\t{\"series\":\"cpu\",\"value\":1,\"timestamp\":2}  ",
	} {
		f.Add([]byte(s))
	}
	receive := time.UnixMilli(1_800_000_000_000)
	limits := Limits{MaxEventBytes: 300, MaxJSONDepth: 3, MaxJSONFields: 12, MaxEventSkew: time.Hour}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, parse := range []struct {
			name  string
			parse func([]byte, time.Time) (events.Event, error)
			fast  func(string, int, time.Time, *events.Event, *decoded) bool
		}{{"events", nil, nil}, {"samples", events.ParseSample, fastSample}} {
			for _, ndjson := range []bool{false, true} {
				run := func(stdOnly bool) (Result, []events.Event, error) {
					pub := &recorder{}
					h := &IngestEventsHandler{pub: pub, now: func() time.Time { return receive }, limits: limits,
						parse: parse.parse, fast: parse.fast, stdOnly: stdOnly}
					res, err := h.Handle(context.Background(), IngestEvents{Body: bytes.NewReader(body), Tenant: "t", NDJSON: ndjson})
					return res, pub.evs, err
				}
				gotRes, gotEvs, gotErr := run(false)
				wantRes, wantEvs, wantErr := run(true)
				if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
					t.Fatalf("%s %q: error %v, want %v", parse.name, body, gotErr, wantErr)
				}
				if gotRes.Accepted != wantRes.Accepted || len(gotRes.Rejected) != len(wantRes.Rejected) {
					t.Fatalf("%s %q: result %+v, want %+v", parse.name, body, gotRes, wantRes)
				}
				for i, r := range gotRes.Rejected {
					w := wantRes.Rejected[i]
					if r.Position != w.Position || r.ErrorMessage() != w.ErrorMessage() {
						t.Fatalf("%s %q: rejection %d is %d %q, want %d %q", parse.name, body, i, r.Position, r.ErrorMessage(), w.Position, w.ErrorMessage())
					}
				}
				if len(gotEvs) != len(wantEvs) {
					t.Fatalf("%s %q: %d events published, want %d", parse.name, body, len(gotEvs), len(wantEvs))
				}
				for i := range gotEvs {
					g, w := gotEvs[i], wantEvs[i]
					if g.ID != w.ID {
						gu, err1 := uuid.Parse(g.ID)
						wu, err2 := uuid.Parse(w.ID)
						if err1 != nil || err2 != nil || gu.Version() != 7 || wu.Version() != 7 {
							t.Fatalf("%s %q: event %d id %q, want %q", parse.name, body, i, g.ID, w.ID)
						}
						g.ID = w.ID
					}
					if !reflect.DeepEqual(g, w) {
						t.Fatalf("%s %q: event %d\n got %+v\nwant %+v", parse.name, body, i, g, w)
					}
				}
			}
		}
	})
}
