package app_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/services/aggregator/internal/app"
)

// TestApplyKeepsNoRecord: the aggregator decodes binary records with the
// strings of their events sharing one copy of the record
// (events.DecodeBatchShared), so every string the windowing state keeps
// (label sets, top-k keys) must be copied, or one kept label keeps its
// whole record in memory. The same stream, in which every record brings
// new clients, paths, users, pages and services and carries a 4 KiB user
// agent per event, is applied once from binary records and once from JSON
// records (one allocation per string, nothing shared): after a GC the
// binary run must hold no more heap than the JSON run plus a tenth of the
// records' size (holding the records would take all of it).
func TestApplyKeepsNoRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("applies 60 records of 500 events twice")
	}
	const records = 60
	rng := rand.New(rand.NewPCG(5, 5))
	seq := 0
	userAgent := strings.Repeat("a", 4096) // one string in the events, 500 copies in each record
	streams := make([][]events.Event, records)
	for r := range streams {
		evs := genEvents(rng, 500, benchT0+int64(r)*100, 50_000, &seq)
		for i := range evs {
			e := &evs[i]
			tag := fmt.Sprintf("-%d-%d", r, i) // new label values in every record
			e.ClientIP += tag
			e.Path += tag
			e.UserID += tag
			e.Page += tag
			e.Service += tag
			e.Key += tag
			e.UserAgent = userAgent
		}
		streams[r] = evs
	}
	heldAfter := func(encode func([]events.Event) ([]byte, error)) (held uint64, recordBytes int) {
		base := heapAfterGC()
		payloads := make([][]byte, records)
		for r, evs := range streams {
			p, err := encode(evs)
			require.NoError(t, err)
			payloads[r] = p
			recordBytes += len(p)
		}
		op := app.NewAggregate(benchSettings(t))
		st := op.NewState(0)
		for r := range payloads {
			msg := message.NewMessage("x", payloads[r])
			_, err := op.Apply(context.Background(), st, msg, int64(r))
			require.NoError(t, err)
			payloads[r] = nil // only the state may keep anything now
		}
		after := heapAfterGC()
		runtime.KeepAlive(st)
		runtime.KeepAlive(op)
		runtime.KeepAlive(streams)
		return after - min(base, after), recordBytes
	}
	jsonHeld, _ := heldAfter(events.EncodeBatchJSON)
	binHeld, binBytes := heldAfter(events.EncodeBatch)
	t.Logf("state after %d records: %d KiB from JSON records, %d KiB from binary records (%d KiB of records)",
		records, jsonHeld>>10, binHeld>>10, binBytes>>10)
	require.Less(t, binHeld, jsonHeld+uint64(binBytes)/10,
		"the state decoded from binary records keeps their memory alive")
}

// heapAfterGC returns the bytes of live heap objects after a full GC.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
