package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/checkpoint"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/metrics"
	"github.com/streamwatch/streamwatch/pkg/rules"
	"github.com/streamwatch/streamwatch/pkg/stream"
	"github.com/streamwatch/streamwatch/pkg/testutil/redistest"
	"github.com/streamwatch/streamwatch/services/detector/internal/app"
)

const minute = int64(60_000)

// deltaRules cover every kind whose series state differs: threshold with
// `for` (pending), change (history), absence, anomaly (model).
const deltaRules = `rules:
  - {name: hot_client, metric: requests_by_client, op: ">", threshold: 100}
  - {name: hot_for, metric: requests_by_client, op: ">", threshold: 100, for: 2m}
  - {name: jump, kind: change, metric: requests_by_client, compare: previous, op: ">", threshold: 50}
  - {name: gone, kind: absence, metric: requests_by_client, for: 3m}
  - {name: odd, kind: anomaly, metric: requests_by_client, anomaly: {warmup: 5}}
`

func newDetect(t *testing.T) *app.Detect {
	t.Helper()
	file, err := rules.Parse("delta.yaml", []byte(deltaRules))
	require.NoError(t, err)
	live, err := app.NewRules(file)
	require.NoError(t, err)
	return app.NewDetect(live)
}

// windowRecords returns n metrics.windows batch records: minute i has a
// result for each of a few clients (some breaching, some stopping after a
// while so absence fires and series expire), and record 40 jumps the
// watermark by two days so every series passes retention.
func windowRecords(t *testing.T, n int) []*message.Message {
	t.Helper()
	var msgs []*message.Message
	for i := range int64(n) {
		start := i * minute
		if i >= 40 {
			start += 2 * rules.Day
		}
		var rs []metrics.Result
		for c := range int64(6) {
			if c == 5 && i > 10 {
				continue // client 5 goes silent: absence, then retention
			}
			v := 10 + (i*7+c*13)%50
			if (i+c)%9 == 0 {
				v = 150 + c // breaches
			}
			r := result("10.0.0."+strconv.FormatInt(c, 10), start, v)
			r.Shard = int32(c % 2)
			r.Watermark = start + minute
			rs = append(rs, r)
		}
		b, err := metrics.EncodeBatch(rs)
		require.NoError(t, err)
		msg := message.NewMessage(fmt.Sprint(i), b)
		msg.Metadata.Set(messaging.MetaSchema, metrics.BatchSchema)
		msg.SetContext(messaging.ContextWithPosition(context.Background(), 0, i))
		msgs = append(msgs, msg)
	}
	return msgs
}

func stateJSON(t *testing.T, st *app.WindowsState) string {
	t.Helper()
	b, err := json.Marshal(st.MetricState)
	require.NoError(t, err)
	return string(b)
}

// TestWindowsStateRestoreFromDeltasEqualsFullState applies records to one
// state, keeps a hash of entries from every TakeDelta (as Redis would),
// and after every record restores a fresh state from that hash: it must
// equal the full state, and go on to emit the same alerts.
func TestWindowsStateRestoreFromDeltasEqualsFullState(t *testing.T) {
	t.Parallel()
	d := newDetect(t)
	st := d.NewState(0)
	hash := map[string][]byte{}
	var deleted, alertsSeen int
	msgs := windowRecords(t, 48)
	for i, msg := range msgs {
		outs, err := d.Apply(t.Context(), st, msg, int64(i))
		require.NoError(t, err)
		alertsSeen += len(outs)
		set, del, err := st.TakeDelta()
		require.NoError(t, err)
		maps.Copy(hash, set)
		for _, k := range del {
			delete(hash, k)
		}
		deleted += len(del)

		restored := d.NewState(0)
		require.NoError(t, restored.RestoreEntries(maps.Clone(hash)))
		require.JSONEq(t, stateJSON(t, st), stateJSON(t, restored), "after record %d", i)
		if i+1 < len(msgs) && i%5 == 0 {
			// The restored state continues exactly as the original.
			twin := d.NewState(0)
			require.NoError(t, twin.RestoreEntries(maps.Clone(hash)))
			want, err := d.Apply(t.Context(), restoredCopy(t, d, hash), msgs[i+1], int64(i+1))
			require.NoError(t, err)
			got, err := d.Apply(t.Context(), twin, msgs[i+1], int64(i+1))
			require.NoError(t, err)
			require.Equal(t, want, got)
		}
	}
	require.Positive(t, alertsSeen, "the records fire alerts")
	require.Positive(t, deleted, "series past retention are deleted from the checkpoint")
	require.Len(t, hash, 1+len(st.Series), "one entry per series plus meta")
}

func restoredCopy(t *testing.T, d *app.Detect, hash map[string][]byte) *app.WindowsState {
	t.Helper()
	st := d.NewState(0)
	require.NoError(t, st.RestoreEntries(maps.Clone(hash)))
	return st
}

