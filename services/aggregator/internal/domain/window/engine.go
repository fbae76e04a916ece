// Package window is the aggregator's event-time windowing engine for one
// Kafka partition: it assigns events to tumbling, hopping and session
// windows, tracks the partition's watermark, deduplicates events by id, and
// decides when a window emits an early, final or revised result. It does no
// I/O; the state is plain data that the stream processor checkpoints
// incrementally (see delta.go).
//
// Semantics follow the Dataflow model (Akidau et al., "The Dataflow Model",
// VLDB 2015) as Flink implements it: watermark = max event time seen −
// allowed out-of-orderness; a window fires its final result when the
// watermark reaches its end; an event for a fired window that is still within
// allowed lateness revises it (revision + 1); an event later than window end
// + allowed lateness is dropped from the windows and reported as late.
// Session windows merge as in Flink's MergingWindowAssigner: an event opens
// [t, t+gap) and every session it overlaps merges into one.
package window

import (
	"cmp"
	"maps"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/pkg/metrics"
)

// Config holds the service-wide event-time settings, all in milliseconds.
// A definition may override OutOfOrderness, AllowedLateness and
// EarlyInterval.
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
	// EarlyInterval is the least time between two early results of one
	// window, in ms; 0 emits an early result on every early Emit.
	EarlyInterval int64
	// MaxScanResults bounds the results one scanning Emit returns (0:
	// DefaultMaxScanResults; it stops after the label set that reaches
	// it): the rest are due again at the next Emit, which scans again. It
	// bounds the memory of a minute boundary, where a partition emits the
	// final result of every window it holds at once.
	MaxScanResults int
	// ScanStep spreads the finals a scanning Emit fires over steps (0: no
	// steps): the first four steps of a scan stop once they hold this many
	// results, the next four at twice that, and so on, and a step waits
	// ScanPause after the one before. Metrics are visited in name order and
	// the label sets of a metric that does not fit in a step in group-key
	// order, so that fired marks can say what a step visited (its finals
	// write no entries). A minute boundary fires ~8,000 finals a partition
	// in the end-to-end benchmark, six partitions at once: in one step, an
	// early result that came in the batch that crossed the boundary waited
	// for all of them (0.4-0.8 s of Apply and commit), and the consumers got
	// them in one burst. The doubling bounds the steps of a large
	// boundary (1,000,000 active keys: ~230,000 finals a partition, each
	// step rescanning the state) to a few dozen.
	ScanStep int
	// ScanPause is the processing time between two steps of a boundary's
	// scan, in ms. Early results of open windows and revisions still go
	// out meanwhile; a due window's final waits for its step.
	ScanPause int64
}

// DefaultMaxScanResults is MaxScanResults when it is 0: a partition's
// boundary under the end-to-end benchmark's load (~13,000 finals) stays in
// one Emit, while with 1,000,000 active keys (~230,000 windows a
// partition) a boundary goes over ~10 Emits and checkpoint commits of at
// most ~3.3 MB of outbox each, instead of one Redis script of ~230,000
// entries and a ~13 MB outbox per partition (BenchmarkMillionActiveKeys).
const DefaultMaxScanResults = 25_000

// Engine evaluates a set of compiled definitions under a Config. It holds no
// partition state and is safe for concurrent use; States are not.
type Engine struct {
	defs []compiled
	// keysets groups the definitions by their GroupBy list: Add computes an
	// event's group key and looks its series up once per keyset, not once
	// per definition.
	keysets []keyset
	// plans holds per type bit position (metrics.TypeBit(t) == 1<<i) the
	// keysets with members whose type filter takes the type, and those
	// members only: Add visits no definition of another type.
	plans [32][]typePlan
	// classOf is per type bit position the index into horizons of the
	// type's dedup class; horizons holds per class its dedup horizon in ms
	// (see dedupHorizons): the event ids of the types of one class are
	// remembered in one set per event-time minute.
	classOf   [32]uint8
	horizons  []int64
	cfg       Config
	maxSpan   int64 // longest window size or gap, ms
	maxLate   int64 // longest allowed lateness, ms
	maxOOO    int64 // largest out-of-orderness, ms
	defByName map[string]*compiled
}

type compiled struct {
	def      *metrics.Definition
	kind     string
	size     int64 // tumbling and hopping size, session gap
	slide    int64
	ooo      int64
	lateness int64
	early    int64
	headline string
	complete bool
	quants   []string
	// ks and pos are the definition's keyset and its position in it.
	ks, pos int
	// shareFrom is the position in the keyset of the definition whose
	// windows hold this definition's DDSketch (same types, filter, window,
	// timing and value field: the same values in the same windows), or -1
	// when its windows keep their own.
	shareFrom int
}

// typePlan is one keyset's members (indices into Engine.defs, in
// definition order) that take one event type.
type typePlan struct {
	ks      int
	members []int
}

// keyset is the definitions with one GroupBy list, in definition order.
type keyset struct {
	def     *metrics.Definition // the first member: group key and labels
	members []int               // indices into Engine.defs
}

// NewEngine returns an engine for defs, which must be compiled (as
// metrics.ParseDefinitions returns them).
func NewEngine(defs []metrics.Definition, cfg Config) *Engine {
	if cfg.MaxScanResults <= 0 {
		cfg.MaxScanResults = DefaultMaxScanResults
	}
	e := &Engine{cfg: cfg, defByName: map[string]*compiled{}}
	for i := range defs {
		d := &defs[i]
		c := compiled{
			def: d, kind: d.Window.Kind, size: d.WindowMs(), slide: d.Window.Slide.Milliseconds(),
			ooo: cfg.OutOfOrderness, lateness: cfg.AllowedLateness, early: cfg.EarlyInterval,
			headline: d.Headline(), complete: d.Complete(),
		}
		if c.kind == metrics.WindowTumbling {
			c.slide = c.size
		}
		if d.OutOfOrderness > 0 {
			c.ooo = d.OutOfOrderness.Milliseconds()
		}
		if d.LatenessSet {
			c.lateness = d.AllowedLateness.Milliseconds()
		}
		if d.EarlyInterval > 0 {
			c.early = d.EarlyInterval.Milliseconds()
		}
		for _, a := range d.Aggregations {
			if _, ok := metrics.QuantileOf[a]; ok {
				c.quants = append(c.quants, a)
			}
		}
		e.defs = append(e.defs, c)
		e.maxSpan = max(e.maxSpan, c.size)
		e.maxLate = max(e.maxLate, c.lateness)
		e.maxOOO = max(e.maxOOO, c.ooo)
	}
	for i := range e.defs {
		e.defByName[e.defs[i].def.Name] = &e.defs[i]
		e.assignKeyset(i)
	}
	for b := range e.plans {
		for k, ks := range e.keysets {
			var members []int
			for _, d := range ks.members {
				if e.defs[d].def.AcceptsType(1 << b) {
					members = append(members, d)
				}
			}
			if len(members) > 0 {
				e.plans[b] = append(e.plans[b], typePlan{ks: k, members: members})
			}
		}
	}
	e.dedupHorizons()
	return e
}

