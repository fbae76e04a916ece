package faultstest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamwatch/streamwatch/pkg/messaging"
)

// poison is one record that no consumer of its topic can apply.
type poison struct {
	name, schema, payload string
	// wantErr is a part of the error every consumer must record; "a|b"
	// accepts either (consumers word their errors differently).
	wantErr string
}

// topicCase is one topic, its consumers (handler names = consumer groups;
// a trailing "*" matches a prefix) and its records.
type topicCase struct {
	topic     string
	consumers []string
	poison    []poison
	// valid is a record every consumer applies; effect, when set, is a
	// ClickHouse query that returns 1 once the query service stored it.
	validSchema, valid, effect string
}

// topicCases lists every consumer of every topic with an undecodable
// record, a wrong schema version and an absurd value. The detector's
// rules consumer is not listed: it reads the rules topic without a
// consumer group in every instance (each needs every rule), so it logs and
// skips a bad change instead of dead-lettering it once per instance; the
// query service's rules projector dead-letters it.
func topicCases(now int64) []topicCase {
	ws := now / 60_000 * 60_000
	n := strconv.FormatInt(now, 10)
	event := func(id, tm string) string {
		return `{"v":1,"events":[{"v":1,"event_id":"` + id + `","type":"page_view","event_time":` + tm + `,"receive_time":` + n +
			`,"key":"u-poison","user_id":"u-poison","page":"/"}]}`
	}
	result := func(start, end int64, count string) string {
		return fmt.Sprintf(`{"v":1,"results":[{"v":1,"metric":"poison_check","window_start":%d,"window_end":%d,"shard":0,"kind":"final","revision":1,"count":%s,"value":1}]}`,
			start, end, count)
	}
	alert := func(v, startsAt, state string) string {
		return `{"v":` + v + `,"fingerprint":"00000000p0150n01","rule":"poison_check","state":"` + state +
			`","severity":"info","labels":{"poison":"check"},"starts_at":` + startsAt + `}`
	}
	silence := func(v string, startsAt, endsAt int64) string {
		return fmt.Sprintf(`{"v":%s,"id":"poison-check","op":"upsert","matchers":[{"name":"alertname","op":"=","value":"poison_nothing"}],`+
			`"starts_at":%d,"ends_at":%d,"created_by":"faultstest","updated_at":%d}`, v, startsAt, endsAt, now)
	}
	ack := func(v, fingerprint string) string {
		return `{"v":` + v + `,"id":"poison-ack","fingerprint":"` + fingerprint + `","starts_at":0,"by":"faultstest","at":` + n + `}`
	}
	rule := func(v, op string) string {
		return `{"v":` + v + `,"op":"upsert","id":"poison_check","rule":{"name":"poison_check","metric":"requests","op":"` + op +
			`","threshold":1e12},"at":` + n + `}`
	}
	outcome := func(v, at string) string {
		return `{"v":` + v + `,"id":"poison-check:sent","kind":"sent","group_key":"g","receiver":"hook","integration":"hook/webhook/0",` +
			`"notification_id":"poison-check","fingerprints":[],"attempt":1,"at":` + at + `}`
	}
	notification := func(v, at string) string {
		return `{"v":` + v + `,"id":"poison-check:1","group_key":"poison","receiver":"hook","integration":"hook/webhook/0","status":"firing",` +
			`"group_labels":{},"alerts":[],"at":` + at + `}`
	}
	const year9999 = "253402300799000"
	return []topicCase{
		{
			topic:     messaging.TopicEventsRaw,
			consumers: []string{"aggregator.windows", "detector.events", "query.events-projector"},
			poison: []poison{
				{"undecodable", "events.batch.v1", `{"v":1,"events":[`, "undecodable batch record"},
				{"wrong schema version", "events.batch.v9", `{"v":9,"events":[]}`, `batch version 9|schema "events.batch.v9"`},
				{"truncated binary", "events.batch.v2", "\x08\x02\x12\x7f\x08", "undecodable batch record"},
				{"event in the year 9999", "events.batch.v1", event("poison-9999", year9999), "is after 2100-01-01"},
			},
			validSchema: "events.batch.v1", valid: event("poison-valid", n),
			effect: "SELECT count() FROM streamwatch.events FINAL WHERE event_id = 'poison-valid'",
		},
		{
			topic:     messaging.TopicMetricsWindows,
			consumers: []string{"detector.thresholds", "query.windows-projector", "query.live-projector"},
			poison: []poison{
				{"undecodable", "metrics.windows.batch.v1", `{"v":1,"results":[`, "undecodable"},
				{"wrong schema version", "metrics.windows.batch.v1", `{"v":2,"results":[]}`, "batch version 2"},
				{"window end before start", "metrics.windows.batch.v1", result(ws, ws-60_000, "1"), "not after start"},
				{"negative count", "metrics.windows.batch.v1", result(ws, ws+60_000, "-5"), "negative count"},
			},
			validSchema: "metrics.windows.batch.v1", valid: result(ws, ws+60_000, "1"),
			effect: fmt.Sprintf("SELECT count() > 0 FROM streamwatch.metric_windows WHERE metric = 'poison_check' AND window_start_ms = %d", ws),
		},
		{
			topic:     messaging.TopicAlerts,
			consumers: []string{"notifier.delivery", "query.alerts-projector"},
			poison: []poison{
				{"undecodable", "alerts.alert.v1", `{"v":1,`, "decode"},
				{"wrong schema version", "alerts.alert.v1", alert("2", n, "firing"), "schema version 2"},
				{"starts in the year 9999", "alerts.alert.v1", alert("1", year9999, "firing"), "starts_at " + year9999},
				{"unknown state", "alerts.alert.v1", alert("1", n, "exploded"), `unknown state "exploded"`},
			},
			validSchema: "alerts.alert.v1", valid: alert("1", n, "resolved"),
			effect: "SELECT count() > 0 FROM streamwatch.alerts WHERE fingerprint = '00000000p0150n01'",
		},
		{
			topic:     messaging.TopicSilences,
			consumers: []string{"notifier.silences", "query.silences-projector"},
			poison: []poison{
				{"undecodable", "silences.silence.v1", `[1,2`, ""},
				{"wrong schema version", "silences.silence.v1", silence("2", now, now+3_600_000), "schema version 2"},
				{"ends before it starts", "silences.silence.v1", silence("1", now, now-3_600_000), "not after starts_at"},
			},
			validSchema: "silences.silence.v1", valid: silence("1", now, now+3_600_000),
			effect: "SELECT count() > 0 FROM streamwatch.silences WHERE id = 'poison-check'",
		},
		{
			topic:     messaging.TopicAcks,
			consumers: []string{"notifier.acks"},
			poison: []poison{
				{"undecodable", "silences.ack.v1", `{"v":`, "decode ack"},
				{"wrong schema version", "silences.ack.v1", ack("2", "00000000p0150n01"), "schema version 2"},
				{"no fingerprint", "silences.ack.v1", ack("1", ""), "missing fingerprint"},
			},
			validSchema: "silences.ack.v1", valid: ack("1", "00000000p0150n01"),
		},
		{
			topic:     messaging.TopicRules,
			consumers: []string{"query.rules-projector"},
			poison: []poison{
				{"undecodable", "rules.change.v1", `{"v":1,"op":`, "invalid rule change"},
				{"wrong schema version", "rules.change.v1", rule("2", ">"), "version 2"},
				{"unknown comparison", "rules.change.v1", rule("1", "≈"), "invalid rule change"},
			},
			validSchema: "rules.change.v1", valid: rule("1", ">"),
			effect: "SELECT count() > 0 FROM streamwatch.rules WHERE id = 'poison_check'",
		},
		{
			topic:     messaging.TopicNotifications,
			consumers: []string{"query.notifications-projector"},
			poison: []poison{
				{"undecodable", "notifications.outcome.v1", `"sent"`, "not a JSON object"},
				{"wrong schema version", "notifications.outcome.v2", outcome("2", n), "notifications.outcome.v2"},
				{"sent in the year 9999", "notifications.outcome.v1", outcome("1", year9999), "at " + year9999},
			},
			validSchema: "notifications.outcome.v1", valid: outcome("1", n),
			effect: "SELECT count() > 0 FROM streamwatch.notifications WHERE id = 'poison-check:sent'",
		},
		{
			topic:     messaging.TopicNotifierDispatch,
			consumers: []string{"notifier.dispatch"},
			poison: []poison{
				{"undecodable", "alert", `{"v":1,`, "decode alert"},
				{"wrong schema version", "alert", alert("2", n, "firing"), "schema version 2"},
				{"starts in the year 9999", "alert", alert("1", year9999, "firing"), "starts_at " + year9999},
			},
			validSchema: "wake", valid: `{}`,
		},
		{
			topic:     messaging.TopicNotifierDeliveries,
			consumers: []string{"notifier.deliver.*"},
			poison: []poison{
				{"undecodable", "", `{"v":1,`, "decode notification"},
				{"wrong schema version", "", notification("2", n), "version 2"},
				{"flushed in the year 9999", "", notification("1", year9999), "at " + year9999},
			},
			valid: notification("1", n),
		},
	}
}

