package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/streamwatch/streamwatch/pkg/rules"
	"github.com/streamwatch/streamwatch/pkg/stream"
)

// WindowsState is the detector's state for one metrics.windows partition:
// the metric rule state (rules.MetricState), checkpointed incrementally.
// A commit writes only the series the record changed (stream.DeltaState),
// so its cost follows the record's points, not the number of series kept
// (a day and an hour of every label set a rule has seen). The checkpoint
// is a Redis hash of entries:
//
//	meta          JSON of metaEntry: entry format version, shard
//	              watermarks, next due watermark
//	s|<key>       JSON of one rules.Series, key as in MetricState.Series
//	              (rule name + "\xff" + canonical labels)
//
// Not safe for concurrent use (stream.Processor serialises a partition).
type WindowsState struct {
	*rules.MetricState
	// all makes the next TakeDelta write every series: the state came from
	// a snapshot checkpoint, whose series have no entries yet.
	all bool
}

var (
	_ stream.DeltaState       = (*WindowsState)(nil)
	_ stream.SnapshotRestorer = (*WindowsState)(nil)
)

// windowsEntryVersion is the format of the entries; RestoreEntries refuses
// others by name.
const windowsEntryVersion = 1

const (
	metaEntryName = "meta"
	seriesPrefix  = "s|"
)

type metaEntry struct {
	V          int             `json:"v"`
	Watermarks map[int32]int64 `json:"watermarks"`
	NextDue    int64           `json:"next_due,omitempty"`
}

// NewWindowsState returns an empty state that tracks its changes.
func NewWindowsState() *WindowsState {
	st := &WindowsState{MetricState: rules.NewMetricState()}
	st.TrackChanges()
	return st
}

// TakeDelta implements stream.DeltaState: the meta entry and the series
// changed since the last call as entries to set, deleted series as entries
// to delete. An error (a series that does not encode) is permanent.
func (s *WindowsState) TakeDelta() (map[string][]byte, []string, error) {
	keys := s.TakeChanges()
	if s.all {
		keys = keys[:0]
		for k := range s.Series {
			keys = append(keys, k)
		}
	}
	set := make(map[string][]byte, len(keys)+1)
	var del []string
	for _, k := range keys {
		name := seriesPrefix + k
		sr, ok := s.Series[k]
		if !ok {
			del = append(del, name)
			continue
		}
		b, err := json.Marshal(sr)
		if err != nil {
			return nil, nil, fmt.Errorf("encode series %q: %w", k, err)
		}
		set[name] = b
	}
	meta, err := json.Marshal(metaEntry{V: windowsEntryVersion, Watermarks: s.Watermarks, NextDue: s.NextDue})
	if err != nil {
		return nil, nil, fmt.Errorf("encode detector state meta: %w", err)
	}
	set[metaEntryName] = meta
	s.all = false
	return set, del, nil
}

// RestoreEntries implements stream.DeltaState: it rebuilds the state from
// every entry of its checkpoint. It fails naming each entry that does not
// decode, has an unknown kind, or a meta entry of another format version.
func (s *WindowsState) RestoreEntries(entries map[string][]byte) error {
	var errs []error
	for name, b := range entries {
		switch {
		case name == metaEntryName:
			var m metaEntry
			if err := json.Unmarshal(b, &m); err != nil {
				errs = append(errs, fmt.Errorf("entry %q: %w", name, err))
				continue
			}
			if m.V != windowsEntryVersion {
				errs = append(errs, fmt.Errorf("entry %q: format version %d, this build reads %d", name, m.V, windowsEntryVersion))
				continue
			}
			if m.Watermarks != nil {
				s.Watermarks = m.Watermarks
			}
			s.NextDue = m.NextDue
		case strings.HasPrefix(name, seriesPrefix):
			var sr rules.Series
			if err := json.Unmarshal(b, &sr); err != nil {
				errs = append(errs, fmt.Errorf("entry %q: %w", name, err))
				continue
			}
			s.Series[strings.TrimPrefix(name, seriesPrefix)] = &sr
		default:
			errs = append(errs, fmt.Errorf("entry %q: unknown kind", name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("restore detector windows state: %w", err)
	}
	return nil
}

// RestoreSnapshot implements stream.SnapshotRestorer: it reads the JSON
// rules.MetricState of a checkpoint written before the state was
// incremental, and makes the next TakeDelta write every series, so the
// partition's entries hold the whole state from its first commit on.
func (s *WindowsState) RestoreSnapshot(state []byte) error {
	var ms rules.MetricState
	if err := json.Unmarshal(state, &ms); err != nil {
		return fmt.Errorf("restore detector windows state from snapshot: %w", err)
	}
	if ms.Watermarks != nil {
		s.Watermarks = ms.Watermarks
	}
	if ms.Series != nil {
		s.Series = ms.Series
	}
	s.NextDue = ms.NextDue
	s.all = true
	return nil
}