// dedupHorizons computes per event type its dedup horizon and groups the
// types with equal horizons into classes (classOf, horizons).
//
// The horizon of a type is H = max over the definitions c taking it of
// span(c) + c.lateness + c.ooo, in ms. An id of an event at time t of
// minute bucket b (b·60 s <= t < (b+1)·60 s) can be forgotten once
// (b+1)·60 s + H <= Clock:
//
//   - a duplicate changes a window of c only if that window is not late:
//     addToSeries refuses a window when end + c.lateness <= Clock − c.ooo;
//   - every window of c holding t ends at or before (b+1)·60 s + span(c):
//     a session is checked as the event's own [t, t+gap), whatever it
//     merges with later, so span = gap; a tumbling or hopping window starts
//     at a multiple of the slide at or before t, so it ends at or before
//     t + size < (b+1)·60 s + size, and when the slide divides a minute at
//     or before (b+1)·60 s − slide + size: span = size − slide (0 for a
//     1-minute tumbling window, whose only window holding t ends at
//     (b+1)·60 s), else size;
//   - so with (b+1)·60 s + H <= Clock, end + c.lateness + c.ooo <=
//     (b+1)·60 s + H <= Clock for every c: every window refuses the
//     duplicate (it is reported late), and as Clock never goes back, it
//     does so from then on.
//
// Duplicates are therefore still dropped while they could change a window
// (for a tumbling window whose slide divides a minute, exactly as long:
// one ms of Clock earlier, the window ending at (b+1)·60 s − slide + size
// still takes events). The sets are per class, not one for all types: a
// service_request id (1-minute and 5-minute windows) is forgotten after
// ~5–6 minutes even when a session metric keeps page_view ids for ~32.
// Two events are duplicates when they have the same id, the same
// event-time minute and types of the same class (types with the same
// horizon share one set); an event id identifies one event and a re-sent
// event has the same type, so this misses no re-delivery. (Before, the
// ids of one minute were one set for all types: events of different types
// with the same id were duplicates.)
func (e *Engine) dedupHorizons() {
	for b := range e.classOf {
		var h int64
		for i := range e.defs {
			c := &e.defs[i]
			if !c.def.AcceptsType(1 << b) {
				continue
			}
			span := c.size
			if c.kind != metrics.WindowSession && c.slide > 0 && bucketMs%c.slide == 0 {
				span = c.size - c.slide
			}
			h = max(h, span+c.lateness+c.ooo)
		}
		k := slices.Index(e.horizons, h)
		if k < 0 {
			k = len(e.horizons)
			e.horizons = append(e.horizons, h)
		}
		e.classOf[b] = uint8(k)
	}
}

// legacyHorizon is the horizon of the any-type id sets (anyHorizon), in
// ms: the longest window + lateness + out-of-orderness of all definitions,
// the horizon every id had before the per-type horizons.
func (e *Engine) legacyHorizon() int64 { return e.maxSpan + e.maxLate + e.maxOOO }

// assignKeyset puts definition i into the keyset of its GroupBy list and
// links its quantile sketch to an earlier member that computes the same
// sketch, if any.
func (e *Engine) assignKeyset(i int) {
	c := &e.defs[i]
	c.shareFrom = -1
	k := slices.IndexFunc(e.keysets, func(ks keyset) bool { return slices.Equal(ks.def.GroupBy, c.def.GroupBy) })
	if k < 0 {
		k = len(e.keysets)
		e.keysets = append(e.keysets, keyset{def: c.def})
	}
	ks := &e.keysets[k]
	c.ks, c.pos = k, len(ks.members)
	if c.def.NeedsQuantiles() && c.kind != metrics.WindowSession {
		for j, o := range ks.members {
			if oc := &e.defs[o]; oc.shareFrom < 0 && oc.def.NeedsQuantiles() && sameSketch(oc, c) {
				c.shareFrom = j
				break
			}
		}
	}
	ks.members = append(ks.members, i)
}

// sameSketch reports whether a and b (of one keyset) put the same values
// into the same windows: same types, filter, window, timing and value.
func sameSketch(a, b *compiled) bool {
	return a.kind == b.kind && a.size == b.size && a.slide == b.slide && a.ooo == b.ooo && a.lateness == b.lateness &&
		a.def.Value == b.def.Value && slices.Equal(a.def.Types, b.def.Types) &&
		a.def.FilterKey() == b.def.FilterKey()
}

// Window is the running aggregate of one window of one metric and label set.
//
// A window keeps neither its metric, its label map nor its checkpoint
// entry name: they derive from its series (Metric; the group key, which
// metrics.Definition.LabelsOfKey turns back into a map when a result is
// emitted; entryName). Sketches and their checkpoint caches live in a
// sketches struct that only the windows of metrics with a distinct,
// quantile or top-k aggregation have. With a million active keys, each
// of these fields was ~10 % of the heap (BenchmarkMillionActiveKeys):
// the struct is 96 bytes instead of 240, and no name string is held.
type Window struct {
	Start int64 // ms, inclusive
	End   int64 // ms, exclusive
	Count int64
	Sum   float64
	Min   float64
	Max   float64
	// Revision is the revision of the last emission (0: never emitted).
	Revision int64
	// LastEarly is the processing time (ms) of the last early emission.
	LastEarly int64

	series *series
	// sk is nil unless the metric needs a sketch.
	sk *sketches
	// Fired is true once the final result was emitted.
	Fired bool
	// Dirty is true when the aggregate changed since its last emission.
	Dirty   bool
	dead    bool // removed from the state
	touched bool // in the delta tracker's touched list
	inDirty bool // in State.dirty
	// lateOpen is set on a window opened (by a late event) at or below its
	// metric's fired mark (State.fired) and not fired yet: a restore must
	// not take it for fired, so its final rewrites its entry.
	lateOpen bool
}

// Metric returns the name of the window's metric.
func (w *Window) Metric() string { return w.series.metric }