// TestPoisonRecordsGoToTheDeadLetterTopic writes, to partition 0 of every
// topic, its poison records and then a valid record, and checks for every
// consumer: each poison record is on the topic's dead-letter topic once per
// consumer, with the error (wantErr in it), the source position and the
// consumer's name in metadata; the consumer's committed offset passed the
// valid record (it went on); the query service stored the valid record
// where it has a projection of the topic.
func TestPoisonRecordsGoToTheDeadLetterTopic(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.Brokers()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	cases := topicCases(time.Now().UnixMilli())

	produce := func(topic, kind, schema, payload string) int64 {
		t.Helper()
		rec := &kgo.Record{Topic: topic, Partition: 0, Value: []byte(payload), Key: []byte("poison"),
			Headers: []kgo.RecordHeader{{Key: "_watermill_message_uuid", Value: []byte(fmt.Sprintf("poison-%s-%d", topic, time.Now().UnixNano()))}}}
		switch {
		case topic == messaging.TopicNotifierDispatch:
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: "kind", Value: []byte(kind)})
		case topic == messaging.TopicNotifierDeliveries:
			// Each integration's deliverer takes the records naming it.
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: "integration", Value: []byte("hook/webhook/0")})
		case schema != "":
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: messaging.MetaSchema, Value: []byte(schema)})
		}
		res := cl.ProduceSync(ctx, rec)
		require.NoError(t, res.FirstErr(), topic)
		return res[0].Record.Offset
	}
	poisonAt := map[string]map[int64]string{} // topic -> offset -> poison name
	validAt := map[string]int64{}
	for _, tc := range cases {
		poisonAt[tc.topic] = map[int64]string{}
		for _, p := range tc.poison {
			poisonAt[tc.topic][produce(tc.topic, p.schema, p.schema, p.payload)] = p.name
		}
		validAt[tc.topic] = produce(tc.topic, tc.validSchema, tc.validSchema, tc.valid)
	}

	for _, tc := range cases {
		t.Run(tc.topic, func(t *testing.T) {
			groups := resolveGroups(t, ctx, adm, tc.consumers)
			var missing []string
			deadline := time.Now().Add(2 * time.Minute)
			for {
				dead := deadLetters(t, ctx, tc.topic)
				missing = missing[:0]
				for _, g := range groups {
					for off, name := range poisonAt[tc.topic] {
						if _, ok := dead[g][off]; !ok {
							missing = append(missing, fmt.Sprintf("%s: %s (offset %d) not dead-lettered", g, name, off))
						}
					}
					if o := committed(t, ctx, adm, g, tc.topic); o <= validAt[tc.topic] {
						missing = append(missing, fmt.Sprintf("%s: committed offset %d, the valid record is at %d", g, o, validAt[tc.topic]))
					}
				}
				if tc.effect != "" {
					if got, err := clickhouse(tc.effect); err != nil || got != "1" {
						missing = append(missing, fmt.Sprintf("the query service did not store the valid record (%q, %v)", got, err))
					}
				}
				if len(missing) == 0 {
					for _, g := range groups {
						for _, p := range tc.poison {
							off := offsetOf(poisonAt[tc.topic], p.name)
							errMeta := dead[g][off]
							require.NotEmpty(t, errMeta, "%s: %s: error metadata", g, p.name)
							require.True(t, containsAny(errMeta, p.wantErr), "%s: %s: error %q, want %q", g, p.name, errMeta, p.wantErr)
						}
					}
					return
				}
				if time.Now().After(deadline) {
					slices.Sort(missing)
					t.Fatalf("after 2 minutes:\n%s", strings.Join(missing, "\n"))
				}
				time.Sleep(time.Second)
			}
		})
	}
	t.Run("no service crashed", func(t *testing.T) {
		for _, s := range []string{"collector", "aggregator", "detector", "notifier", "query"} {
			require.True(t, st.ServiceRunning(s), s)
		}
	})
}

