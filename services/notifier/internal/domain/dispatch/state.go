package dispatch

import (
	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/silences"
)

// Retention is how long, on the clock (ms), the latest state change of an
// alert that left every group is remembered for deduplication, and expired
// silences are kept: 7 days.
const Retention int64 = 7 * 24 * 3600 * 1000

// State is everything the dispatcher knows. It is JSON-encodable and is
// checkpointed with the input offset (pkg/stream), so a restart resumes
// every group, timer and silence exactly.
type State struct {
	// Now is the dispatcher's clock, ms since the epoch (event time; see
	// Dispatcher.Tick).
	Now int64 `json:"now"`
	// LastTick is the processing time of the last Tick, ms.
	LastTick int64 `json:"last_tick,omitempty"`
	// Latest is, per fingerprint, the latest alert state change applied:
	// replays and late older changes are recognised by it. Kept for
	// Retention after the alert left every group (one entry per alert,
	// not per state change, so the checkpoint stays small).
	Latest map[string]Episode `json:"latest"`
	// Alerts are the latest state of every alert in some group, by
	// fingerprint.
	Alerts map[string]alerts.Alert `json:"alerts"`
	// Silences by id.
	Silences map[string]*Silence `json:"silences"`
	// Acks by alert fingerprint.
	Acks map[string]silences.Ack `json:"acks"`
	// Groups by group key.
	Groups map[string]*Group `json:"groups"`

	// dirty holds the names of the checkpoint entries changed since the
	// last TakeDelta, while tracking is on (see delta.go); all makes the
	// next TakeDelta write every entry.
	dirty map[string]struct{}
	all   bool
	// left holds the fingerprints a flush took out of a group since the
	// last gc: the only alerts that can have left every group (see
	// Dispatcher.gc). Always empty between the Dispatcher's calls.
	left map[string]struct{}
}

// Episode is the latest state change applied for one alert.
type Episode struct {
	// StartsAt identifies the episode (alerts.Alert.StartsAt), ms.
	StartsAt int64 `json:"starts_at"`
	// State is pending, firing or resolved.
	State string `json:"state"`
	// At is the clock when it was applied, ms.
	At int64 `json:"at"`
}

// Silence is a silence and what the dispatcher learned about it.
type Silence struct {
	silences.Silence
	// Hit is true once the silence muted a firing alert (for
	// until_resolved).
	Hit bool `json:"hit,omitempty"`
	// ExpiredAt is set when an expire record or the until_resolved rule
	// ended it, ms.
	ExpiredAt int64 `json:"expired_at,omitempty"`
}

// activeAt reports whether the silence mutes at now.
func (s *Silence) activeAt(now int64) bool {
	if s.StartsAt > now || (s.EndsAt != 0 && now >= s.EndsAt) {
		return false
	}
	return s.ExpiredAt == 0 || now < s.ExpiredAt
}

// Group is an aggregation group: the alerts of one route with the same
// group labels, and what was last notified about them.
type Group struct {
	// Key is the group key (route id + group labels).
	Key string `json:"key"`
	// ID is a short hash of Key and the creation time: notification ids
	// start with it.
	ID string `json:"id"`
	// RouteID and Receiver come from the route.
	RouteID  string            `json:"route"`
	Receiver string            `json:"receiver"`
	Labels   map[string]string `json:"labels"`
	// Alerts are the fingerprints in the group.
	Alerts map[string]bool `json:"alerts"`
	// Created, NextFlush and LastNotify are clock times, ms.
	Created    int64 `json:"created"`
	NextFlush  int64 `json:"next_flush"`
	LastNotify int64 `json:"last_notify,omitempty"`
	// Seq counts the notifications of the group.
	Seq int64 `json:"seq"`
	// LastFiring are the fingerprints firing in the last notification.
	LastFiring map[string]bool `json:"last_firing,omitempty"`
	// Notified maps fingerprints whose firing was delivered to the episode
	// (StartsAt): their resolution is owed to the receiver whatever
	// silences or inhibitions say.
	Notified map[string]int64 `json:"notified,omitempty"`
	// Reported remembers "fingerprint|starts_at|kind" of silenced and
	// inhibited outcomes already published, so each is published once.
	Reported map[string]bool `json:"reported,omitempty"`
	// Muted is true while a mute window holds the group back (the muted
	// outcome is published once per window).
	Muted bool `json:"muted,omitempty"`
}

