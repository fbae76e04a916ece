// Package adapters holds the notifier's receivers: a generic webhook with an
// Alertmanager-compatible payload and the Redis alerts:recent list.
package adapters

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/streamwatch/streamwatch/pkg/alerts"
)

// WebhookMessage is the JSON body POSTed to webhook receivers. It has the
// shape of Alertmanager's webhook payload (version "4"), so existing
// Alertmanager webhook consumers work unchanged.
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
}

// Webhook POSTs alerts as WebhookMessage JSON to a URL.
type Webhook struct {
	name, url, externalURL string
	client                 *http.Client
}

// NewWebhook returns a webhook receiver; timeout bounds each POST.
func NewWebhook(name, url, externalURL string, timeout time.Duration) *Webhook {
	return &Webhook{name: name, url: url, externalURL: externalURL, client: &http.Client{Timeout: timeout}}
}

// Name implements app.Receiver.
func (w *Webhook) Name() string { return w.name }

// Notify POSTs one alert. A 2xx answer is success; anything else, or a
// transport error, is returned (the caller retries). The groupKey is the
// alert's state-change id, so receivers can deduplicate a redelivery.
func (w *Webhook) Notify(ctx context.Context, a alerts.Alert) error {
	wa := WebhookAlert{
		Status: a.State, Labels: a.Labels, Annotations: a.Annotations,
		StartsAt: time.UnixMilli(a.StartsAt).UTC(), Fingerprint: a.Fingerprint,
	}
	if a.EndsAt > 0 {
		wa.EndsAt = time.UnixMilli(a.EndsAt).UTC()
	}
	if wa.Annotations == nil {
		wa.Annotations = map[string]string{}
	}
	body, err := json.Marshal(WebhookMessage{
		Version: "4", GroupKey: a.ID(), Status: a.State, Receiver: w.name,
		GroupLabels: map[string]string{"alertname": a.Rule}, CommonLabels: a.Labels,
		CommonAnnotations: wa.Annotations, ExternalURL: w.externalURL, Alerts: []WebhookAlert{wa},
	})
	if err != nil {
		return fmt.Errorf("encode webhook message: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "streamwatch-notifier/1")
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("post webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}