// sketches are the parts of a window only metrics with a distinct,
// quantile or top-k aggregation need; each pointer is nil unless the
// metric needs that sketch.
type sketches struct {
	distinct  *metrics.Distinct
	quantiles *metrics.Quantiles
	topK      *metrics.TopK
	// hlog is how distinct is checkpointed (entries of its own, see
	// hllLog); set whenever distinct is.
	hlog *hllLog
	// ddEnc caches the serialized quantiles sketch for checkpoint
	// entries; nil when the sketch changed since (see encodeWindow).
	// Never mutated in place: a change drops the slice.
	ddEnc []byte
	// ddPend are the values added to quantiles since ddEnc was encoded: a
	// checkpoint entry carries ddEnc plus these instead of a fresh
	// encoding (see encodeWindow).
	ddPend []float64
	// sharedQ is set when quantiles belongs to another metric's window of
	// the same label set and start, which adds the values and checkpoints
	// the sketch; owner is that window's metric.
	sharedQ bool
	owner   string
}

// sketchesBytes is the size of a sketches struct (104 bytes: its size
// class), hllLogBytes that of an hllLog (56: its size class).
const sketchesBytes, hllLogBytes = 112, 64

// distinct, quantiles and topK return w's sketches, nil when the metric
// has none.
func (w *Window) distinct() *metrics.Distinct {
	if w.sk == nil {
		return nil
	}
	return w.sk.distinct
}

func (w *Window) quantiles() *metrics.Quantiles {
	if w.sk == nil {
		return nil
	}
	return w.sk.quantiles
}

func (w *Window) topK() *metrics.TopK {
	if w.sk == nil {
		return nil
	}
	return w.sk.topK
}

// ownsQuantiles reports whether w has a DDSketch of its own (not shared
// from another metric's window).
func (w *Window) ownsQuantiles() bool { return w.sk != nil && w.sk.quantiles != nil && !w.sk.sharedQ }

// series holds the windows of one metric and label set.
type series struct {
	metric  string
	group   string // metrics.Definition.AppendGroupKey form
	windows []*Window
	// nd is the node the series is linked from (nil until Add looks its
	// label set up after a restore), pos its index in nd.series.
	nd  *node
	pos int
	// cur is the window find returned last and curStart its start, so the
	// common lookup of the same window reads neither the windows array nor
	// a window; drop clears it.
	cur      *Window
	curStart int64
}

// State is the windowing state of one partition. The zero value is not
// usable; use NewState. Not safe for concurrent use.
type State struct {
	// Partition is the events.raw partition (the results' shard).
	Partition int32
	// MaxEventTime is the largest event time accepted, ms.
	MaxEventTime int64
	// Clock is the partition's event-time clock: MaxEventTime, or more when
	// an idle partition advanced with processing time. A definition's
	// watermark is Clock − its out-of-orderness.
	Clock int64
	// LastInput is the processing time of the last input batch, ms.
	LastInput int64

	byMetric map[string]map[string]*series
	// nodes holds per keyset of the engine the label sets seen, each with
	// the series of the keyset's members: the index Add uses.
	nodes []map[string]*node
	nwin  int
	// nextScan is the Clock at which some window may fire or be purged.
	nextScan int64
	revised  map[*Window]struct{}
	// dirty lists the open windows changed since their last emission (and
	// maybe some that were emitted, fired or dropped since, which Emit
	// skips): an early Emit between two window ends visits these instead
	// of every window.
	dirty []*Window
	// seen holds FNV-1a 64 hashes of accepted event ids by the minute of
	// their event time and the dedup horizon of their type (see
	// Engine.dedupHorizons), for as long as a duplicate could change a
	// window.
	seen map[seenKey]*idSet
	// anySets counts the sets of seen with horizon anyHorizon: ids of any
	// type, restored from entries of an older build or of other
	// definitions. Add consults them only while there are some.
	anySets int
	// horizonsOf is the engine whose dedup classes the keys of seen follow
	// (nil after a restore): Add adopts the sets of unknown horizons.
	horizonsOf *Engine

	delta deltaTracker
	// emitted is the memory of the last Emit's list of windows to emit,
	// reused by the next one.
	emitted []emitted
	// fired holds per metric the watermark (ms) of the last scan that
	// visited every window: each window of the metric that ends at or
	// before it has fired, except the lateOpen ones. It is checkpointed
	// in the meta entry, so a final emitted by such a scan does not
	// rewrite its window's entry (see firedMarks).
	fired map[string]int64
	// partial holds per metric the mark of a step that stopped inside the
	// metric (Config.ScanStep): its series whose group key is at most Upto
	// were visited at watermark Wm. Checkpointed in the meta entry with
	// fired.
	partial map[string]partialMark
	// scanAfter is the processing time (ms) before which a scan that
	// stopped at a step (Config.ScanStep) does not go on; scanNames and
	// scanList are the memory of the scan's lists of metric names and of
	// one metric's series.
	scanAfter int64
	scanNames []string
	scanList  []*series
	// stepped counts the steps the current scan has made (Config.ScanStep);
	// the next one holds ScanStep << (stepped / stepsPerSize) results.
	stepped int
}

// partialMark is the mark of a step that stopped inside a metric: each
// window of a series whose group key is at most Upto (byte order), ending
// at or before Wm (ms), has fired, except the lateOpen ones.
type partialMark struct {
	Wm   int64  `json:"wm"`
	Upto []byte `json:"upto"` // a group key; []byte: JSON keeps any bytes
}

// marked reports whether the marks of metric say that a window of the
// series of group key group, ending at end (ms), has fired unless it is
// lateOpen: whether a final emitted for it needs no entry rewrite.
func (s *State) marked(metric, group string, end int64) bool {
	if mark, ok := s.fired[metric]; ok && end <= mark {
		return true
	}
	pm, ok := s.partial[metric]
	return ok && end <= pm.Wm && group <= string(pm.Upto)
}

// seenKey names one set of remembered event ids: the minute bucket of
// their event time and the dedup horizon of their type class, in ms, or
// anyHorizon.
type seenKey struct {
	bucket  int64
	horizon int64
}

// anyHorizon marks a set of ids of any type: old checkpoints (s| entries)
// and sets of a horizon the engine no longer has. Every lookup consults
// it; Engine.legacyHorizon prunes it.
const anyHorizon = -1

// node is one label set of one keyset: the series of its members (nil
// while a member has no windows for it).
type node struct {
	ks     int
	key    string
	series []*series
	live   int // non-nil entries of series
}