// containsAny reports whether s contains one of the "|"-separated parts of
// want.
func containsAny(s, want string) bool {
	for _, w := range strings.Split(want, "|") {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

func offsetOf(m map[int64]string, name string) int64 {
	for off, n := range m {
		if n == name {
			return off
		}
	}
	return -1
}

// resolveGroups expands consumer names ending in "*" to the consumer
// groups on the broker with that prefix.
func resolveGroups(t *testing.T, ctx context.Context, adm *kadm.Client, names []string) []string {
	t.Helper()
	var out []string
	for _, n := range names {
		prefix, ok := strings.CutSuffix(n, "*")
		if !ok {
			out = append(out, n)
			continue
		}
		listed, err := adm.ListGroups(ctx)
		require.NoError(t, err)
		for _, g := range listed.Groups() {
			if strings.HasPrefix(g, prefix) {
				out = append(out, g)
			}
		}
		require.NotEmpty(t, out, "no consumer group %s", n)
	}
	return out
}

// deadLetters reads DLQ(topic) from the start and returns, per consumer
// (MetaConsumer), the error metadata of each dead-lettered source offset
// of partition 0.
func deadLetters(t *testing.T, ctx context.Context, topic string) map[string]map[int64]string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.Brokers()...), kgo.ConsumeTopics(messaging.DLQ(topic)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, messaging.DLQ(topic))
	require.NoError(t, err)
	var want int64
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	out := map[string]map[int64]string{}
	for read := int64(0); read < want; {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fs := cl.PollFetches(fctx)
		cancel()
		if fctx.Err() != nil && fs.NumRecords() == 0 {
			break
		}
		fs.EachRecord(func(r *kgo.Record) {
			read++
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			if h[messaging.MetaSourceTopic] != topic || h[messaging.MetaSourcePartition] != "0" {
				return
			}
			off, err := strconv.ParseInt(h[messaging.MetaSourceOffset], 10, 64)
			if err != nil {
				return
			}
			c := h[messaging.MetaConsumer]
			if out[c] == nil {
				out[c] = map[int64]string{}
			}
			out[c][off] = h[messaging.MetaError]
		})
	}
	return out
}

// committed returns group's committed offset of partition 0 of topic (-1
// when none).
func committed(t *testing.T, ctx context.Context, adm *kadm.Client, group, topic string) int64 {
	t.Helper()
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return -1
	}
	if o, ok := offs.Lookup(topic, 0); ok && o.Err == nil {
		return o.At
	}
	return -1
}
