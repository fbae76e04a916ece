package dispatch

import (
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"time"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/silences"
)

// Dispatcher applies alerts, silences and acknowledgements to a State and
// decides the notifications that are due. It holds only the static
// configuration: safe for concurrent use on different States.
type Dispatcher struct {
	cfg    Config
	routes map[string]*Route
}

// New returns a Dispatcher; cfg must be valid (Config.Validate).
func New(cfg Config) (*Dispatcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dispatch config: %w", err)
	}
	d := &Dispatcher{cfg: cfg, routes: map[string]*Route{}}
	cfg.Route.Walk(func(r *Route) { d.routes[r.ID] = r })
	return d, nil
}

// MaxCatchUp bounds the flushes of one group that one Advance simulates.
const MaxCatchUp = 1000

// EventTime is the time an alert state change happened, ms: the latest of
// its start, end and window end.
func EventTime(a *alerts.Alert) int64 { return max(a.StartsAt, a.EndsAt, a.WindowEnd) }

// matchLabels are an alert's labels plus alertname and severity when the
// labels lack them.
func matchLabels(a *alerts.Alert) map[string]string {
	m := make(map[string]string, len(a.Labels)+2)
	for k, v := range a.Labels {
		m[k] = v
	}
	if _, ok := m["alertname"]; !ok && a.Rule != "" {
		m["alertname"] = a.Rule
	}
	if _, ok := m["severity"]; !ok && a.Severity != "" {
		m["severity"] = a.Severity
	}
	return m
}

// Alert applies one alert state change: first the clock advances to the
// change's event time (flushing what was due before it), then the alert
// joins the groups of its routes (firing) or is marked resolved. A state
// change that is not after the latest one applied for its fingerprint (a
// replay, or an older episode arriving late) is ignored; pending alerts are
// ignored.
func (d *Dispatcher) Alert(st *State, a alerts.Alert) Result {
	res := d.Advance(st, EventTime(&a))
	if prev, ok := st.Latest[a.Fingerprint]; ok &&
		(a.StartsAt < prev.StartsAt || (a.StartsAt == prev.StartsAt && stateRank(a.State) <= stateRank(prev.State))) {
		return res
	}
	st.Latest[a.Fingerprint] = Episode{StartsAt: a.StartsAt, State: a.State, At: st.Now}
	st.touch(entryLatest, a.Fingerprint)
	switch a.State {
	case alerts.StateFiring:
		st.Alerts[a.Fingerprint] = a
		st.touch(entryAlert, a.Fingerprint)
		labels := matchLabels(&a)
		routes := d.cfg.Route.Match(labels)
		if len(routes) == 0 { // a root with matchers: the alert joins no group
			st.leave(a.Fingerprint)
		}
		for _, r := range routes {
			gl := r.groupLabels(labels)
			key := groupKey(r.ID, gl)
			g, ok := st.Groups[key]
			if !ok {
				g = &Group{
					Key: key, ID: groupID(key, st.Now), RouteID: r.ID, Receiver: r.Receiver, Labels: gl,
					Alerts: map[string]bool{}, Created: st.Now, NextFlush: st.Now + r.GroupWait.Milliseconds(),
				}
				st.Groups[key] = g
			}
			g.Alerts[a.Fingerprint] = true
			st.touch(entryGroup, key)
		}
	case alerts.StateResolved:
		old, ok := st.Alerts[a.Fingerprint]
		if !ok || old.StartsAt != a.StartsAt {
			return res // nothing of this episode is grouped
		}
		st.Alerts[a.Fingerprint] = a
		st.touch(entryAlert, a.Fingerprint)
	}
	res.add(d.Advance(st, st.Now)) // group_wait 0 flushes at once
	return res
}

// Silence applies a silence record. An upsert older (UpdatedAt) than the
// stored version is ignored. Silences take effect at the next flush.
func (d *Dispatcher) Silence(st *State, s silences.Silence) {
	old, ok := st.Silences[s.ID]
	if ok && s.UpdatedAt < old.UpdatedAt {
		return
	}
	if s.Op == silences.OpExpire {
		if ok {
			at := s.UpdatedAt
			if at == 0 {
				at = st.Now
			}
			old.ExpiredAt, old.UpdatedAt = at, s.UpdatedAt
			st.touch(entrySilence, s.ID)
		}
		return
	}
	ns := &Silence{Silence: s}
	if ok {
		ns.Hit = old.Hit
	}
	st.Silences[s.ID] = ns
	st.touch(entrySilence, s.ID)
}