// NewState returns the empty state of a partition.
func NewState(partition int32) *State {
	s := &State{Partition: partition, byMetric: map[string]map[string]*series{}, revised: map[*Window]struct{}{},
		seen: map[seenKey]*idSet{}, nextScan: 1<<63 - 1, fired: map[string]int64{}, partial: map[string]partialMark{}}
	s.delta.init()
	return s
}

// Watermark returns the partition's watermark under the service-wide
// out-of-orderness.
func (e *Engine) Watermark(s *State) int64 { return s.Clock - e.cfg.OutOfOrderness }

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
func (e *Engine) Add(s *State, evs []events.Event, now int64) Outcome {
	var out Outcome
	var key []byte
	if len(s.nodes) != len(e.keysets) {
		s.nodes = make([]map[string]*node, len(e.keysets))
		for k := range s.nodes {
			s.nodes[k] = map[string]*node{}
		}
	}
	if s.horizonsOf != e {
		e.adoptSeen(s)
	}
	// The id set of each dedup class for the minute of its last event
	// (events come in rough time order: one map lookup per class and
	// minute), and the any-type set of the last minute looked up.
	var (
		cacheBucket [len(e.classOf)]int64
		cacheSet    [len(e.classOf)]*idSet
		anyBucket   int64 = -1 << 63
		anySet      *idSet
	)
	for i := range evs {
		ev := &evs[i]
		typeBit := metrics.TypeBit(ev.Type)
		tb := bits.TrailingZeros32(typeBit)
		plans := e.plans[tb]
		if len(plans) == 0 {
			continue // no metric takes the type: nothing to window or remember
		}
		bucket := floorDiv(ev.Time, bucketMs)
		cls := e.classOf[tb]
		set := cacheSet[cls]
		if set == nil || cacheBucket[cls] != bucket {
			set = s.seenSet(seenKey{bucket, e.horizons[cls]})
			cacheBucket[cls], cacheSet[cls] = bucket, set
		}
		h := idHash(ev.ID)
		if s.anySets > 0 {
			if bucket != anyBucket {
				anyBucket, anySet = bucket, s.seen[seenKey{bucket, anyHorizon}]
			}
			if anySet.has(h) {
				out.Duplicates++
				continue
			}
		}
		// idSet.insert, written out: one hash operation for the lookup and
		// the insert (an id already there leaves the map's size unchanged),
		// and a binary search only in a compacted set, which gets only
		// late events. An event that no window takes is taken out again
		// below.
		if len(set.sorted) > 0 && set.inSorted(h) {
			out.Duplicates++
			continue
		}
		n := len(set.m)
		set.m[h] = struct{}{}
		if len(set.m) == n {
			out.Duplicates++
			continue
		}
		accepted, late := false, false
		for _, p := range plans {
			k, ks := p.ks, &e.keysets[p.ks]
			var nd *node
			for _, d := range p.members {
				c := &e.defs[d]
				if !c.def.MatchesType(ev, typeBit) {
					continue
				}
				if nd == nil {
					key = ks.def.AppendGroupKey(key[:0], ev)
					if nd = s.nodes[k][string(key)]; nd == nil {
						nd = e.newNode(s, k, string(key)) // a copy: key never shares a record's memory
					}
				}
				sr := nd.series[c.pos]
				if sr == nil {
					sr = s.newSeries(c, nd)
				}
				a, l := e.addToSeries(s, c, sr, ev)
				accepted = accepted || a
				late = late || l
				if len(sr.windows) == 0 {
					s.dropSeries(sr)
				}
			}
		}
		if !accepted {
			set.removeNew(h) // late, or matched no metric: nothing to remember
			if late {
				out.Late = append(out.Late, *ev)
			}
			continue
		}
		out.Accepted++
		s.delta.addSeen(seenKey{bucket, e.horizons[cls]}, h)
		if ev.Time > s.MaxEventTime {
			s.MaxEventTime = ev.Time
		}
	}
	if len(evs) > 0 {
		s.LastInput = now
	}
	s.Clock = max(s.Clock, s.MaxEventTime)
	e.pruneSeen(s)
	return out
}

// newNode adds the node of label set key (an AppendGroupKey form) to
// keyset k, linking the series a restore left in byMetric.
func (e *Engine) newNode(s *State, k int, key string) *node {
	ks := &e.keysets[k]
	nd := &node{ks: k, key: key, series: make([]*series, len(ks.members))}
	for j, d := range ks.members {
		if sr := s.byMetric[e.defs[d].def.Name][key]; sr != nil {
			nd.series[j], sr.nd, sr.pos = sr, nd, j
			nd.live++
		}
	}
	s.nodes[k][key] = nd
	return nd
}

// newSeries adds the empty series of c's metric for nd's label set.
func (s *State) newSeries(c *compiled, nd *node) *series {
	sr := &series{metric: c.def.Name, group: nd.key, nd: nd, pos: c.pos}
	m := s.byMetric[c.def.Name]
	if m == nil {
		m = map[string]*series{}
		s.byMetric[c.def.Name] = m
	}
	m[sr.group] = sr
	nd.series[c.pos] = sr
	nd.live++
	return sr
}

// dropSeries removes a series without windows from the state's indexes.
func (s *State) dropSeries(sr *series) {
	if m := s.byMetric[sr.metric]; m != nil && m[sr.group] == sr {
		delete(m, sr.group)
		if len(m) == 0 {
			delete(s.byMetric, sr.metric)
		}
	}
	if nd := sr.nd; nd != nil {
		nd.series[sr.pos] = nil
		sr.nd = nil
		if nd.live--; nd.live == 0 && len(s.nodes) > nd.ks && s.nodes[nd.ks][nd.key] == nd {
			delete(s.nodes[nd.ks], nd.key)
		}
	}
}

// addToSeries adds ev to the windows of sr it belongs to and reports
// whether some window took it and whether some window refused it as late.
func (e *Engine) addToSeries(s *State, c *compiled, sr *series, ev *events.Event) (accepted, late bool) {
	wm := s.Clock - c.ooo
	t := ev.Time
	if c.kind == metrics.WindowSession {
		end := t + c.size
		if end+c.lateness <= wm {
			return false, true
		}
		e.addSession(s, c, sr, ev, t, end)
		return true, false
	}
	// Tumbling (slide = size) and hopping: windows [start, start+size) with
	// start a multiple of slide and start <= t < start+size.
	for start := floorDiv(t, c.slide) * c.slide; start > t-c.size; start -= c.slide {
		end := start + c.size
		if end+c.lateness <= wm {
			late = true
			continue
		}
		w := sr.find(start)
		if w == nil {
			w = e.newWindow(s, c, sr, start, end)
		}
		e.update(s, c, w, ev)
		accepted = true
	}
	return accepted, late
}

