package adapters

import (
	"context"
	"net/http"
	"time"

	"github.com/streamwatch/streamwatch/services/notifier/internal/domain/dispatch"
)

// WebhookVersion is the version field of WebhookMessage: Alertmanager's
// webhook payload version 4, which this payload extends compatibly.
const WebhookVersion = "4"

// WebhookMessage is the JSON body POSTed to webhook receivers. It has the
// shape of Alertmanager's webhook payload (version "4"), so existing
// Alertmanager webhook consumers work unchanged; NotificationID is our
// addition, and so is each alert's acknowledgement (documented in
// docs/notifier.md): the same notification
// redelivered carries the same id, so a consumer can deduplicate.
type WebhookMessage struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []WebhookAlert    `json:"alerts"`
	NotificationID    string            `json:"notificationID"`
}

// WebhookAlert is one alert in a WebhookMessage. Times are RFC 3339 in
// event time; EndsAt is the zero time while firing, as in Alertmanager.
type WebhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
	// Acknowledgement is our addition: who acknowledged the alert's
	// episode, when (RFC 3339) and why; absent when nobody did.
	Acknowledgement *WebhookAck `json:"acknowledgement,omitempty"`
}

// WebhookAck is an acknowledgement in a WebhookAlert.
type WebhookAck struct {
	By      string    `json:"by"`
	At      time.Time `json:"at"`
	Comment string    `json:"comment,omitempty"`
}

// Webhook POSTs notifications as WebhookMessage JSON to a URL.
type Webhook struct {
	url, externalURL string
	maxAlerts        int
	client           *http.Client
}

// NewWebhook returns a webhook integration posting to url (a secret: never
// logged). maxAlerts > 0 truncates the alert list (truncatedAlerts counts
// the rest). Bound each call with the context.
func NewWebhook(url, externalURL string, maxAlerts int) *Webhook {
	return &Webhook{url: url, externalURL: externalURL, maxAlerts: maxAlerts, client: newHTTPClient()}
}

// Message renders n as the webhook payload.
func (w *Webhook) Message(n *dispatch.Notification) WebhookMessage {
	m := WebhookMessage{
		Version: WebhookVersion, GroupKey: n.GroupKey, Status: n.Status, Receiver: n.Receiver,
		GroupLabels: nonNil(n.GroupLabels), ExternalURL: w.externalURL, NotificationID: n.ID,
	}
	var labels, annots []map[string]string
	for _, a := range n.Alerts {
		wa := WebhookAlert{
			Status: a.State, Labels: nonNil(a.Labels), Annotations: nonNil(a.Annotations),
			StartsAt: time.UnixMilli(a.StartsAt).UTC(), Fingerprint: a.Fingerprint,
		}
		if a.EndsAt > 0 {
			wa.EndsAt = time.UnixMilli(a.EndsAt).UTC()
		}
		if a.Ack != nil {
			wa.Acknowledgement = &WebhookAck{By: a.Ack.By, At: time.UnixMilli(a.Ack.At).UTC(), Comment: a.Ack.Comment}
		}
		labels = append(labels, wa.Labels)
		annots = append(annots, wa.Annotations)
		m.Alerts = append(m.Alerts, wa)
	}
	m.CommonLabels, m.CommonAnnotations = common(labels), common(annots)
	if w.maxAlerts > 0 && len(m.Alerts) > w.maxAlerts {
		m.TruncatedAlerts = len(m.Alerts) - w.maxAlerts
		m.Alerts = m.Alerts[:w.maxAlerts]
	}
	return m
}

// Notify POSTs one notification; see postJSON for the error classes.
func (w *Webhook) Notify(ctx context.Context, n dispatch.Notification) error {
	_, err := postJSON(ctx, w.client, w.url, w.Message(&n))
	return err
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// common returns the pairs every map has.
func common(ms []map[string]string) map[string]string {
	out := map[string]string{}
	if len(ms) == 0 {
		return out
	}
	for k, v := range ms[0] {
		all := true
		for _, m := range ms[1:] {
			if w, ok := m[k]; !ok || w != v {
				all = false
				break
			}
		}
		if all {
			out[k] = v
		}
	}
	return out
}
