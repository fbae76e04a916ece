package adapters

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/services/query/internal/app/command"
	"github.com/streamwatch/streamwatch/services/query/internal/app/query"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/alertsearch"
)

var (
	_ command.AlertWriter        = (*ClickHouseAlertRepository)(nil)
	_ command.NotificationWriter = (*ClickHouseAlertRepository)(nil)
	_ query.AlertSearcher        = (*ClickHouseAlertRepository)(nil)
)

const alertColumns = "fingerprint, rule, state, state_rank, severity, label_names, label_values, " +
	"annotation_names, annotation_values, metric, value, threshold, starts_at, starts_at_ms, ends_at_ms, " +
	"window_start_ms, window_end_ms"

// ClickHouseAlertRepository writes alert state changes to <database>.alerts
// and notification outcomes to <database>.notifications (migrations 0003,
// 0004) and searches alerts. Safe for concurrent use.
type ClickHouseAlertRepository struct {
	conn          driver.Conn
	alerts        string // database.table
	notifications string // database.table
}

// NewClickHouseAlertRepository returns a repository on conn for database
// (a validated identifier; it is part of the SQL text).
func NewClickHouseAlertRepository(conn driver.Conn, database string) *ClickHouseAlertRepository {
	return NewClickHouseAlertRepositoryOn(conn, database, DefaultTables.Alerts, DefaultTables.Notifications)
}

// NewClickHouseAlertRepositoryOn is NewClickHouseAlertRepository on the
// given tables of database (validated identifiers).
func NewClickHouseAlertRepositoryOn(conn driver.Conn, database, alertsTable, notificationsTable string) *ClickHouseAlertRepository {
	return &ClickHouseAlertRepository{conn: conn, alerts: database + "." + alertsTable, notifications: database + "." + notificationsTable}
}

// InsertAlerts writes as in one insert. The rows of one episode
// (fingerprint, starts_at) collapse to the latest state on merge; searches
// read with FINAL.
func (r *ClickHouseAlertRepository) InsertAlerts(ctx context.Context, as []alerts.Alert) error {
	if len(as) == 0 {
		return nil
	}
	batch, err := r.conn.PrepareBatch(ctx, "INSERT INTO "+r.alerts+" ("+alertColumns+")")
	if err != nil {
		return fmt.Errorf("prepare alerts insert: %w", err)
	}
	for i := range as {
		a := &as[i]
		ln, lv := sortedPairs(a.Labels)
		an, av := sortedPairs(a.Annotations)
		if err := batch.Append(a.Fingerprint, a.Rule, a.State, alertsearch.StateRank(a.State), a.Severity, ln, lv, an, av,
			a.Metric, a.Value, a.Threshold, dateTime(a.StartsAt), a.StartsAt, a.EndsAt, a.WindowStart, a.WindowEnd); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("append alert %s: %w", a.ID(), err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d alerts: %w", len(as), err)
	}
	return nil
}

// InsertNotifications writes ns in one insert; rows with the same id
// collapse on merge.
func (r *ClickHouseAlertRepository) InsertNotifications(ctx context.Context, ns []command.Notification) error {
	if len(ns) == 0 {
		return nil
	}
	batch, err := r.conn.PrepareBatch(ctx, "INSERT INTO "+r.notifications+" (id, schema, key, received, received_ms, payload)")
	if err != nil {
		return fmt.Errorf("prepare notifications insert: %w", err)
	}
	for _, n := range ns {
		if err := batch.Append(n.ID, n.Schema, n.Key, dateTime(n.ReceivedMs), n.ReceivedMs, string(n.Payload)); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("append notification %s: %w", n.ID, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d notifications: %w", len(ns), err)
	}
	return nil
}

// SearchAlerts implements query.AlertSearcher: the latest state of each
// matching episode, newest start first (ties by fingerprint). Every value
// is a bound argument.
func (r *ClickHouseAlertRepository) SearchAlerts(ctx context.Context, q alertsearch.Query) ([]alerts.Alert, error) {
	var b strings.Builder
	b.WriteString("SELECT fingerprint, rule, state, severity, label_names, label_values, annotation_names, annotation_values, " +
		"metric, value, threshold, starts_at_ms, ends_at_ms, window_start_ms, window_end_ms FROM " + r.alerts + " FINAL" +
		" WHERE starts_at_ms >= ? AND starts_at_ms < ?")
	args := []any{q.From(), q.To()}
	if len(q.States()) > 0 {
		b.WriteString(" AND state IN (" + placeholders(len(q.States())) + ")")
		for _, s := range q.States() {
			args = append(args, s)
		}
	}
	if len(q.Severities()) > 0 {
		b.WriteString(" AND severity IN (" + placeholders(len(q.Severities())) + ")")
		for _, s := range q.Severities() {
			args = append(args, s)
		}
	}
	args = appendLabelFilters(&b, args, q.Labels())
	b.WriteString(" ORDER BY starts_at_ms DESC, fingerprint LIMIT ?")
	args = append(args, q.Limit())

	rows, err := r.conn.Query(ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("query alerts: %w", err)
	}
	defer rows.Close()
	var out []alerts.Alert
	for rows.Next() {
		var (
			a              alerts.Alert
			ln, lv, an, av []string
		)
		if err := rows.Scan(&a.Fingerprint, &a.Rule, &a.State, &a.Severity, &ln, &lv, &an, &av,
			&a.Metric, &a.Value, &a.Threshold, &a.StartsAt, &a.EndsAt, &a.WindowStart, &a.WindowEnd); err != nil {
			return nil, fmt.Errorf("scan alerts: %w", err)
		}
		a.V, a.Labels, a.Annotations = 1, pairsMap(ln, lv), pairsMap(an, av)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read alerts: %w", err)
	}
	return out, nil
}

// pairsMap zips aligned name and value arrays; nil when empty.
func pairsMap(names, values []string) map[string]string {
	if len(names) == 0 {
		return nil
	}
	m := make(map[string]string, len(names))
	for i, n := range names {
		if i < len(values) {
			m[n] = values[i]
		}
	}
	return m
}

var _ query.NotificationReader = (*ClickHouseAlertRepository)(nil)

// RecentNotifications implements query.NotificationReader: the n newest
// outcomes by receive time (ties by id, descending), read with FINAL so a
// replayed record appears once.
func (r *ClickHouseAlertRepository) RecentNotifications(ctx context.Context, n int) ([]query.StoredNotification, error) {
	rows, err := r.conn.Query(ctx, "SELECT id, schema, key, received_ms, payload FROM "+r.notifications+" FINAL"+
		" ORDER BY received_ms DESC, id DESC LIMIT ?", n)
	if err != nil {
		return nil, fmt.Errorf("query notifications: %w", err)
	}
	defer rows.Close()
	var out []query.StoredNotification
	for rows.Next() {
		var (
			sn      query.StoredNotification
			payload string
		)
		if err := rows.Scan(&sn.ID, &sn.Schema, &sn.Key, &sn.ReceivedMs, &payload); err != nil {
			return nil, fmt.Errorf("scan notifications: %w", err)
		}
		sn.Payload = json.RawMessage(payload)
		out = append(out, sn)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read notifications: %w", err)
	}
	return out, nil
}