func (e *Engine) addSession(s *State, c *compiled, sr *series, ev *events.Event, start, end int64) {
	// Every session overlapping [start, end) merges with the new one.
	var into *Window
	var oldStart int64 // into's start, which names its checkpoint entry
	for i := 0; i < len(sr.windows); {
		w := sr.windows[i]
		if w.Start > end || w.End < start { // touching sessions merge, as in Flink
			i++
			continue
		}
		if into == nil {
			into, oldStart = w, w.Start
			i++
			continue
		}
		mergeWindow(into, w)
		s.drop(w)
		delete(s.revised, w)
		sr.windows = slices.Delete(sr.windows, i, i+1)
		s.nwin--
	}
	if into == nil {
		into = e.newWindow(s, c, sr, start, end)
		oldStart = start
	}
	into.Start, into.End = min(into.Start, start), max(into.End, end)
	if into.Start != oldStart {
		// Renamed: the entry under the old start goes with the next delta.
		s.delta.remove(entryName(sr, oldStart))
		if into.sk != nil && into.sk.hlog != nil {
			s.delta.removeHLL(sr, oldStart, into.sk.hlog)
		}
		sr.cur = nil
	}
	e.update(s, c, into, ev)
	s.nextScan = min(s.nextScan, into.End+c.ooo)
}

// seenSet returns the id set of k, adding an empty one if there is none.
func (s *State) seenSet(k seenKey) *idSet {
	set := s.seen[k]
	if set == nil {
		set = newIDSet(0)
		s.seen[k] = set
	}
	return set
}

// adoptSeen makes the id sets of s follow e's dedup classes: a set whose
// horizon is none of e's (restored from entries written under other
// definitions or settings) joins the any-type set of its minute, which
// every lookup consults and the longest horizon prunes, so a duplicate of
// its ids is still dropped.
func (e *Engine) adoptSeen(s *State) {
	for k, set := range s.seen {
		if k.horizon == anyHorizon || slices.Contains(e.horizons, k.horizon) {
			continue
		}
		delete(s.seen, k)
		ak := seenKey{k.bucket, anyHorizon}
		if to := s.seen[ak]; to != nil {
			to.merge(set)
		} else {
			s.seen[ak] = set
			s.anySets++
		}
		s.delta.moveSeen(k, ak)
	}
	s.horizonsOf = e
}

// drop marks w removed; the caller takes it out of its series.
func (s *State) drop(w *Window) {
	if w.series.cur == w {
		w.series.cur = nil
	}
	w.dead = true
	s.delta.remove(entryName(w.series, w.Start))
	if w.sk != nil && w.sk.hlog != nil {
		s.delta.removeHLL(w.series, w.Start, w.sk.hlog)
	}
}

func (sr *series) find(start int64) *Window {
	if sr.cur != nil && sr.curStart == start {
		return sr.cur
	}
	for _, w := range sr.windows {
		if w.Start == start {
			sr.cur, sr.curStart = w, start
			return w
		}
	}
	return nil
}

func (e *Engine) newWindow(s *State, c *compiled, sr *series, start, end int64) *Window {
	w := &Window{Start: start, End: end, series: sr}
	if s.marked(c.def.Name, sr.group, end) {
		w.lateOpen = true
	}
	if c.def.NeedsDistinct() || c.def.NeedsQuantiles() || c.def.NeedsTopK() {
		w.sk = &sketches{}
	}
	if c.def.NeedsDistinct() {
		w.sk.distinct, w.sk.hlog = metrics.NewDistinct(), &hllLog{}
	}
	if c.def.NeedsQuantiles() {
		if c.shareFrom >= 0 && sr.nd != nil && sr.nd.series[c.shareFrom] != nil {
			if o := sr.nd.series[c.shareFrom].find(start); o != nil && o.ownsQuantiles() {
				w.sk.quantiles, w.sk.sharedQ, w.sk.owner = o.sk.quantiles, true, o.Metric()
			}
		}
		if w.sk.quantiles == nil {
			w.sk.quantiles = metrics.NewQuantiles()
		}
	}
	if c.def.NeedsTopK() {
		w.sk.topK = metrics.NewTopK(c.def.TopK.N * metrics.TopKCapacityFactor)
	}
	sr.windows = append(sr.windows, w)
	s.nwin++
	s.nextScan = min(s.nextScan, end+c.ooo)
	return w
}

func (e *Engine) update(s *State, c *compiled, w *Window, ev *events.Event) {
	if c.def.NeedsValue() {
		v := c.def.ValueOf(ev)
		if w.Count == 0 || v < w.Min {
			w.Min = v
		}
		if w.Count == 0 || v > w.Max {
			w.Max = v
		}
		w.Sum += v
		if w.ownsQuantiles() {
			w.sk.quantiles.Add(v)
			if w.sk.ddEnc != nil {
				w.sk.ddPend = append(w.sk.ddPend, v)
			}
		}
	}
	w.Count++
	if sk := w.sk; sk != nil {
		if sk.distinct != nil {
			h := metrics.DistinctHash(c.def.DistinctOf(ev))
			sk.distinct.AddHash(h)
			sk.hlog.add(h)
		}
		if sk.topK != nil {
			sk.topK.Add(c.def.TopKOf(ev))
		}
	}
	w.Dirty = true
	if w.Fired {
		s.revised[w] = struct{}{}
	} else {
		s.markDirty(w)
	}
	s.delta.touch(w)
}

// markDirty puts an open window that changed on the dirty list.
func (s *State) markDirty(w *Window) {
	if !w.inDirty {
		w.inDirty = true
		s.dirty = append(s.dirty, w)
	}
}

