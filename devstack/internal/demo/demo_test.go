package demo_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamwatch/streamwatch/devstack/internal/demo"
)

func TestLineTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		line   string
		want   time.Time
		wantOK bool
	}{
		{
			name:   "combined",
			line:   `83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 203023 "-" "curl"`,
			want:   time.Date(2015, 5, 17, 10, 5, 3, 0, time.UTC),
			wantOK: true,
		},
		{
			name:   "offset",
			line:   `1.2.3.4 - - [17/May/2015:12:00:00 +0200] "GET / HTTP/1.1" 200 1 "-" "-"`,
			want:   time.Date(2015, 5, 17, 10, 0, 0, 0, time.UTC),
			wantOK: true,
		},
		{name: "no brackets", line: "garbage"},
		{name: "bad time", line: "x [yesterday] y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := demo.LineTime([]byte(tt.line))
			if ok != tt.wantOK || !got.Equal(tt.want) {
				t.Fatalf("LineTime = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestReplay(t *testing.T) {
	t.Parallel()
	start := time.Date(2015, 5, 17, 10, 5, 3, 0, time.UTC)
	var lines []string
	for i := range 2500 {
		ts := start.Add(time.Duration(i) * 2 * time.Minute).Format("02/Jan/2006:15:04:05 -0700")
		lines = append(lines, fmt.Sprintf(`10.0.0.%d - - [%s] "GET /%d HTTP/1.1" 200 10 "-" "test"`, i%250, ts, i))
	}
	lines[1500] = "not a log line"
	path := filepath.Join(t.TempDir(), "access.log")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	type call struct {
		firstLine, lines int
		source, format   string
	}
	var (
		mu    sync.Mutex
		calls []call
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/logs" || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		body, _ := io.ReadAll(r.Body)
		first, _ := strconv.Atoi(r.URL.Query().Get("first_line"))
		got := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
		mu.Lock()
		calls = append(calls, call{first, len(got), r.URL.Query().Get("source"), r.URL.Query().Get("format")})
		mu.Unlock()
		answer := map[string]any{"accepted": len(got), "rejected": []any{}}
		for i, l := range got {
			if l == "not a log line" {
				answer["accepted"] = len(got) - 1
				answer["rejected"] = []map[string]any{{"line": first + i, "error": "unparsable"}}
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(answer)
	}))
	defer srv.Close()

	c := &demo.Client{HTTP: srv.Client(), CollectorURL: srv.URL}
	got, err := c.Replay(t.Context(), path, 0)
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	wantCalls := []call{
		{1, 1000, "access.log", "combined"},
		{1001, 1000, "access.log", "combined"},
		{2001, 500, "access.log", "combined"},
	}
	if fmt.Sprint(calls) != fmt.Sprint(wantCalls) {
		t.Errorf("calls = %v, want %v", calls, wantCalls)
	}
	if got.Lines != 2500 || got.Accepted != 2499 {
		t.Errorf("lines %d accepted %d, want 2500 and 2499", got.Lines, got.Accepted)
	}
	if len(got.Rejected) != 1 || got.Rejected[0].Line != 1501 {
		t.Errorf("rejected = %v, want line 1501", got.Rejected)
	}
	last := start.Add(2499 * 2 * time.Minute)
	if want := time.Date(2015, 5, 17, 10, 0, 0, 0, time.UTC); !got.From.Equal(want) {
		t.Errorf("From = %v, want %v", got.From, want)
	}
	if want := last.Truncate(time.Hour).Add(time.Hour); !got.To.Equal(want) {
		t.Errorf("To = %v, want %v", got.To, want)
	}
}

func TestReplayStopsOnError(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "one.log")
	if err := os.WriteFile(path, []byte("a line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"code":"unavailable"}`, http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	c := &demo.Client{HTTP: srv.Client(), CollectorURL: srv.URL}
	if _, err := c.Replay(t.Context(), path, 10); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Replay = %v, want a 503 error", err)
	}
}

func TestWaitForTotal(t *testing.T) {
	t.Parallel()
	var polls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/api/v1/series" || q.Get("metric") != "requests" || q.Get("step") != "1h" || q.Get("from") != "1431856800000" {
			http.Error(w, "unexpected query "+r.URL.String(), http.StatusBadRequest)
			return
		}
		n := polls.Add(1) // 1, 2, 3...: the total grows until it reaches 30
		fmt.Fprintf(w, `{"metric":"requests","step":"1h","series":[{"labels":{},"points":[{"t":1431856800000,"value":%d},{"t":1431860400000,"value":%d}]}]}`, 10*min(n, 2), 10)
	}))
	defer srv.Close()
	c := &demo.Client{HTTP: srv.Client(), QueryURL: srv.URL}
	q := demo.SeriesQuery{
		Metric: "requests",
		From:   time.UnixMilli(1431856800000),
		To:     time.UnixMilli(1431864000000),
		Step:   "1h",
	}
	got, err := c.WaitForTotal(t.Context(), q, 30, time.Millisecond)
	if err != nil {
		t.Fatalf("WaitForTotal: %v", err)
	}
	if got.Total() != 30 || polls.Load() < 2 {
		t.Errorf("total %v after %d polls", got.Total(), polls.Load())
	}

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.WaitForTotal(ctx, q, 31, time.Millisecond); err == nil || !strings.Contains(err.Error(), "total 30, want 31") {
		t.Fatalf("WaitForTotal(31) = %v, want a timeout that names the totals", err)
	}
}

func TestWriteHourlyTable(t *testing.T) {
	t.Parallel()
	h := func(hour int) int64 { return time.Date(2015, 5, 17, hour, 0, 0, 0, time.UTC).UnixMilli() }
	requests := demo.SeriesResponse{Series: []demo.Series{{
		Labels: map[string]string{},
		Points: []demo.Point{{T: h(11), Value: 20}, {T: h(10), Value: 100}, {T: h(12), Value: 0}},
	}}}
	byClass := demo.SeriesResponse{Series: []demo.Series{
		{Labels: map[string]string{"status_class": "2xx"}, Points: []demo.Point{{T: h(10), Value: 90}, {T: h(11), Value: 15}}},
		{Labels: map[string]string{"status_class": "4xx"}, Points: []demo.Point{{T: h(10), Value: 7}, {T: h(11), Value: 5}}},
		{Labels: map[string]string{"status_class": "5xx"}, Points: []demo.Point{{T: h(10), Value: 3}}},
	}}
	var b strings.Builder
	if err := demo.WriteHourlyTable(&b, requests, byClass); err != nil {
		t.Fatal(err)
	}
	want := `hour (UTC)          requests      4xx      5xx
2015-05-17 10:00         100        7        3
2015-05-17 11:00          20        5        0
total                    120       12        3
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}
