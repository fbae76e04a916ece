package dispatch

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/silences"
)

// The state is checkpointed as entries of a Redis hash (pkg/stream's
// DeltaState), so a commit writes what one record or tick changed instead
// of the whole state (which remembers every alert of the last 7 days):
//
//	meta        JSON of deltaMeta: format version, clock, last tick
//	l|<fp>      JSON Episode: the latest state change of an alert
//	a|<fp>      JSON alerts.Alert: an alert some group holds
//	s|<id>      JSON Silence
//	k|<fp>      JSON silences.Ack
//	g|<key>     JSON Group
//
// The Dispatcher records the entries it adds, changes or deletes
// (State.touch) while tracking is on (TrackChanges).
const (
	entryLatest  = "l|"
	entryAlert   = "a|"
	entrySilence = "s|"
	entryAck     = "k|"
	entryGroup   = "g|"
	entryMeta    = "meta"
)

// deltaVersion is the format of the entries; RestoreEntries refuses others.
const deltaVersion = 1

type deltaMeta struct {
	V        int   `json:"v"`
	Now      int64 `json:"now"`
	LastTick int64 `json:"last_tick,omitempty"`
}

// TrackChanges makes the state remember the entries the Dispatcher
// changes, for TakeDelta. Off by default, so a state nobody checkpoints
// incrementally never grows a change set.
func (st *State) TrackChanges() {
	if st.dirty == nil {
		st.dirty = map[string]struct{}{}
	}
}

// touch records that the entry kind+id changed, when tracking is on.
func (st *State) touch(kind, id string) {
	if st.dirty != nil {
		st.dirty[kind+id] = struct{}{}
	}
}

// TakeDelta implements pkg/stream's DeltaState: the meta entry and the
// entries changed since the last call (or, after RestoreSnapshot, every
// entry) to set, the deleted ones to delete. It errors when an entry does
// not encode.
func (st *State) TakeDelta() (map[string][]byte, []string, error) {
	names := make([]string, 0, len(st.dirty))
	if st.all {
		names = st.entryNames()
	} else {
		for n := range st.dirty {
			names = append(names, n)
		}
	}
	clear(st.dirty)
	st.all = false
	set := make(map[string][]byte, len(names)+1)
	var del []string
	for _, name := range names {
		v, ok := st.entry(name)
		if !ok {
			del = append(del, name)
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, nil, fmt.Errorf("encode dispatch entry %q: %w", name, err)
		}
		set[name] = b
	}
	meta, err := json.Marshal(deltaMeta{V: deltaVersion, Now: st.Now, LastTick: st.LastTick})
	if err != nil {
		return nil, nil, fmt.Errorf("encode dispatch meta: %w", err)
	}
	set[entryMeta] = meta
	return set, del, nil
}

// entry returns the value of the entry name, and whether it exists.
func (st *State) entry(name string) (any, bool) {
	kind, id := name[:2], name[2:]
	var v any
	var ok bool
	switch kind {
	case entryLatest:
		v, ok = st.Latest[id]
	case entryAlert:
		v, ok = st.Alerts[id]
	case entrySilence:
		v, ok = st.Silences[id]
	case entryAck:
		v, ok = st.Acks[id]
	case entryGroup:
		v, ok = st.Groups[id]
	}
	return v, ok
}

// entryNames lists every entry of the state but meta.
func (st *State) entryNames() []string {
	names := make([]string, 0, len(st.Latest)+len(st.Alerts)+len(st.Silences)+len(st.Acks)+len(st.Groups))
	for id := range st.Latest {
		names = append(names, entryLatest+id)
	}
	for id := range st.Alerts {
		names = append(names, entryAlert+id)
	}
	for id := range st.Silences {
		names = append(names, entrySilence+id)
	}
	for id := range st.Acks {
		names = append(names, entryAck+id)
	}
	for id := range st.Groups {
		names = append(names, entryGroup+id)
	}
	return names
}

// RestoreEntries implements pkg/stream's DeltaState: it rebuilds the state
// (fresh from NewState) from every entry of its checkpoint. It fails
// naming each entry that does not decode, has an unknown kind, or a meta
// entry of another format version.
func (st *State) RestoreEntries(entries map[string][]byte) error {
	var errs []error
	for name, b := range entries {
		if err := st.restore(name, b); err != nil {
			errs = append(errs, fmt.Errorf("entry %q: %w", name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("restore dispatch state: %w", err)
	}
	return nil
}

func (st *State) restore(name string, b []byte) error {
	if name == entryMeta {
		var m deltaMeta
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		if m.V != deltaVersion {
			return fmt.Errorf("format version %d, this build reads %d", m.V, deltaVersion)
		}
		st.Now, st.LastTick = m.Now, m.LastTick
		return nil
	}
	if len(name) < 2 {
		return errors.New("unknown kind")
	}
	kind, id := name[:2], name[2:]
	var err error
	switch kind {
	case entryLatest:
		var e Episode
		err = json.Unmarshal(b, &e)
		st.Latest[id] = e
	case entryAlert:
		var a alerts.Alert
		err = json.Unmarshal(b, &a)
		st.Alerts[id] = a
	case entrySilence:
		s := &Silence{}
		err = json.Unmarshal(b, s)
		st.Silences[id] = s
	case entryAck:
		var a silences.Ack
		err = json.Unmarshal(b, &a)
		st.Acks[id] = a
	case entryGroup:
		g := &Group{}
		err = json.Unmarshal(b, g)
		st.Groups[id] = g
	default:
		return errors.New("unknown kind")
	}
	return err
}

// RestoreSnapshot implements pkg/stream's SnapshotRestorer: it reads the
// JSON State of a checkpoint written before the state was incremental, and
// makes the next TakeDelta write every entry.
func (st *State) RestoreSnapshot(state []byte) error {
	var full State
	if err := json.Unmarshal(state, &full); err != nil {
		return fmt.Errorf("restore dispatch state from snapshot: %w", err)
	}
	dirty := st.dirty
	*st = *NewState()
	st.Now, st.LastTick = full.Now, full.LastTick
	if full.Latest != nil {
		st.Latest = full.Latest
	}
	if full.Alerts != nil {
		st.Alerts = full.Alerts
	}
	if full.Silences != nil {
		st.Silences = full.Silences
	}
	if full.Acks != nil {
		st.Acks = full.Acks
	}
	if full.Groups != nil {
		st.Groups = full.Groups
	}
	st.dirty, st.all = dirty, true
	return nil
}