// mergeWindow adds b's aggregates to a (session merge).
func mergeWindow(a, b *Window) {
	if b.Count > 0 && (a.Count == 0 || b.Min < a.Min) {
		a.Min = b.Min
	}
	if b.Count > 0 && (a.Count == 0 || b.Max > a.Max) {
		a.Max = b.Max
	}
	a.Count += b.Count
	a.Sum += b.Sum
	if a.distinct() != nil && b.distinct() != nil {
		_ = a.sk.distinct.Merge(b.sk.distinct) // same precision: cannot fail
		a.sk.hlog.rebase()
	}
	if a.quantiles() != nil && b.quantiles() != nil {
		_ = a.sk.quantiles.Merge(b.sk.quantiles) // same mapping: cannot fail
		a.sk.ddEnc, a.sk.ddPend = nil, nil
	}
	if a.topK() != nil && b.topK() != nil {
		a.sk.topK.Merge(b.sk.topK)
	}
	a.Start, a.End = min(a.Start, b.Start), max(a.End, b.End)
	a.Revision = max(a.Revision, b.Revision)
	a.Fired = a.Fired && b.Fired
	a.Dirty = true
}

// AdvanceIdle moves the clock with processing time when the partition has
// had no input for IdleTimeout: to MaxEventTime plus the idle time beyond
// the timeout. It reports whether the clock moved.
func (e *Engine) AdvanceIdle(s *State, now int64) bool {
	if s.LastInput == 0 || s.MaxEventTime == 0 {
		return false
	}
	idle := now - s.LastInput - e.cfg.IdleTimeout
	if idle < 0 || s.MaxEventTime+idle <= s.Clock {
		return false
	}
	s.Clock = s.MaxEventTime + idle
	return true
}

// Emit returns the results due at the current clock and removes windows
// past their lateness. Every result gets the window's next revision:
//   - final: a window whose end its watermark reached and that has not fired;
//   - revised: a fired window changed by late events;
//   - early (only when early is true): an open window that changed and whose
//     last early result is at least the early interval older than now (ms).
//
// Results are sorted by metric, label set (its group key: the group-by
// values in GroupBy order), window start and end, so output order is
// deterministic. Emit scans the state only when the clock passed the next
// window end or purge time and a scan stopped at a step
// (Config.ScanStep) is not pausing; otherwise it costs O(revised windows),
// plus O(windows changed since their last emission) with early results.
// A scan stopped by Config.MaxScanResults defers the early results of the
// windows it did not visit to a later Emit.
func (e *Engine) Emit(s *State, now int64, early bool) []metrics.Result {
	em := emission{items: s.emitted[:0]}
	scanned, capped := false, false
	if s.Clock >= s.nextScan && now >= s.scanAfter {
		scanned, capped = true, e.scan(s, now, early, &em)
	}
	// Revisions the scan did not visit (all of them without a scan: no
	// window is final or past its lateness before nextScan, or it waits
	// for its step).
	for w := range s.revised {
		c := e.defByName[w.Metric()]
		if c == nil || w.dead || !w.Dirty {
			continue
		}
		e.emit(s, c, w, metrics.KindRevised, &em)
	}
	switch {
	case early && !capped:
		e.emitEarly(s, now, &em) // prunes the dirty list as it goes
	case scanned:
		e.pruneDirty(s)
	}
	clear(s.revised)
	res := e.results(s, &em)
	clear(em.items) // the reused list holds no window until the next Emit
	s.emitted = em.items[:0]
	return res
}

// emission collects the windows one Emit emits. Their results are built
// at the end, sorted, into a slice of exactly their number: a boundary's
// 25,000 results per Emit (290 B each) grown by append were ~60 % of the
// bytes a boundary allocated (BenchmarkMillionActiveKeys), and sorting
// 40-byte items moves less than sorting results.
type emission struct {
	items []emitted
}

// emitted is one window's result to build: its kind, and whether it
// repeats the values of the window's previous revision (Result.Unchanged).
type emitted struct {
	w         *Window
	c         *compiled
	kind      string
	unchanged bool
}

// results returns em's results ordered by metric, group key, window start
// and end. Sorting by the group key the series already has, instead of
// metrics.LabelsKey of each result's label map, costs no allocation per
// comparison (that was ~70 % of a minute boundary's Emit, BenchmarkBoundary).
func (e *Engine) results(s *State, em *emission) []metrics.Result {
	if len(em.items) == 0 {
		return nil
	}
	slices.SortFunc(em.items, func(a, b emitted) int {
		x, y := a.w, b.w
		return cmp.Or(cmp.Compare(x.series.metric, y.series.metric), cmp.Compare(x.series.group, y.series.group),
			cmp.Compare(x.Start, y.Start), cmp.Compare(x.End, y.End))
	})
	res := make([]metrics.Result, len(em.items))
	for i, it := range em.items {
		e.result(s, it, &res[i])
	}
	return res
}

// emitEarly adds to em the early results due at now (ms) of the open
// windows on the dirty list, as scan would emit them, and keeps on the list
// the windows whose early interval has not passed yet. A window whose
// watermark reached its end gets no early result: its final is due, and
// the scan that fires it (at a later step, Config.ScanStep) visits it.
// Once em holds Config.MaxScanResults results, the rest of the list waits
// for the next Emit (after a step of a boundary with 1,000,000 active keys
// that was every open session window: an 8.4 MB outbox instead of 3.3,
// BenchmarkMillionActiveKeys).
func (e *Engine) emitEarly(s *State, now int64, em *emission) {
	keep := s.dirty[:0]
	for i, w := range s.dirty {
		if len(em.items) >= e.cfg.MaxScanResults {
			keep = append(keep, s.dirty[i:]...)
			break
		}
		c := e.defByName[w.Metric()]
		if w.dead || w.Fired || !w.Dirty || c == nil || s.Clock-c.ooo >= w.End {
			w.inDirty = false
			continue
		}
		if now-w.LastEarly >= c.early {
			w.LastEarly = now
			w.inDirty = false
			e.emit(s, c, w, metrics.KindEarly, em)
			continue
		}
		keep = append(keep, w)
	}
	clear(s.dirty[len(keep):])
	s.dirty = keep
}

