package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	gojson "github.com/goccy/go-json"
	"golang.org/x/time/rate"
)

// SendOptions controls Send.
type SendOptions struct {
	// CollectorURL is the collector's base URL, e.g. http://127.0.0.1:8080.
	CollectorURL string
	// Items is how many items to generate and send.
	Items int64
	// Batch is the most items per HTTP request (default 1000).
	Batch int
	// Workers is the number of concurrent requests (default 4).
	Workers int
	// Rate is the wall-clock rate in items/s; 0 sends as fast as possible.
	Rate float64
	// Source names the access-log source; line ids are <Source>:<line>.
	// Default "gen-<seed>".
	Source string
	// Client is the HTTP client (default: 30 s timeout).
	Client *http.Client
	// RetryFor, when positive, retries a request that fails in transport
	// or is answered 5xx for up to this long (exponential backoff from
	// 100 ms to 2 s), instead of 5 tries: a collector that is down or
	// restarting, or a broker it cannot reach, then costs time but no
	// items. Retrying is safe because every item has a stable id (events
	// their event_id, log lines <Source>:<line>, samples series + time), so
	// a request the collector accepted but whose answer was lost counts
	// once downstream.
	RetryFor time.Duration
	// APIKey is sent as "Authorization: Bearer <key>" (a key with the
	// ingest scope, e.g. stack.Stack.Keys().Ingest); empty sends none (a
	// collector with AUTH_MODE=off).
	APIKey string
}

// Report is what Send did. Counts are items (events or log lines).
type Report struct {
	Sent     int64         `json:"sent"`
	Accepted int64         `json:"accepted"`
	Rejected int64         `json:"rejected"`
	Failed   int64         `json:"failed"`
	Requests int64         `json:"requests"`
	Elapsed  time.Duration `json:"elapsed_ns"`
}

// ItemsPerSecond is the accepted rate over the run.
func (r Report) ItemsPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Accepted) / r.Elapsed.Seconds()
}

type request struct {
	path string
	body []byte
	n    int64
}

// Send generates opt.Items items from g and posts them to the collector:
// JSON events to /v1/events, metric samples to /v1/samples, access-log lines to /v1/logs with
// source=<Source>&first_line=<n>, so every line has a stable id. A request
// answered 503 or failing in transport is retried with exponential backoff
// (5 tries); items of a request that still fails count as Failed. Send
// returns an error when any item failed or ctx ended early; the Report is
// valid either way. Items of one entity may be reordered by at most Workers
// requests, far less than the aggregator's out-of-orderness.
func Send(ctx context.Context, g *Generator, opt SendOptions) (Report, error) {
	if opt.Batch <= 0 {
		opt.Batch = 1000
	}
	if opt.Workers <= 0 {
		opt.Workers = 4
	}
	if opt.Source == "" {
		opt.Source = fmt.Sprintf("gen-%d", g.cfg.Seed)
	}
	if opt.Client == nil {
		opt.Client = &http.Client{Timeout: 30 * time.Second}
	}
	var lim *rate.Limiter
	if opt.Rate > 0 {
		lim = rate.NewLimiter(rate.Limit(opt.Rate), max(opt.Batch, int(opt.Rate)))
	}
	var rep Report
	reqs := make(chan request, opt.Workers)
	var wg sync.WaitGroup
	var accepted, rejected, failed, requests atomic.Int64
	var errMu sync.Mutex
	var firstErr error
	start := time.Now()
	for range opt.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range reqs {
				a, rj, err := post(ctx, opt.Client, opt.APIKey, opt.CollectorURL+r.path, r.body, opt.RetryFor)
				requests.Add(1)
				accepted.Add(a)
				rejected.Add(rj)
				if err != nil {
					failed.Add(r.n - a - rj)
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
				}
			}
		}()
	}
	line := int64(1)
	var genErr error
	for rep.Sent < opt.Items && genErr == nil {
		n := min(int64(opt.Batch), opt.Items-rep.Sent)
		if lim != nil {
			if genErr = lim.WaitN(ctx, int(n)); genErr != nil {
				break
			}
		}
		batch, next, err := nextRequests(g, n, opt.Source, line)
		rep.Sent += n
		if err != nil {
			genErr = err
			break
		}
		line = next
		for _, r := range batch {
			if genErr = enqueue(ctx, reqs, r); genErr != nil {
				break
			}
		}
	}
	close(reqs)
	wg.Wait()
	rep.Elapsed = time.Since(start)
	rep.Accepted, rep.Rejected, rep.Failed, rep.Requests = accepted.Load(), rejected.Load(), failed.Load(), requests.Load()
	return rep, errors.Join(genErr, firstErr)
}

