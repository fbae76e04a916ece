// Package window is the aggregator's event-time windowing engine for one
// Kafka partition: it assigns events to tumbling windows, tracks the
// partition's watermark, deduplicates events by id, and decides when a window
// emits an early, final or revised result. It does no I/O; the state is
// plain data that the stream processor checkpoints.
//
// Semantics follow the Dataflow model (Akidau et al., "The Dataflow Model",
// VLDB 2015) as Flink implements it: watermark = max event time seen −
// allowed out-of-orderness; a window fires its final result when the
// watermark reaches its end; an event for a fired window that is still within
// allowed lateness revises it (revision + 1); an event later than window end
// + allowed lateness is dropped from the windows and reported as late.
package window

import (
	"hash/fnv"
	"maps"
	"slices"
	"strconv"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/metrics"
)

// Config holds the event-time settings, all in milliseconds.
type Config struct {
	// OutOfOrderness is how far behind the max event time the watermark
	// trails, in ms.
	OutOfOrderness int64
	// AllowedLateness is how long after its end a window still accepts
	// events (as revisions), in ms.
	AllowedLateness int64
	// IdleTimeout is how long a partition may get no input before its
	// watermark advances with processing time, in ms.
	IdleTimeout int64
}

// Window is the running aggregate of one window of one metric and label set.
type Window struct {
	Metric   string            `json:"m"`
	Labels   map[string]string `json:"l,omitempty"`
	Start    int64             `json:"s"`
	End      int64             `json:"e"`
	Count    int64             `json:"c"`
	Sum      float64           `json:"sum"`
	Min      float64           `json:"min"`
	Max      float64           `json:"max"`
	Revision int64             `json:"r"`
	// Fired is true once the final result was emitted.
	Fired bool `json:"f,omitempty"`
	// Dirty is true when the aggregate changed since its last emission.
	Dirty bool `json:"d,omitempty"`
}

// State is the windowing state of one partition. The zero value is not
// usable; use NewState.
type State struct {
	Partition int32 `json:"partition"`
	// MaxEventTime is the largest event time accepted, ms.
	MaxEventTime int64 `json:"max_event_time"`
	// Watermark is the partition's event-time watermark, ms.
	Watermark int64 `json:"watermark"`
	// LastInput is the processing time of the last input batch, ms.
	LastInput int64 `json:"last_input"`
	// Windows holds open windows and fired windows still within lateness,
	// by metric|labels|start.
	Windows map[string]*Window `json:"windows"`
	// Seen holds FNV-1a 64 hashes of the ids of accepted events, bucketed by
	// the minute of their event time, for as long as a duplicate could still
	// change a window.
	Seen map[int64]map[uint64]bool `json:"seen"`
}

// NewState returns the empty state of a partition.
func NewState(partition int32) *State {
	return &State{Partition: partition, Windows: map[string]*Window{}, Seen: map[int64]map[uint64]bool{}}
}

// Outcome counts what happened to the events of one Add call.
type Outcome struct {
	// Accepted events changed at least one window.
	Accepted int
	// Duplicates had an event id already accepted.
	Duplicates int
	// Late are the events too late for every window they belong to.
	Late []events.Event
}

const bucketMs = 60_000

// Add applies events, received at processing time now (ms), to the state
// and returns what happened to them. Windows touched become dirty; events
// for already-fired windows within lateness make them revisions.
func (s *State) Add(defs []metrics.Definition, cfg Config, evs []events.Event, now int64) Outcome {
	var out Outcome
	maxWindow := maxWindowMs(defs)
	for i := range evs {
		e := &evs[i]
		bucket := floorDiv(e.Time, bucketMs)
		h := idHash(e.ID)
		if s.Seen[bucket][h] {
			out.Duplicates++
			continue
		}
		accepted := false
		late := false
		for d := range defs {
			def := &defs[d]
			if !def.Matches(e) {
				continue
			}
			size := def.Window.Milliseconds()
			start := floorDiv(e.Time, size) * size
			end := start + size
			if end+cfg.AllowedLateness <= s.Watermark {
				late = true
				continue
			}
			s.window(def, start, end, e).add(def.ValueOf(e))
			accepted = true
		}
		if late && !accepted {
			out.Late = append(out.Late, *e)
			continue
		}
		if !accepted {
			continue // matched no metric: nothing to count, nothing to remember
		}
		out.Accepted++
		if s.Seen[bucket] == nil {
			s.Seen[bucket] = map[uint64]bool{}
		}
		s.Seen[bucket][h] = true
		if e.Time > s.MaxEventTime {
			s.MaxEventTime = e.Time
		}
	}
	if len(evs) > 0 {
		s.LastInput = now
	}
	s.advance(s.MaxEventTime - cfg.OutOfOrderness)
	s.pruneSeen(maxWindow, cfg.AllowedLateness)
	return out
}

