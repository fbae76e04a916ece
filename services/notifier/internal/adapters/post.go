// Package adapters holds the notifier's integrations (generic webhook with
// Alertmanager's v4 payload, Slack incoming webhook, DingTalk robot
// markdown, email over SMTP, the Redis alerts:recent list) and its Kafka
// and Redis plumbing. Errors never contain receiver URLs or passwords.
package adapters

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/streamwatch/streamwatch/pkg/messaging"
)

// newHTTPClient returns the client of the HTTP integrations: otelhttp
// client spans around a transport that restores the real receiver URL.
// postJSON hands otelhttp a request for the redacted URL (scheme and host
// only), so spans (url.full) never carry the path or query of a receiver
// URL, where Slack, DingTalk and most webhooks keep their token.
func newHTTPClient() *http.Client {
	return &http.Client{Transport: otelhttp.NewTransport(realURLTransport{base: http.DefaultTransport})}
}

// realURLKey is the context key of a request's realURL.
type realURLKey struct{}

// realURL is the URL a request redacted by postJSON really goes to.
type realURL struct {
	shown string // the redacted URL the request carries
	u     *url.URL
}

// redacted returns u without user info, path and query: "https://host/redacted".
func redacted(u *url.URL) *url.URL {
	return &url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/redacted"}
}

// realURLTransport sends a request that carries its redacted URL to the
// real one from its context; other requests (e.g. redirects) pass as they
// are.
type realURLTransport struct{ base http.RoundTripper }

// RoundTrip implements http.RoundTripper.
func (t realURLTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if r, ok := req.Context().Value(realURLKey{}).(realURL); ok && req.URL.String() == r.shown {
		req = req.Clone(req.Context())
		req.URL, req.Host = r.u, ""
	}
	return t.base.RoundTrip(req)
}

// userAgent is sent with every HTTP request.
const userAgent = "streamwatch-notifier/1"

// postJSON POSTs v as JSON to target and returns the response body (up to
// 64 KiB). A 4xx answer (but 408 and 429) is permanent: retrying the same
// request cannot help. Errors never include target, which may hold a token.
func postJSON(ctx context.Context, client *http.Client, target string, v any) ([]byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, messaging.Permanent(fmt.Errorf("encode body: %w", err))
	}
	u, err := url.Parse(target)
	if err != nil {
		return nil, messaging.Permanent(errors.New("build request: invalid URL"))
	}
	shown := redacted(u)
	req, err := http.NewRequestWithContext(context.WithValue(ctx, realURLKey{}, realURL{shown: shown.String(), u: u}), http.MethodPost, shown.String(), bytes.NewReader(body))
	if err != nil {
		return nil, messaging.Permanent(errors.New("build request: invalid URL"))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // drop the URL
		}
		return nil, fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		err := fmt.Errorf("answered %s", resp.Status)
		if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
			return rb, messaging.Permanent(err)
		}
		return rb, err
	}
	return rb, nil
}