// scan visits the windows of every metric, in name order: it fires the
// due finals, emits revisions and (when early) early results, drops
// windows past their lateness and computes nextScan. It stops early in two
// ways, after which the next Emit scans again from the first metric:
//   - at a step (Config.ScanStep): once em holds the step's results
//     (ScanStep, doubled every stepsPerSize steps), before the next metric
//     or, in a metric with more label sets than the step has room for,
//     before the next label set in group-key order (not before the label
//     sets a previous step visited: a step never covers less of a metric
//     than the one before); the next scan waits ScanPause;
//   - at the cap (Config.MaxScanResults): before a label set, once em holds
//     that many; it reports capped.
//
// Either way the windows of the label sets it did not reach keep their
// place on the dirty list (Emit prunes it). firedMarks settles what it
// visited.
func (e *Engine) scan(s *State, now int64, early bool, em *emission) (capped bool) {
	next := int64(1<<63 - 1)
	names := s.scanNames[:0]
	for name := range s.byMetric {
		names = append(names, name)
	}
	slices.Sort(names)
	s.scanNames = names
	var stop scanStop
	step := e.cfg.ScanStep << min(s.stepped/stepsPerSize, 30)
	done := 0
	for _, name := range names {
		if step > 0 && len(em.items) >= step {
			stop.stepped = true
			break
		}
		m, c := s.byMetric[name], e.defByName[name]
		list := s.scanList[:0]
		for _, sr := range m {
			list = append(list, sr)
		}
		// When the step may end inside this metric, its label sets go in
		// group-key order, so that a mark can say which ones it visited.
		split := c != nil && step > 0 && len(em.items)+len(m) > step
		if split {
			slices.SortFunc(list, func(a, b *series) int { return strings.Compare(a.group, b.group) })
		}
		pm, had := s.partial[name]
		for i, sr := range list {
			if len(em.items) >= e.cfg.MaxScanResults {
				stop.capped = name
				break
			}
			if split && i > 0 && len(em.items) >= step && !(had && sr.group <= string(pm.Upto)) {
				stop.stepped, stop.inside, stop.upto = true, name, list[i-1].group
				break
			}
			next = e.scanSeries(s, c, sr, now, early, em, next)
		}
		clear(list) // a dropped series is not kept by the list's memory
		s.scanList = list[:0]
		if stop.capped != "" || stop.inside != "" {
			break
		}
		if len(m) == 0 {
			delete(s.byMetric, name)
		}
		done++
	}
	if stop.capped != "" || stop.stepped {
		next = s.Clock
	}
	switch {
	case stop.stepped:
		s.scanAfter = now + e.cfg.ScanPause
		s.stepped++
	case stop.capped == "":
		s.stepped = 0 // complete: the next boundary starts small
	}
	s.nextScan = next
	e.firedMarks(s, em, names[:done], stop)
	return stop.capped != ""
}

// stepsPerSize is how many steps of a scan have one size
// (Config.ScanStep): with 1,000, a boundary of ~8,000 finals a partition
// (the end-to-end benchmark) goes out in six steps over a second
// (1,000 ×4, 2,000 ×2). Doubling at every step put ~7,000 of them into
// 0.4 s: the bursts on metrics.windows stayed within ~0.6 s.
const stepsPerSize = 4

// scanStop is where a scan stopped before its end: at a step (stepped;
// inside the metric inside, after the label set of group key upto, or
// before a metric when inside is empty), or at the cap, in metric capped.
type scanStop struct {
	stepped      bool
	inside, upto string
	capped       string
}

// scanSeries is scan's visit of one series of metric c (nil: the metric
// is no longer defined, and its windows are dropped). It returns next
// lowered to the clock at which a window of sr may fire or be purged.
func (e *Engine) scanSeries(s *State, c *compiled, sr *series, now int64, early bool, em *emission, next int64) int64 {
	for i := 0; i < len(sr.windows); {
		w := sr.windows[i]
		if c == nil { // metric no longer defined: drop its state
			s.drop(w)
			delete(s.revised, w)
			sr.windows = slices.Delete(sr.windows, i, i+1)
			s.nwin--
			continue
		}
		wm := s.Clock - c.ooo
		var kind string
		switch {
		case !w.Fired && wm >= w.End:
			kind = metrics.KindFinal
			w.Fired = true
		case w.Fired && w.Dirty:
			kind = metrics.KindRevised
		case !w.Fired && w.Dirty && early && now-w.LastEarly >= c.early:
			kind = metrics.KindEarly
			w.LastEarly = now
		}
		if kind != "" {
			e.emit(s, c, w, kind, em)
		}
		if w.Fired && wm >= w.End+c.lateness {
			s.drop(w)
			delete(s.revised, w)
			sr.windows = slices.Delete(sr.windows, i, i+1)
			s.nwin--
			continue
		}
		if w.Fired {
			next = min(next, w.End+c.ooo+c.lateness)
		} else {
			next = min(next, w.End+c.ooo)
			if w.Dirty {
				s.markDirty(w)
			}
		}
		i++
	}
	if len(sr.windows) == 0 {
		s.dropSeries(sr)
	}
	return next
}

// pruneDirty takes off the dirty list the windows that have nothing left
// to emit early: dropped, fired, or emitted and unchanged since.
func (e *Engine) pruneDirty(s *State) {
	keep := s.dirty[:0]
	for _, w := range s.dirty {
		if w.dead || w.Fired || !w.Dirty {
			w.inDirty = false
			continue
		}
		keep = append(keep, w)
	}
	clear(s.dirty[len(keep):])
	s.dirty = keep
}

// firedMarks settles the checkpoint of the finals a scan emitted. Each
// metric the scan visited in full (visited) moves its fired mark to its
// watermark (or keeps it, if it was higher), and its finals need no
// rewrite of their entries: a restore derives that a window whose entry
// is not fired, not lateOpen, and ends at or before its metric's mark had
// its final emitted, with the revision after the entry's and no change
// since (restoreFired). At a minute boundary that is every window of the
// minute: their entries were the bulk of the boundary's checkpoint commit
// (~14,000 per partition in the end-to-end benchmark, 250-400 ms of Redis
// per partition). A step that stopped inside a metric gives it a partial
// mark (its label sets up to stop.upto, at its watermark) that does the
// same for the finals of those label sets; the finals of the metric the
// cap (Config.MaxScanResults) stopped the scan in rewrite their entries,
// as do those of a step whose watermark is below the metric's partial
// mark (a larger out-of-orderness after a restart). The marks of metrics
// not reached stay.
func (e *Engine) firedMarks(s *State, em *emission, visited []string, stop scanStop) {
	touch := stop.capped
	if stop.inside != "" {
		wm := s.Clock - e.defByName[stop.inside].ooo
		if pm, ok := s.partial[stop.inside]; ok && wm < pm.Wm {
			touch = stop.inside
		} else {
			s.partial[stop.inside] = partialMark{Wm: wm, Upto: []byte(stop.upto)}
		}
	}
	if touch != "" {
		for _, it := range em.items {
			if it.kind == metrics.KindFinal && it.w.Metric() == touch {
				s.delta.touch(it.w)
			}
		}
	}
	// A mark of a metric without windows has nothing left to stand for.
	maps.DeleteFunc(s.fired, func(name string, _ int64) bool { return s.byMetric[name] == nil })
	maps.DeleteFunc(s.partial, func(name string, _ partialMark) bool { return s.byMetric[name] == nil })
	for _, name := range visited {
		if _, ok := s.byMetric[name]; !ok {
			continue
		}
		if c := e.defByName[name]; c != nil {
			// Never lower: a larger out-of-orderness after a restart would
			// uncover windows the old mark stands for (their entries still
			// say not fired), and a window opened below the old mark is
			// lateOpen.
			s.fired[name] = max(s.fired[name], s.Clock-c.ooo)
			if pm, ok := s.partial[name]; ok && pm.Wm <= s.fired[name] {
				delete(s.partial, name) // the full mark covers it
			}
		}
	}
}