// NewState returns an empty state.
func NewState() *State {
	return &State{
		Latest: map[string]Episode{}, Alerts: map[string]alerts.Alert{}, Silences: map[string]*Silence{},
		Acks: map[string]silences.Ack{}, Groups: map[string]*Group{},
	}
}

// Notification is a due message for one receiver: the group's alerts to
// send. Its ID is deterministic (group id + sequence number).
type Notification struct {
	// V is the schema version, 1.
	V int `json:"v"`
	// ID identifies the notification; receivers may deduplicate by it.
	ID string `json:"id"`
	// GroupKey is the aggregation group's key.
	GroupKey string `json:"group_key"`
	// Receiver is the receiver name; Integration, set when the service
	// fans the notification out, names one of its integrations.
	Receiver    string `json:"receiver"`
	Integration string `json:"integration,omitempty"`
	// Status is firing if any alert fires, else resolved.
	Status string `json:"status"`
	// GroupLabels are the labels the group is formed by.
	GroupLabels map[string]string `json:"group_labels"`
	// Alerts are the alerts, firing ones first, then by fingerprint.
	Alerts []NotifiedAlert `json:"alerts"`
	// At is the clock time of the flush, ms.
	At int64 `json:"at"`
}

// NotifiedAlert is an alert in a notification.
type NotifiedAlert struct {
	alerts.Alert
	// Ack is set when the alert's episode was acknowledged.
	Ack *silences.Ack `json:"ack,omitempty"`
}

// Outcome kinds published on the notifications topic.
const (
	OutcomeSent      = "sent"
	OutcomeRetried   = "retried"
	OutcomeFailed    = "failed"
	OutcomeSilenced  = "silenced"
	OutcomeInhibited = "inhibited"
	OutcomeMuted     = "muted"
)

// Outcome is one entry of the delivery log (the notifications topic).
type Outcome struct {
	// V is the schema version, 1.
	V int `json:"v"`
	// ID is deterministic, so a re-published outcome is a duplicate.
	ID string `json:"id"`
	// Kind is one of the Outcome* constants.
	Kind string `json:"kind"`
	// GroupKey is the group (also the record key).
	GroupKey string `json:"group_key"`
	// Receiver and Integration name the destination.
	Receiver    string `json:"receiver"`
	Integration string `json:"integration,omitempty"`
	// NotificationID is set for sent, retried and failed.
	NotificationID string `json:"notification_id,omitempty"`
	// Fingerprints are the alerts concerned.
	Fingerprints []string `json:"fingerprints,omitempty"`
	// SilenceID is set for silenced.
	SilenceID string `json:"silence_id,omitempty"`
	// Attempt counts delivery attempts (retried, failed, sent).
	Attempt int `json:"attempt,omitempty"`
	// Error is the last error (retried, failed), without secrets.
	Error string `json:"error,omitempty"`
	// At is when, ms (the dispatcher's clock, or wall time for delivery).
	At int64 `json:"at"`
}

// Result is what a step of the dispatcher emits.
type Result struct {
	Notifications []Notification
	Outcomes      []Outcome
}

func (r *Result) add(o Result) {
	r.Notifications = append(r.Notifications, o.Notifications...)
	r.Outcomes = append(r.Outcomes, o.Outcomes...)
}

// Empty reports whether nothing was emitted.
func (r *Result) Empty() bool { return len(r.Notifications) == 0 && len(r.Outcomes) == 0 }
