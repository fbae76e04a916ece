package app

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/accesslog"
	"github.com/streamwatch/streamwatch/pkg/events"
)

// handleLogsRef is IngestLogsHandler.Handle as it was before the one-pass
// reading (a bufio.Scanner with lineSplitter, one string per line): the
// oracle of FuzzLogsMatchReference.
func handleLogsRef(ctx context.Context, h *IngestLogsHandler, cmd IngestLogs) (Result, error) {
	if err := cmd.validate(); err != nil {
		return Result{}, err
	}
	first := cmd.FirstLine
	if first == 0 {
		first = 1
	}
	receive := h.now()
	var (
		valid []events.Event
		res   Result
	)
	if cmd.Size > 0 {
		// Lines of the combined format are 100-300 bytes; this saves the
		// growing copies of a large slice of Events.
		valid = make([]events.Event, 0, min(cmd.Size/128+1, 1<<16))
	}
	reject := func(line int64, err error) {
		res.Rejected = append(res.Rejected, Rejection{Position: line, Err: err})
	}

	split := &lineSplitter{max: MaxLineBytes}
	sc := bufio.NewScanner(cmd.Body)
	sc.Buffer(make([]byte, 0, 16<<10), MaxLineBytes+(4<<10))
	sc.Split(split.split)
	nonBlank := 0
	for i := int64(0); sc.Scan(); i++ {
		lineNo := first + i
		if split.tooLong {
			nonBlank++
			reject(lineNo, fmt.Errorf("line longer than %d bytes", MaxLineBytes))
			continue
		}
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		nonBlank++
		rec, err := accesslog.ParseCombined(string(sc.Bytes()))
		if err != nil {
			reject(lineNo, err)
			continue
		}
		ev := rec.Event(cmd.Source, lineNo, receive)
		if ev.ID == "" {
			id, err := uuid.NewV7()
			if err != nil {
				return Result{}, fmt.Errorf("assign event id: %w", err)
			}
			ev.ID = id.String()
		}
		if err := ev.Validate(); err != nil {
			reject(lineNo, err)
			continue
		}
		if err := h.limits.admit(&ev, receive, cmd.Tenant); err != nil {
			reject(lineNo, err)
			continue
		}
		valid = append(valid, ev)
	}
	if err := sc.Err(); err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrBody, err)
	}
	if nonBlank == 0 {
		return Result{}, requestErrorf("no log lines")
	}

	if len(valid) > 0 {
		if err := publish(ctx, h.pub, valid); err != nil {
			return Result{}, err
		}
	}
	res.Accepted = len(valid)
	return res, nil
}

// lineSplitter is a bufio.SplitFunc state machine that yields lines without
// their "\n" or "\r\n" and turns a line longer than max into one empty token
// with tooLong set, discarding the rest of that line, so that one long line
// does not end the scan (bufio.ScanLines fails with bufio.ErrTooLong).
type lineSplitter struct {
	max        int
	tooLong    bool // the last token stands for a line longer than max
	discarding bool // skipping the rest of a long line
}

func (s *lineSplitter) split(data []byte, atEOF bool) (int, []byte, error) {
	s.tooLong = false
	if s.discarding {
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			s.discarding = false
			return i + 1, nil, nil
		}
		return len(data), nil, nil
	}
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return s.line(i+1, data[:i])
	}
	if len(data) > s.max+1 { // +1: a "\r" may still end the line
		s.tooLong, s.discarding = true, true
		return len(data), data[:0], nil
	}
	if atEOF && len(data) > 0 {
		return s.line(len(data), data)
	}
	return 0, nil, nil
}

func (s *lineSplitter) line(advance int, line []byte) (int, []byte, error) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if len(line) > s.max {
		s.tooLong = true
		return advance, line[:0], nil
	}
	return advance, line, nil
}

// FuzzLogsMatchReference is the differential test of the one-pass log
// reading: for any body, IngestLogs answers exactly as handleLogsRef (same
// request error, same events, same rejections with the same line numbers
// and messages), with and without a source, and with a tenant and
// event-time bounds.
func FuzzLogsMatchReference(f *testing.F) {
	line := `10.1.2.3 - - [22/Nov/2026:04:00:00 +0000] "GET /page/1 HTTP/1.1" 200 512 "-" "streamwatch-gen/1"`
	for _, s := range []string{
		line + "\n" + line + "\r\n\n  \t\n" + line,
		line + "\r\r\n\r\n" + "garbage\n" + `10.1.2.3 - - [22/Nov/2026:04:00:00 +0000] "GET / HTTP/1.1" abc 1` + "\n",
		strings.Repeat("x", MaxLineBytes) + "\n" + strings.Repeat("y", MaxLineBytes+1) + "\r\n" + strings.Repeat("z", MaxLineBytes) + "\r\n" + line,
		strings.Repeat("w", MaxLineBytes+5000) + "\n" + line + "\n",
		"", "\n\n", " ", "\v\n" + line, `::1 - - [01/Jan/1970:00:00:00 +0000] "GET / HTTP/1.1" 200 -`,
		`10.1.2.3 - - [22/Nov/2027:04:00:00 +0000] "GET /page/1 HTTP/1.1" 200 512`,
		"\xff\xfe" + line,
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	receive := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte, withSource bool) {
		cmd := IngestLogs{FirstLine: 7}
		if withSource {
			cmd.Source, cmd.Tenant = "t/logs", "t"
		}
		run := func(ref bool) (Result, []events.Event, error) {
			pub := &recorder{}
			h := &IngestLogsHandler{pub: pub, now: func() time.Time { return receive }, limits: Limits{MaxEventSkew: time.Hour, MaxEventAge: 24 * time.Hour}}
			c := cmd
			c.Body = bytes.NewReader(body)
			if ref {
				res, err := handleLogsRef(t.Context(), h, c)
				return res, pub.evs, err
			}
			c.Size = int64(len(body))
			res, err := h.Handle(t.Context(), c)
			return res, pub.evs, err
		}
		gotRes, gotEvs, gotErr := run(false)
		wantRes, wantEvs, wantErr := run(true)
		if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
			t.Fatalf("%q: error %v, want %v", body, gotErr, wantErr)
		}
		if gotRes.Accepted != wantRes.Accepted || len(gotRes.Rejected) != len(wantRes.Rejected) {
			t.Fatalf("%q: result %+v, want %+v", body, gotRes, wantRes)
		}
		for i, r := range gotRes.Rejected {
			if w := wantRes.Rejected[i]; r.Position != w.Position || r.ErrorMessage() != w.ErrorMessage() {
				t.Fatalf("%q: rejection %d is %d %q, want %d %q", body, i, r.Position, r.ErrorMessage(), w.Position, w.ErrorMessage())
			}
		}
		require.Len(t, gotEvs, len(wantEvs))
		for i := range gotEvs {
			g, w := gotEvs[i], wantEvs[i]
			if !withSource { // UUIDv7 ids differ by nature
				require.NotEmpty(t, g.ID)
				g.ID = w.ID
			}
			require.Equal(t, w, g, "%q: event %d", body, i)
		}
	})
}