func TestWindowsStateDeltaHoldsOnlyChangedSeries(t *testing.T) {
	t.Parallel()
	d := newDetect(t)
	st := d.NewState(0)
	msgs := windowRecords(t, 3)
	_, err := d.Apply(t.Context(), st, msgs[0], 0)
	require.NoError(t, err)
	set, _, err := st.TakeDelta()
	require.NoError(t, err)
	require.Len(t, set, 1+6*3+2,
		"six clients under the three rules that keep every series, the one breaching client under the two threshold rules, plus meta")

	// One result of one client, not breaching and not moving the
	// watermark, touches its three series of the other rules only: a
	// threshold series at rest is not kept.
	one := result("10.0.0.3", 3*minute, 20)
	one.Watermark = minute
	b, err := json.Marshal(one)
	require.NoError(t, err)
	msg := message.NewMessage("one", b)
	msg.Metadata.Set(messaging.MetaSchema, metrics.ResultSchema)
	_, err = d.Apply(t.Context(), st, msg, 1)
	require.NoError(t, err)
	set, del, err := st.TakeDelta()
	require.NoError(t, err)
	require.Empty(t, del)
	require.Len(t, set, 1+3)
	for name := range set {
		require.True(t, name == "meta" || json.Valid(set[name]) && containsLabel(name, "10.0.0.3"), name)
	}

	// An early result for rules without `early: true` changes no series.
	r := result("10.0.0.4", 4*minute, 500)
	r.Kind, r.Watermark = metrics.KindEarly, minute
	b, err = json.Marshal(r)
	require.NoError(t, err)
	msg = message.NewMessage("early", b)
	msg.Metadata.Set(messaging.MetaSchema, metrics.ResultSchema)
	_, err = d.Apply(t.Context(), st, msg, 2)
	require.NoError(t, err)
	set, _, err = st.TakeDelta()
	require.NoError(t, err)
	require.Len(t, set, 1, "meta only")
}

func containsLabel(name, ip string) bool {
	for i := 0; i+len(ip) <= len(name); i++ {
		if name[i:i+len(ip)] == ip {
			return true
		}
	}
	return false
}

func TestWindowsStateRestoreErrorsNameTheEntry(t *testing.T) {
	t.Parallel()
	st := app.NewWindowsState()
	err := st.RestoreEntries(map[string][]byte{
		"meta":    []byte(`{"v":9}`),
		"s|x":     []byte(`{`),
		"zz|what": []byte(`1`),
	})
	require.ErrorContains(t, err, `entry "meta": format version 9, this build reads 1`)
	require.ErrorContains(t, err, `entry "s|x"`)
	require.ErrorContains(t, err, `entry "zz|what": unknown kind`)
}

func TestWindowsStateRestoresSnapshotAndWritesItWhole(t *testing.T) {
	t.Parallel()
	d := newDetect(t)
	full := d.NewState(0)
	for i, msg := range windowRecords(t, 12) {
		_, err := d.Apply(t.Context(), full, msg, int64(i))
		require.NoError(t, err)
	}
	snapshot, err := json.Marshal(full.MetricState) // what the snapshot checkpoint held
	require.NoError(t, err)

	st := d.NewState(0)
	require.NoError(t, st.RestoreSnapshot(snapshot))
	set, del, err := st.TakeDelta()
	require.NoError(t, err)
	require.Empty(t, del)
	require.Len(t, set, 1+len(full.Series))
	restored := d.NewState(0)
	require.NoError(t, restored.RestoreEntries(set))
	require.JSONEq(t, string(snapshot), stateJSON(t, restored))

	set, _, err = st.TakeDelta()
	require.NoError(t, err)
	require.Len(t, set, 1, "the whole state is written once")
}

// recordingPublisher keeps the ids of published alerts.
type recordingPublisher struct {
	mu  sync.Mutex
	ids []string
}

func (p *recordingPublisher) Publish(_ string, msgs ...*message.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range msgs {
		p.ids = append(p.ids, m.UUID)
	}
	return nil
}

func (p *recordingPublisher) Close() error { return nil }

// TestWindowsProcessorRestartsFromDeltaCheckpoint runs the operator on the
// real checkpoint path (stream.Processor + DeltaStore on redis-server):
// instances that stop after every few records, each restoring the
// previous one's checkpoint, emit the same alerts as one uninterrupted
// run, and a replayed record has no effect.
func TestWindowsProcessorRestartsFromDeltaCheckpoint(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t)
	d := newDetect(t)
	msgs := windowRecords(t, 48)

	want := &recordingPublisher{}
	ref := d.NewState(0)
	for i, msg := range msgs {
		outs, err := d.Apply(t.Context(), ref, msg, int64(i))
		require.NoError(t, err)
		for _, o := range outs {
			want.ids = append(want.ids, o.UUID)
		}
	}
	require.NotEmpty(t, want.ids)

	got := &recordingPublisher{}
	newProc := func() *stream.Processor[*app.WindowsState] {
		p, err := stream.New(stream.Config{Group: "detector.thresholds", Topic: messaging.TopicMetricsWindows},
			d, checkpoint.New(rdb, "t:"), got, nil)
		require.NoError(t, err)
		p.UseDeltaStore(stream.NewDeltaStore(rdb, "t:"))
		return p
	}
	p := newProc()
	for i, msg := range msgs {
		if i%7 == 6 {
			p = newProc() // a restart: restore from the entries
			require.NoError(t, p.Handle(msgs[i-1]), "a replay of the last record")
		}
		require.NoError(t, p.Handle(msg))
	}
	// A re-published outbox repeats ids; the alert ids are deterministic,
	// so consumers drop the repeats. Distinct ids in order must match.
	require.Equal(t, want.ids, dedupe(got.ids))
	n, err := rdb.HLen(t.Context(), "t:ckpt:detector.thresholds:"+messaging.TopicMetricsWindows+":0:entries").Result()
	require.NoError(t, err)
	require.EqualValues(t, 1+len(ref.Series), n)
}

func dedupe(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
