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

	"github.com/streamwatch/streamwatch/pkg/messaging"
)

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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
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