// Ack applies an acknowledgement: the alert's episode (the current one when
// the ack names none) stops repeating. Acks of unknown alerts are ignored.
func (d *Dispatcher) Ack(st *State, ack silences.Ack) {
	a, ok := st.Alerts[ack.Fingerprint]
	if !ok || a.State != alerts.StateFiring {
		return
	}
	if ack.StartsAt == 0 {
		ack.StartsAt = a.StartsAt
	}
	if ack.StartsAt != a.StartsAt {
		return
	}
	st.Acks[ack.Fingerprint] = ack
	st.touch(entryAck, ack.Fingerprint)
}

// Tick moves the clock by the processing time elapsed since the last tick
// (so the clock never stands still while no alerts arrive) and flushes what
// is due. procMs is the processing time, ms. The first tick only records
// procMs.
func (d *Dispatcher) Tick(st *State, procMs int64) Result {
	last := st.LastTick
	st.LastTick = procMs
	if last == 0 || procMs <= last || st.Now == 0 {
		return Result{}
	}
	return d.Advance(st, st.Now+(procMs-last))
}

// Advance moves the clock to now (never backwards) and flushes every group
// that is due on the way, in order of due time, each at its own due time:
// so the sequence of notifications depends only on the times, not on how
// far one call moves the clock.
//
// A clock jump of more than MaxCatchUp group intervals (e.g. from a replay
// of old data to live alerts) skips the oldest flush times of a group
// rather than simulating every one of them.
func (d *Dispatcher) Advance(st *State, now int64) Result {
	var res Result
	before := st.Now
	for _, g := range st.Groups {
		r := d.routes[g.RouteID]
		if r == nil {
			r = d.cfg.Route
		}
		gi := r.GroupInterval.Milliseconds()
		if behind := now - g.NextFlush; behind > MaxCatchUp*gi {
			g.NextFlush += (behind/gi - MaxCatchUp) * gi
			st.touch(entryGroup, g.Key)
		}
	}
	for {
		g := d.nextDue(st, max(now, st.Now))
		if g == nil {
			break
		}
		st.Now = max(st.Now, g.NextFlush)
		d.expireSilences(st)
		res.add(d.flush(st, g))
	}
	if now > st.Now {
		st.Now = now
		d.expireSilences(st)
	}
	d.gc(st, before)
	return res
}

func (d *Dispatcher) nextDue(st *State, now int64) *Group {
	var best *Group
	for _, g := range st.Groups {
		if g.NextFlush > now {
			continue
		}
		if best == nil || g.NextFlush < best.NextFlush || (g.NextFlush == best.NextFlush && g.Key < best.Key) {
			best = g
		}
	}
	return best
}

// expireSilences ends until_resolved silences that muted a firing alert
// and now match none.
func (d *Dispatcher) expireSilences(st *State) {
	for id, s := range st.Silences {
		if !s.UntilResolved || s.ExpiredAt != 0 || !s.activeAt(st.Now) {
			continue
		}
		matches := false
		for _, a := range st.Alerts {
			if a.State == alerts.StateFiring && s.Matchers.Matches(matchLabels(&a)) {
				matches = true
				break
			}
		}
		if matches && !s.Hit {
			s.Hit = true
			st.touch(entrySilence, id)
		} else if !matches && s.Hit {
			s.ExpiredAt = st.Now
			st.touch(entrySilence, id)
		}
	}
}

// silencedBy returns the id of an active silence muting labels, or "".
func (d *Dispatcher) silencedBy(st *State, labels map[string]string) string {
	ids := make([]string, 0, len(st.Silences))
	for id, s := range st.Silences {
		if s.activeAt(st.Now) && s.Matchers.Matches(labels) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return ""
	}
	sort.Strings(ids)
	if s := st.Silences[ids[0]]; s.UntilResolved && !s.Hit {
		s.Hit = true
		st.touch(entrySilence, ids[0])
	}
	return ids[0]
}

// inhibited reports whether a firing source alert inhibits the alert fp
// with labels.
func (d *Dispatcher) inhibited(st *State, fp string, labels map[string]string) bool {
	for _, r := range d.cfg.Inhibit {
		if !r.Target.Matches(labels) {
			continue
		}
		for sfp, s := range st.Alerts {
			if sfp == fp || s.State != alerts.StateFiring {
				continue
			}
			sl := matchLabels(&s)
			if !r.Source.Matches(sl) {
				continue
			}
			equal := true
			for _, k := range r.Equal {
				if sl[k] != labels[k] {
					equal = false
					break
				}
			}
			if equal {
				return true
			}
		}
	}
	return false
}