// AdvanceIdle moves the watermark with processing time when the partition
// has had no input for IdleTimeout: to MaxEventTime plus the idle time beyond
// the timeout. It reports whether the watermark moved.
func (s *State) AdvanceIdle(cfg Config, now int64) bool {
	if s.LastInput == 0 || s.MaxEventTime == 0 {
		return false
	}
	idle := now - s.LastInput - cfg.IdleTimeout
	if idle < 0 {
		return false
	}
	return s.advance(s.MaxEventTime + idle)
}

func (s *State) advance(wm int64) bool {
	if wm <= s.Watermark {
		return false
	}
	s.Watermark = wm
	return true
}

// Emit returns the results due at the current watermark and removes windows
// past their lateness. Every result gets the window's next revision:
//   - final: a window whose end the watermark reached and that has not fired;
//   - revised: a fired window changed by late events;
//   - early (only when early is true): an open window that changed.
//
// Results are sorted by metric, labels and window start, so output order is
// deterministic.
func (s *State) Emit(defs []metrics.Definition, cfg Config, early bool) []metrics.Result {
	var res []metrics.Result
	complete := make(map[string]bool, len(defs))
	for i := range defs {
		complete[defs[i].Name] = defs[i].Complete()
	}
	for _, k := range slices.Sorted(maps.Keys(s.Windows)) {
		w := s.Windows[k]
		var kind string
		switch {
		case !w.Fired && s.Watermark >= w.End:
			kind = metrics.KindFinal
			w.Fired = true
		case w.Fired && w.Dirty:
			kind = metrics.KindRevised
		case !w.Fired && w.Dirty && early:
			kind = metrics.KindEarly
		}
		if kind != "" {
			w.Revision++
			w.Dirty = false
			res = append(res, s.result(w, kind, complete[w.Metric], defs))
		}
		if w.Fired && s.Watermark >= w.End+cfg.AllowedLateness {
			delete(s.Windows, k)
		}
	}
	return res
}

func (s *State) result(w *Window, kind string, complete bool, defs []metrics.Definition) metrics.Result {
	r := metrics.Result{
		V: 1, Metric: w.Metric, Labels: maps.Clone(w.Labels), WindowStart: w.Start, WindowEnd: w.End,
		Shard: s.Partition, Complete: complete, Kind: kind, Revision: w.Revision,
		Count: w.Count, Sum: w.Sum, Min: w.Min, Max: w.Max, Value: float64(w.Count), Watermark: s.Watermark,
	}
	for i := range defs {
		if defs[i].Name == w.Metric && defs[i].Agg == metrics.AggSum {
			r.Value = w.Sum
		}
	}
	return r
}

func (s *State) window(def *metrics.Definition, start, end int64, e *events.Event) *Window {
	labels := def.Labels(e)
	k := def.Name + "|" + metrics.LabelsKey(labels) + "|" + strconv.FormatInt(start, 10)
	w, ok := s.Windows[k]
	if !ok {
		w = &Window{Metric: def.Name, Labels: labels, Start: start, End: end}
		s.Windows[k] = w
	}
	return w
}

func (w *Window) add(v float64) {
	if w.Count == 0 || v < w.Min {
		w.Min = v
	}
	if w.Count == 0 || v > w.Max {
		w.Max = v
	}
	w.Count++
	w.Sum += v
	w.Dirty = true
}

// pruneSeen forgets event ids whose every window is past its lateness: a
// duplicate of them would be late anyway.
func (s *State) pruneSeen(maxWindow, lateness int64) {
	for b := range s.Seen {
		if (b+1)*bucketMs+maxWindow+lateness <= s.Watermark {
			delete(s.Seen, b)
		}
	}
}

// ActiveWindows returns how many windows the state holds.
func (s *State) ActiveWindows() int { return len(s.Windows) }

func maxWindowMs(defs []metrics.Definition) int64 {
	var m int64
	for i := range defs {
		m = max(m, defs[i].Window.Milliseconds())
	}
	return m
}

func idHash(id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return h.Sum64()
}

// floorDiv divides rounding towards negative infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