// nextRequests generates n items from g and encodes them as the requests
// of one batch: the events as a JSON array for /v1/events, the metric
// samples as one for /v1/samples, the access-log lines for /v1/logs with
// source and first_line (line, the number of the batch's first line). It
// returns the requests (at most three) and the number of the next
// batch's first line; the error is the encoder's. The arrays are encoded
// with goccy/go-json without sorting the maps' keys: encoding/json's
// reflection and key sort took a third of the generator's CPU
// (BenchmarkNextRequests: 8.8-11.5 ms per 1,000 items with
// encoding/json, 5.3-6.4 ms with goccy; 20,600 allocations → 10,500).
func nextRequests(g *Generator, n int64, source string, line int64) ([]request, int64, error) {
	var evs, samples []map[string]any
	var lines []string
	for range n {
		switch it := g.Next(); {
		case it.Line != "":
			lines = append(lines, it.Line)
		case it.Type == "metric_sample":
			samples = append(samples, it.Event)
		default:
			evs = append(evs, it.Event)
		}
	}
	var out []request
	if len(evs) > 0 {
		b, err := gojson.MarshalWithOption(evs, gojson.UnorderedMap())
		if err != nil {
			return nil, line, fmt.Errorf("encode events: %w", err)
		}
		out = append(out, request{path: "/v1/events", body: b, n: int64(len(evs))})
	}
	if len(samples) > 0 {
		b, err := gojson.MarshalWithOption(samples, gojson.UnorderedMap())
		if err != nil {
			return nil, line, fmt.Errorf("encode samples: %w", err)
		}
		out = append(out, request{path: "/v1/samples", body: b, n: int64(len(samples))})
	}
	if len(lines) > 0 {
		q := url.Values{"format": {"combined"}, "source": {source}, "first_line": {strconv.FormatInt(line, 10)}}
		line += int64(len(lines))
		body := []byte(strings.Join(lines, "\n") + "\n")
		out = append(out, request{path: "/v1/logs?" + q.Encode(), body: body, n: int64(len(lines))})
	}
	return out, line, nil
}

func enqueue(ctx context.Context, reqs chan<- request, r request) error {
	select {
	case reqs <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// post sends one request and returns the collector's accepted and rejected
// counts, sending key (when not empty) as a bearer token. Transport errors,
// 429 (after its Retry-After) and 503 are retried (with retryFor > 0 also
// every other 5xx, for up to retryFor; else 5 tries).
func post(ctx context.Context, client *http.Client, key, u string, body []byte, retryFor time.Duration) (accepted, rejected int64, err error) {
	type answer struct {
		Accepted int64             `json:"accepted"`
		Rejected []json.RawMessage `json:"rejected"`
	}
	ans, err := backoff.Retry(ctx, func() (answer, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
		if err != nil {
			return answer{}, backoff.Permanent(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		if strings.Contains(u, "/v1/logs") {
			req.Header.Set("Content-Type", "text/plain")
		}
		resp, err := client.Do(req)
		if err != nil {
			return answer{}, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		var a answer
		switch {
		case resp.StatusCode == http.StatusTooManyRequests:
			// Rate limited: wait as long as the collector says.
			if secs, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && secs > 0 {
				return a, backoff.RetryAfter(secs)
			}
			return a, fmt.Errorf("collector answered %s: %s", resp.Status, b)
		case resp.StatusCode == http.StatusServiceUnavailable || (retryFor > 0 && resp.StatusCode >= 500):
			return a, fmt.Errorf("collector answered %s: %s", resp.Status, b)
		case resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusBadRequest:
			return a, backoff.Permanent(fmt.Errorf("collector answered %s: %s", resp.Status, b))
		}
		if err := json.Unmarshal(b, &a); err != nil {
			return a, backoff.Permanent(fmt.Errorf("collector answer: %w", err))
		}
		return a, nil
	}, retryOptions(retryFor)...)
	return ans.Accepted, int64(len(ans.Rejected)), err
}

// retryOptions is 5 tries with the default exponential backoff, or with
// retryFor > 0 as many tries as fit in retryFor, 100 ms to 2 s apart.
func retryOptions(retryFor time.Duration) []backoff.RetryOption {
	if retryFor <= 0 {
		return []backoff.RetryOption{backoff.WithMaxTries(5), backoff.WithBackOff(backoff.NewExponentialBackOff())}
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = 100*time.Millisecond, 2*time.Second
	return []backoff.RetryOption{backoff.WithMaxElapsedTime(retryFor), backoff.WithBackOff(b)}
}
