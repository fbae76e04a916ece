package app_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/events"
	"github.com/streamwatch/streamwatch/services/collector/internal/app"
)

type fakePublisher struct {
	mu     sync.Mutex
	err    error
	events []events.Event
}

func (f *fakePublisher) PublishEvents(_ context.Context, _ string, evs []events.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.events = append(f.events, evs...)
	return nil
}

var clock = func() time.Time { return time.UnixMilli(1_800_000_000_000) }

// logLine returns a valid combined-format line of exactly n bytes (n >= 80),
// padded in the user agent.
func logLine(n int) string {
	const head = `10.0.0.1 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 1 "-" "`
	return head + strings.Repeat("a", n-len(head)-1) + `"`
}

// chunkReader returns at most n bytes per Read, like a slow connection.
type chunkReader struct {
	r io.Reader
	n int
}

func (c chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

func TestIngestLogsLineLengths(t *testing.T) {
	t.Parallel()
	short := logLine(100)
	tooLong := "line longer than 65536 bytes"
	uaTooLong := `field "user_agent": longer than 2048 bytes`
	tests := []struct {
		name     string
		body     string
		accepted int
		rejected map[int64]string // line -> error substring
	}{
		{
			name:     "exactly the limit is read (and rejected by validation)",
			body:     short + "\n" + logLine(app.MaxLineBytes) + "\n" + short,
			accepted: 2,
			rejected: map[int64]string{2: uaTooLong},
		},
		{
			name:     "the limit plus CR is not too long",
			body:     short + "\r\n" + logLine(app.MaxLineBytes) + "\r\n" + short + "\r\n",
			accepted: 2,
			rejected: map[int64]string{2: uaTooLong},
		},
		{
			name:     "one byte over the limit",
			body:     short + "\n" + logLine(app.MaxLineBytes+1) + "\n" + short,
			accepted: 2,
			rejected: map[int64]string{2: tooLong},
		},
		{
			name:     "long line at the end without newline",
			body:     short + "\n" + short + "\n" + logLine(3*app.MaxLineBytes),
			accepted: 2,
			rejected: map[int64]string{3: tooLong},
		},
		{
			name:     "consecutive long lines",
			body:     logLine(200_000) + "\n" + logLine(70_000) + "\n" + short + "\n" + logLine(app.MaxLineBytes+2) + "\n" + short,
			accepted: 2,
			rejected: map[int64]string{1: tooLong, 2: tooLong, 4: tooLong},
		},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1 << 20, 1500} {
			t.Run(fmt.Sprintf("%s/read %d bytes", tt.name, chunk), func(t *testing.T) {
				t.Parallel()
				pub := &fakePublisher{}
				res, err := app.New(pub, clock, app.Limits{}).IngestLogs.Handle(context.Background(), app.IngestLogs{
					Body:   chunkReader{r: strings.NewReader(tt.body), n: chunk},
					Source: "s",
				})
				require.NoError(t, err)
				require.Equal(t, tt.accepted, res.Accepted)
				require.Len(t, pub.events, tt.accepted)
				require.Len(t, res.Rejected, len(tt.rejected))
				for _, r := range res.Rejected {
					require.Contains(t, tt.rejected, r.Position)
					require.Contains(t, r.ErrorMessage(), tt.rejected[r.Position])
				}
			})
		}
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	readErr := errors.New("connection reset")
	pubErr := errors.New("broker down")
	tests := []struct {
		name    string
		pubErr  error
		run     func(app.Application) error
		wantIs  []error
		wantReq string // RequestError reason
	}{
		{
			name: "events body read error",
			run: func(a app.Application) error {
				_, err := a.IngestEvents.Handle(context.Background(), app.IngestEvents{Body: iotest.ErrReader(readErr)})
				return err
			},
			wantIs: []error{app.ErrBody, readErr},
		},
		{
			name: "logs body read error",
			run: func(a app.Application) error {
				_, err := a.IngestLogs.Handle(context.Background(), app.IngestLogs{Body: io.MultiReader(strings.NewReader(logLine(100)+"\n"), iotest.ErrReader(readErr))})
				return err
			},
			wantIs: []error{app.ErrBody, readErr},
		},
		{
			name:   "events publish error",
			pubErr: pubErr,
			run: func(a app.Application) error {
				_, err := a.IngestEvents.Handle(context.Background(), app.IngestEvents{Body: strings.NewReader(`{"type":"click","event_time":1,"user_id":"u"}`)})
				return err
			},
			wantIs: []error{app.ErrUnavailable, pubErr},
		},
		{
			name:   "logs publish error",
			pubErr: pubErr,
			run: func(a app.Application) error {
				_, err := a.IngestLogs.Handle(context.Background(), app.IngestLogs{Body: strings.NewReader(logLine(100))})
				return err
			},
			wantIs: []error{app.ErrUnavailable, pubErr},
		},
		{
			name: "source with a control character",
			run: func(a app.Application) error {
				_, err := a.IngestLogs.Handle(context.Background(), app.IngestLogs{Body: strings.NewReader(logLine(100)), Source: "a\nb"})
				return err
			},
			wantReq: `source "a\nb" contains invalid UTF-8 or control characters`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.run(app.New(&fakePublisher{err: tt.pubErr}, clock, app.Limits{}))
			require.Error(t, err)
			for _, target := range tt.wantIs {
				require.ErrorIs(t, err, target)
			}
			var reqErr *app.RequestError
			if tt.wantReq != "" {
				require.ErrorAs(t, err, &reqErr)
				require.Equal(t, tt.wantReq, reqErr.Reason)
			} else {
				require.NotErrorAs(t, err, &reqErr)
			}
		})
	}
}

// TestIngestLogsKeepsOrder checks that events are published in line order
// with the receive time of the request.
func TestIngestLogsKeepsOrder(t *testing.T) {
	t.Parallel()
	pub := &fakePublisher{}
	var body strings.Builder
	for range 1000 {
		body.WriteString(logLine(120) + "\n")
	}
	res, err := app.New(pub, clock, app.Limits{}).IngestLogs.Handle(context.Background(), app.IngestLogs{Body: strings.NewReader(body.String()), Source: "f", FirstLine: 7})
	require.NoError(t, err)
	require.Equal(t, 1000, res.Accepted)
	for i, ev := range pub.events {
		require.Equal(t, "f:"+strconv.Itoa(7+i), ev.ID)
		require.Equal(t, clock().UnixMilli(), ev.ReceiveTime)
		require.Equal(t, "f", ev.Source)
	}
}
