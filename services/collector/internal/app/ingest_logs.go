package app

import (
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
	// results recycles the result slices.
	results eventSlices
}

// Handle reads the whole body (one copy, whose substrings the lines and
// the events' strings are) and splits it into lines at "\n", dropping one
// trailing "\r". Line i of the body (0-based, blank
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
	body, err := readBody(cmd.Body, cmd.Size)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrBody, err)
	}
	// One copy of the body: the lines and the events' strings slice it.
	s := string(body)
	var (
		valid = h.results.get(len(s)/100 + 1) // lines of the combined format are 100-300 bytes
		res   Result
	)
	reject := func(line int64, err error) {
		res.Rejected = append(res.Rejected, Rejection{Position: line, Err: err})
	}
	nonBlank := 0
	for i, start := int64(0), 0; start < len(s); i++ {
		end, next := len(s), len(s)
		if j := strings.IndexByte(s[start:], '\n'); j >= 0 {
			end, next = start+j, start+j+1
		}
		line := strings.TrimSuffix(s[start:end], "\r")
		start = next
		lineNo := first + i
		if len(line) > MaxLineBytes {
			nonBlank++
			reject(lineNo, fmt.Errorf("line longer than %d bytes", MaxLineBytes))
			continue
		}
		if len(strings.TrimSpace(line)) == 0 {
			continue
		}
		nonBlank++
		rec, err := accesslog.ParseCombined(line)
		if err != nil {
			reject(lineNo, err)
			continue
		}
		valid = append(valid, rec.Event(cmd.Source, lineNo, receive))
		ev := &valid[len(valid)-1]
		if ev.ID == "" {
			id, err := uuid.NewV7()
			if err != nil {
				return Result{}, fmt.Errorf("assign event id: %w", err)
			}
			ev.ID = id.String()
		}
		err = ev.Validate()
		if err == nil {
			err = h.limits.admit(ev, receive, cmd.Tenant)
		}
		if err != nil {
			*ev = events.Event{}
			valid = valid[:len(valid)-1]
			reject(lineNo, err)
		}
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
	h.results.put(valid) // published: EventPublisher keeps nothing after a nil return
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