func (d *Dispatcher) muted(r *Route, now int64) bool {
	t := time.UnixMilli(now)
	for _, n := range r.MuteTimeIntervals {
		for _, ti := range d.cfg.MuteIntervals[n] {
			if ti.Contains(t) {
				return true
			}
		}
	}
	return false
}

// flush decides what group g sends at st.Now, after Alertmanager's
// aggregation group flush and dedup stage (notify.DedupStage.needsUpdate),
// with resolutions that are owed always delivered.
func (d *Dispatcher) flush(st *State, g *Group) Result {
	var res Result
	r := d.routes[g.RouteID]
	if r == nil { // the tree changed shape: keep the group on the root
		r = d.cfg.Route
	}
	g.NextFlush = st.Now + r.GroupInterval.Milliseconds()
	st.touch(entryGroup, g.Key) // a flush changes the group, or deletes it
	if d.muted(r, st.Now) {
		if !g.Muted {
			g.Muted = true
			res.Outcomes = append(res.Outcomes, Outcome{
				V: 1, ID: fmt.Sprintf("%s:%d:%d:muted", g.ID, g.Seq+1, st.Now), Kind: OutcomeMuted,
				GroupKey: g.Key, Receiver: g.Receiver, At: st.Now,
			})
		}
		return res
	}
	g.Muted = false
	if g.Notified == nil {
		g.Notified = map[string]int64{}
	}
	if g.Reported == nil {
		g.Reported = map[string]bool{}
	}
	sendResolved := d.cfg.SendResolved[g.Receiver]
	var firing, resolved []NotifiedAlert
	fps := make([]string, 0, len(g.Alerts))
	for fp := range g.Alerts {
		fps = append(fps, fp)
	}
	sort.Strings(fps)
	for _, fp := range fps {
		a, ok := st.Alerts[fp]
		if !ok {
			delete(g.Alerts, fp)
			st.leave(fp)
			continue
		}
		if a.State == alerts.StateResolved {
			delete(g.Alerts, fp)
			st.leave(fp)
			if ep, owed := g.Notified[fp]; owed && ep == a.StartsAt {
				resolved = append(resolved, NotifiedAlert{Alert: a})
			}
			delete(g.Notified, fp)
			delete(g.LastFiring, fp)
			continue
		}
		labels := matchLabels(&a)
		if sid := d.silencedBy(st, labels); sid != "" {
			res.Outcomes = append(res.Outcomes, d.suppressed(g, &a, OutcomeSilenced, sid, st.Now)...)
			continue
		}
		if d.inhibited(st, fp, labels) {
			res.Outcomes = append(res.Outcomes, d.suppressed(g, &a, OutcomeInhibited, "", st.Now)...)
			continue
		}
		na := NotifiedAlert{Alert: a}
		if ack, ok := st.Acks[fp]; ok && ack.StartsAt == a.StartsAt {
			na.Ack = &ack
		}
		firing = append(firing, na)
	}

	send := false
	switch {
	case len(firing) == 0 && len(resolved) == 0:
	case len(resolved) > 0 && sendResolved:
		send = true
	default:
		for _, a := range firing {
			if !g.LastFiring[a.Fingerprint] || g.Notified[a.Fingerprint] != a.StartsAt {
				send = true // a new alert or a new episode
			}
		}
		if !send && len(firing) > 0 && st.Now-g.LastNotify >= r.RepeatInterval.Milliseconds() {
			for _, a := range firing {
				send = send || a.Ack == nil // acknowledged alerts do not repeat
			}
		}
	}
	if !send || (len(firing) == 0 && !sendResolved) {
		if len(g.Alerts) == 0 {
			delete(st.Groups, g.Key)
		}
		return res
	}
	g.Seq++
	g.LastNotify = st.Now
	g.LastFiring = map[string]bool{}
	for _, a := range firing {
		g.LastFiring[a.Fingerprint] = true
		g.Notified[a.Fingerprint] = a.StartsAt
	}
	status := alerts.StateResolved
	if len(firing) > 0 {
		status = alerts.StateFiring
	}
	all := append(firing, resolved...)
	if !sendResolved {
		all = firing
	}
	res.Notifications = append(res.Notifications, Notification{
		V: 1, ID: g.ID + ":" + strconv.FormatInt(g.Seq, 10), GroupKey: g.Key, Receiver: g.Receiver,
		Status: status, GroupLabels: g.Labels, Alerts: all, At: st.Now,
	})
	if len(g.Alerts) == 0 {
		delete(st.Groups, g.Key)
	}
	return res
}