// emit gives w its next revision and adds its result of kind to em.
func (e *Engine) emit(s *State, c *compiled, w *Window, kind string, em *emission) {
	// A window emitted before and not changed since (a final after the
	// last early result) repeats that revision's values.
	unchanged := w.Revision > 0 && !w.Dirty
	w.Revision++
	w.Dirty = false
	if kind != metrics.KindFinal || w.lateOpen {
		s.delta.touch(w) // a final's entry is settled by firedMarks
	}
	em.items = append(em.items, emitted{w: w, c: c, kind: kind, unchanged: unchanged})
}

// result fills r with the result of it: the window's values at its
// emission, which the rest of the Emit does not change.
func (e *Engine) result(s *State, it emitted, r *metrics.Result) {
	w, c := it.w, it.c
	*r = metrics.Result{
		V: 1, Metric: w.Metric(), Labels: c.def.LabelsOfKey(w.series.group), WindowStart: w.Start, WindowEnd: w.End,
		Shard: s.Partition, Complete: c.complete, Kind: it.kind, Revision: w.Revision,
		Count: w.Count, Sum: w.Sum, Min: w.Min, Max: w.Max, Watermark: s.Clock - c.ooo,
		Agg: c.headline, Unit: c.def.Unit, Unchanged: it.unchanged,
	}
	if d := w.distinct(); d != nil {
		r.Distinct = float64(d.Estimate())
		if !c.complete {
			r.DistinctSketch, _ = d.MarshalBinary() // precision 14: cannot fail
		}
	}
	if q := w.quantiles(); q != nil {
		r.Quantiles = make(map[string]float64, len(c.quants))
		for _, name := range c.quants {
			r.Quantiles[name] = q.Quantile(metrics.QuantileOf[name])
		}
		if !c.complete {
			r.QuantileSketch, _ = q.MarshalBinary()
		}
	}
	if tk := w.topK(); tk != nil {
		r.TopK = tk.Top(c.def.TopK.N)
	}
	r.Value = metrics.Headline(c.headline, r, float64(w.End-w.Start)/1000)
}

// pruneSeen forgets event ids whose every window is past its lateness: a
// duplicate of them would be late anyway (see dedupHorizons). A set of
// minute b and horizon H goes once (b+1)·60 s + H <= Clock; the any-type
// sets use the longest horizon. A set whose minute ended at or before
// Clock − the largest out-of-orderness (every watermark passed it: only
// late events come) is compacted (idSet.compactIfDue).
func (e *Engine) pruneSeen(s *State) {
	old := s.Clock - e.maxOOO
	for k, set := range s.seen {
		h := k.horizon
		if h == anyHorizon {
			h = e.legacyHorizon()
		}
		if (k.bucket+1)*bucketMs+h <= s.Clock {
			delete(s.seen, k)
			s.delta.dropSeen(k)
			if k.horizon == anyHorizon {
				s.anySets--
			}
			continue
		}
		if (k.bucket+1)*bucketMs <= old {
			set.compactIfDue()
		}
	}
}

// ActiveWindows returns how many windows the state holds.
func (s *State) ActiveWindows() int { return s.nwin }

// SeenIDs returns how many event ids the state remembers for deduplication.
func (s *State) SeenIDs() int {
	n := 0
	for _, set := range s.seen {
		n += set.len()
	}
	return n
}

// MemoryBytes estimates the heap the state holds, in bytes: per window its
// struct, labels and sketches (a shared DDSketch once), per label set its
// index node, per remembered event id its map slot or, in a compacted
// set, its 8 bytes (idSet.memoryBytes). It is the gauge behind "memory per
// active window key" (MemoryBytes / ActiveWindows);
// BenchmarkMemoryPerWindow checks it against the runtime, and
// BenchmarkSeenBytesPerID the per-id part.
func (s *State) MemoryBytes() int64 {
	const windowBytes, seriesBytes, nodeBytes = 96, 120, 96
	var n int64
	for _, m := range s.byMetric {
		for _, sr := range m {
			n += seriesBytes + int64(len(sr.group))
			for _, w := range sr.windows {
				n += windowBytes
				if w.sk == nil {
					continue
				}
				n += sketchesBytes
				if d := w.sk.distinct; d != nil {
					b, _ := d.MarshalBinary()
					n += int64(len(b)) + hllLogBytes + 8*int64(cap(w.sk.hlog.pend))
				}
				if w.ownsQuantiles() {
					b, _ := w.sk.quantiles.MarshalBinary()
					n += int64(len(b)) * 4
				}
				if tk := w.sk.topK; tk != nil {
					n += int64(tk.Len()) * 64
				}
			}
		}
	}
	for _, m := range s.nodes {
		for _, nd := range m {
			n += nodeBytes + int64(len(nd.key)) + 8*int64(len(nd.series))
		}
	}
	for _, set := range s.seen {
		n += set.memoryBytes()
	}
	return n
}

// entryName returns the name of the checkpoint entry of sr's window that
// starts at start (ms): w|<metric>|<group>|<start>.
func entryName(sr *series, start int64) string {
	var b strings.Builder
	b.Grow(len(sr.metric) + len(sr.group) + 24)
	appendEntryName(&b, sr, start)
	return b.String()
}

// appendEntryName writes entryName(sr, start) to b and returns b's length.
func appendEntryName(b *strings.Builder, sr *series, start int64) int {
	b.WriteString("w|")
	b.WriteString(sr.metric)
	b.WriteByte('|')
	b.WriteString(sr.group)
	b.WriteByte('|')
	var num [20]byte
	b.Write(strconv.AppendInt(num[:0], start, 10))
	return b.Len()
}

// idHash is FNV-1a 64 of id, inline so it does not allocate.
func idHash(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	return h
}

// floorDiv divides rounding towards negative infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
