package app

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/streamwatch/streamwatch/pkg/accesslog"
	"github.com/streamwatch/streamwatch/pkg/events"
)

// Log formats accepted by IngestLogs.
const (
	// FormatCombined is the Apache/Nginx combined log format; lines in the
	// common format (without referrer and user agent) are accepted too.
	FormatCombined = "combined"
)

// LogFormats lists the supported log formats, for error messages.
var LogFormats = []string{FormatCombined}

// Limits of IngestLogs.
const (
	// MaxLineBytes is the longest accepted log line in bytes (64 KiB),
	// without its line end. A longer line is rejected on its own.
	MaxLineBytes = 64 << 10
	// MaxSourceBytes is the longest source name in bytes, so that event ids
	// "source:line" fit in events.MaxIDLen.
	MaxSourceBytes = 100
	// MaxFirstLine is the largest first line number (10^15).
	MaxFirstLine = 1_000_000_000_000_000
)

// IngestLogs is a request to ingest access-log lines.
type IngestLogs struct {
	// Body holds the log lines, "\n" or "\r\n" terminated. The caller bounds
	// its size.
	Body io.Reader
	// Format is the log format; "" means FormatCombined.
	Format string
	// Source names the log (e.g. a file name): events get the id
	// "source:line", which makes replaying the same lines idempotent. ""
	// gives every event a fresh UUIDv7 instead.
	Source string
	// FirstLine is the line number of the body's first line in the source,
	// 1..MaxFirstLine; 0 means 1.
	FirstLine int64
	// Tenant is the API key's tenant: Source must be in it (see InTenant),
	// and lines without a Source get it as their events' source. Empty
	// allows any source.
	Tenant string
	// Size is the body's length when known (Content-Length), else 0; it
	// only sizes the result.
	Size int64
}

// IngestLogsHandler ingests access-log lines. Safe for concurrent use.
type IngestLogsHandler struct {
	pub    EventPublisher
	now    func() time.Time
	limits Limits
}

// Handle reads the body line by line. Line i of the body (0-based, blank
// lines included) is line FirstLine+i of the source; each non-blank line is
// parsed with accesslog.ParseCombined, turned into an http_request event
// with Record.Event(Source, FirstLine+i, now) (a UUIDv7 id when Source is
// empty), validated, and checked against the event-time bounds of Limits
// and the tenant. The valid events are published to Topic in line
// order; Handle returns after the broker acknowledged them.
//
// Rejections carry the 1-based source line number and the reason (a parse
// error naming the field, a validation error, or a line longer than
// MaxLineBytes). A Result with Accepted == 0 and rejections means nothing was
// valid and nothing was published.
//
// Errors: a *RequestError for an unsupported format, a source or first line
// out of range, or a body without non-blank lines ("no log lines"); an error
// wrapping ErrUnavailable when publishing failed; an error wrapping ErrBody
// and the read error (e.g. an *http.MaxBytesError).
func (h *IngestLogsHandler) Handle(ctx context.Context, cmd IngestLogs) (Result, error) {
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

func (cmd IngestLogs) validate() error {
	if cmd.Format != "" && cmd.Format != FormatCombined {
		return requestErrorf("format %q is not supported (supported: %s)", cmd.Format, strings.Join(LogFormats, ", "))
	}
	if cmd.FirstLine < 0 || cmd.FirstLine > MaxFirstLine {
		return requestErrorf("first_line %d is not in 1..%d", cmd.FirstLine, int64(MaxFirstLine))
	}
	if len(cmd.Source) > MaxSourceBytes {
		return requestErrorf("source is longer than %d bytes", MaxSourceBytes)
	}
	if !utf8.ValidString(cmd.Source) || strings.ContainsFunc(cmd.Source, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return requestErrorf("source %q contains invalid UTF-8 or control characters", cmd.Source)
	}
	if cmd.Source != "" && !InTenant(cmd.Source, cmd.Tenant) {
		return requestErrorf("source %q is outside the API key's tenant %q (allowed: %q or %q)", cmd.Source, cmd.Tenant, cmd.Tenant, cmd.Tenant+"/...")
	}
	return nil
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