// suppressed returns the silenced/inhibited outcome of alert a in g, once
// per episode and kind.
func (d *Dispatcher) suppressed(g *Group, a *alerts.Alert, kind, silenceID string, now int64) []Outcome {
	k := a.Fingerprint + "|" + strconv.FormatInt(a.StartsAt, 10) + "|" + kind
	if g.Reported[k] {
		return nil
	}
	g.Reported[k] = true
	return []Outcome{{
		V: 1, ID: g.ID + ":" + k, Kind: kind, GroupKey: g.Key, Receiver: g.Receiver,
		Fingerprints: []string{a.Fingerprint}, SilenceID: silenceID, At: now,
	}}
}

// HistorySweep is the clock period (ms) at which gc looks for latest
// episodes older than Retention: once per minute of the clock instead of
// at every step, since the history holds every alert of Retention (7
// days) and a scan per alert record made the dispatcher O(history) per
// record. An entry is thus forgotten up to one minute of clock after it
// expired. The sweep depends only on the clock, which is checkpointed, so
// a replay forgets the same entries at the same records.
const HistorySweep int64 = 60_000

// leave notes that a flush took fp out of a group.
func (st *State) leave(fp string) {
	if st.left == nil {
		st.left = map[string]struct{}{}
	}
	st.left[fp] = struct{}{}
}

// gc forgets alerts no group holds (resolved and flushed), their acks,
// their latest episodes after Retention, and silences that ended more than
// Retention ago. before is the clock when the calling step began.
//
// It costs O(acks + silences) per step plus, only on steps whose flushes
// took alerts out of groups, O(alerts held) to find which of those left
// every group, and once per HistorySweep of the clock O(history): only a
// flush takes an alert out of a group (a firing alert always joins the
// root route's group, unless the root has matchers: Alert notes those),
// so the alerts taken out since the last gc are the
// only candidates, and a latest episode ages past Retention only as the
// clock moves.
func (d *Dispatcher) gc(st *State, before int64) {
	if len(st.left) > 0 {
		held := make(map[string]struct{}, len(st.left))
		for _, g := range st.Groups {
			for fp := range g.Alerts {
				if _, ok := st.left[fp]; ok {
					held[fp] = struct{}{}
				}
			}
		}
		for fp := range st.left {
			if _, ok := held[fp]; ok {
				continue
			}
			if _, ok := st.Alerts[fp]; ok {
				delete(st.Alerts, fp)
				st.touch(entryAlert, fp)
			}
		}
		clear(st.left)
	}
	for fp, ack := range st.Acks {
		if a, ok := st.Alerts[fp]; !ok || a.StartsAt != ack.StartsAt {
			delete(st.Acks, fp)
			st.touch(entryAck, fp)
		}
	}
	if st.Now/HistorySweep != before/HistorySweep {
		for fp, e := range st.Latest {
			if _, ok := st.Alerts[fp]; !ok && e.At < st.Now-Retention {
				delete(st.Latest, fp)
				st.touch(entryLatest, fp)
			}
		}
	}
	for id, s := range st.Silences {
		end := s.EndsAt
		if s.ExpiredAt != 0 && (end == 0 || s.ExpiredAt < end) {
			end = s.ExpiredAt
		}
		if end != 0 && end < st.Now-Retention {
			delete(st.Silences, id)
			st.touch(entrySilence, id)
		}
	}
}

// stateRank orders the states of one episode: pending, firing, resolved.
func stateRank(s string) int {
	switch s {
	case alerts.StateFiring:
		return 1
	case alerts.StateResolved:
		return 2
	}
	return 0
}

// groupID is 16 hex digits of FNV-1a over the key and creation time.
func groupID(key string, created int64) string {
	h := fnv.New64a()
	h.Write([]byte(key))
	h.Write([]byte(strconv.FormatInt(created, 10)))
	return fmt.Sprintf("%016x", h.Sum64())
}
