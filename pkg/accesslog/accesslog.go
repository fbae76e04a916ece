// Package accesslog parses web-server access logs in the Apache/Nginx
// "combined" log format (and its prefix, the "common" format) and turns each
// line into an http_request event.
//
// The parser is a hand-written single-pass scanner: no regular expressions,
// and no allocation for a well-formed line without escape sequences (the
// strings of a Record share memory with the line). It is safe for concurrent
// use.
package accesslog

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/streamwatch/streamwatch/pkg/events"
)

// TimeLayout is the layout of the timestamp between the square brackets of a
// combined-format line, in time.Parse notation.
const TimeLayout = "02/Jan/2006:15:04:05 -0700"

// ErrMalformed is wrapped by every error ParseCombined returns, so callers
// can tell a bad line (errors.Is(err, ErrMalformed)) from other failures.
var ErrMalformed = errors.New("malformed access log line")

// ParseError describes why a line is not in combined (or common) format.
//
// Error returns Reason, which names the field and quotes the offending text
// (clipped to 64 bytes), e.g. `status "abc" is not a number`.
type ParseError struct {
	// Field is the field that failed: "line", "client_ip", "ident", "user",
	// "time", "request", "status", "bytes", "referrer" or "user_agent".
	Field string
	// Reason is the human-readable problem; it names the field.
	Reason string
}

// Error returns the reason, which names the field.
func (e *ParseError) Error() string { return e.Reason }

// Unwrap makes errors.Is(err, ErrMalformed) true.
func (e *ParseError) Unwrap() error { return ErrMalformed }

// Record is one parsed access-log line.
//
// The "-" placeholder of the format becomes the zero value: "" for Ident,
// User and Referrer, 0 for Bytes. Strings other than those containing escape
// sequences share memory with the parsed line.
type Record struct {
	// ClientIP is the remote host (%h). It is an IP address unless the server
	// resolved host names; ParseCombined does not check which (Event
	// validation does).
	ClientIP string
	// Ident is the RFC 1413 identity (%l), "" for "-".
	Ident string
	// User is the authenticated user (%u), "" for "-".
	User string
	// Time is when the request was received, in UTC (the line's own offset
	// has been applied), with second precision.
	Time time.Time
	// Method is the request method, e.g. "GET"; never empty.
	Method string
	// Path is the request target as logged, e.g. "/index.html?q=1"; never
	// empty. It may contain spaces.
	Path string
	// Protocol is e.g. "HTTP/1.1"; "" for an HTTP/0.9 request line
	// ("GET /path").
	Protocol string
	// Status is the final HTTP status code, 100..599.
	Status int
	// Bytes is the response size in bytes, excluding headers; 0 for "-".
	Bytes int64
	// Referrer is the Referer header, "" for "-" or in common format.
	Referrer string
	// UserAgent is the User-Agent header, "" for "-" or in common format.
	UserAgent string
}

// ParseCombined parses one line in combined log format:
//
//	host ident user [02/Jan/2006:15:04:05 -0700] "METHOD PATH PROTO" status bytes "referrer" "user agent"
//
// The common format (the same line without referrer and user agent) is
// accepted too. Fields are separated by one or more spaces; leading and
// trailing white space (including the "\r" of CRLF line ends) is ignored, and
// so is anything after the user agent (extra fields some servers append).
//
// Quoted fields: `\"` and `\\` are unescaped; other backslash sequences that
// Apache and Nginx write for control and non-ASCII bytes (`\x16`, `\n`) are
// kept verbatim, so the fields stay valid text. A quoted field ends at the
// first unescaped `"` followed by a space or the end of the line, which also
// tolerates the unescaped quotes of old servers. A user agent without its
// closing quote runs to the end of the line: writers truncate long lines
// there (line 8899 of the apache_logs sample ends inside the user agent), and
// as the last field nothing after it is lost.
//
// The request field must be "METHOD PATH PROTOCOL" or "METHOD PATH"
// (HTTP/0.9); METHOD is an RFC 9110 token. Anything else — "-" for a
// connection that sent no request, or garbage such as a TLS handshake sent to
// a plain-HTTP port — is rejected with an error quoting the field, because an
// http_request event requires a method. The status must be a number in
// 100..599 and bytes a non-negative number or "-".
//
// On success the error is nil and the Record is complete (see Record). On
// failure the Record is zero and the error is a *ParseError wrapping
// ErrMalformed that names the field and the problem.
func ParseCombined(line string) (Record, error) {
	var r Record
	s := trimSpace(line)
	if s == "" {
		return Record{}, perr("line", "empty line")
	}
	var tok string
	var ok bool

	if tok, s, ok = nextToken(s); !ok {
		return Record{}, endsBefore("ident", "ident")
	}
	r.ClientIP = tok
	if tok, s, ok = nextToken(s); !ok {
		return Record{}, endsBefore("user", "user")
	}
	r.Ident = dash(tok)
	if tok, s, ok = nextToken(s); !ok {
		return Record{}, endsBefore("time", "timestamp")
	}
	r.User = dash(tok)

	// [timestamp]
	if s[0] != '[' {
		return Record{}, perr("time", fmt.Sprintf(`expected "[" to open the timestamp, got %q`, clip(s, 16)))
	}
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return Record{}, perr("time", `missing closing "]" in timestamp`)
	}
	t, err := parseTime(s[1:end])
	if err != nil {
		return Record{}, err
	}
	r.Time = t
	s = s[end+1:]
	if s, ok = skipSep(s); !ok {
		return Record{}, endsBefore("request", "request")
	}

	// "request"
	req, rest, err := quoted(s, "request")
	if err != nil {
		return Record{}, err
	}
	if r.Method, r.Path, r.Protocol, err = splitRequest(req); err != nil {
		return Record{}, err
	}
	if s, ok = skipSep(rest); !ok {
		return Record{}, endsBefore("status", "status")
	}

	// status bytes
	tok, s, _ = nextToken(s)
	if r.Status, err = parseStatus(tok); err != nil {
		return Record{}, err
	}
	if s == "" {
		return Record{}, endsBefore("bytes", "bytes")
	}
	tok, s, _ = nextToken(s)
	if r.Bytes, err = parseBytes(tok); err != nil {
		return Record{}, err
	}
	if s == "" {
		return r, nil // common log format
	}

	// "referrer" "user agent"
	ref, rest, err := quoted(s, "referrer")
	if err != nil {
		return Record{}, err
	}
	r.Referrer = dash(ref)
	if s, ok = skipSep(rest); !ok {
		return Record{}, endsBefore("user_agent", "user agent")
	}
	ua, _, err := quoted(s, "user agent")
	if err != nil {
		if s[0] != '"' {
			return Record{}, err
		}
		// Truncated line: the user agent runs to the end of the line.
		ua = s[1:]
		if strings.IndexByte(ua, '\\') >= 0 {
			ua = unescape(ua)
		}
	}
	r.UserAgent = dash(ua)
	return r, nil
}

// Event returns the record as an http_request event (schema
// events.SchemaVersion) without validating it.
//
// source names where the line came from (e.g. a file name) and line is the
// line's 1-based position in that source. When source is not empty the event
// id is source + ":" + line, so replaying the same source yields the same
// ids and consumers deduplicate the replay, while identical lines at
// different positions stay distinct events. When source is empty the id is
// empty and the caller assigns one (the collector assigns a UUIDv7).
//
// Time is r.Time in milliseconds since the epoch and ReceiveTime is receive
// in milliseconds; Key is the client IP (the partition key). Ident and User
// have no field in schema v1 and are dropped. Call Validate on the result:
// it rejects, for example, a ClientIP that is a host name or an id longer
// than events.MaxIDLen.
func (r Record) Event(source string, line int64, receive time.Time) events.Event {
	var id string
	if source != "" {
		id = source + ":" + strconv.FormatInt(line, 10)
	}
	return events.Event{
		V:           events.SchemaVersion,
		ID:          id,
		Type:        events.TypeHTTPRequest,
		Time:        r.Time.UnixMilli(),
		ReceiveTime: receive.UnixMilli(),
		Key:         r.ClientIP,
		Source:      source,
		Status:      r.Status,
		ClientIP:    r.ClientIP,
		Method:      r.Method,
		Path:        r.Path,
		Protocol:    r.Protocol,
		Bytes:       r.Bytes,
		Referrer:    r.Referrer,
		UserAgent:   r.UserAgent,
	}
}

// AppendCombined appends r to dst as one combined-format line without a
// trailing newline and returns the extended buffer. Empty Ident, User,
// Referrer and UserAgent are written as "-", the time in UTC ("+0000"), and
// `"` and `\` inside quoted fields are escaped, so that ParseCombined of the
// output returns r again for every r that ParseCombined produced.
func (r Record) AppendCombined(dst []byte) []byte {
	dst = append(dst, orDash(r.ClientIP)...)
	dst = append(dst, ' ')
	dst = append(dst, orDash(r.Ident)...)
	dst = append(dst, ' ')
	dst = append(dst, orDash(r.User)...)
	dst = append(dst, " ["...)
	dst = r.Time.UTC().AppendFormat(dst, TimeLayout)
	dst = append(dst, "] \""...)
	dst = appendEscaped(dst, r.Method)
	dst = append(dst, ' ')
	dst = appendEscaped(dst, r.Path)
	if r.Protocol != "" {
		dst = append(dst, ' ')
		dst = appendEscaped(dst, r.Protocol)
	}
	dst = append(dst, "\" "...)
	dst = strconv.AppendInt(dst, int64(r.Status), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, r.Bytes, 10)
	dst = append(dst, " \""...)
	dst = appendEscaped(dst, orDash(r.Referrer))
	dst = append(dst, "\" \""...)
	dst = appendEscaped(dst, orDash(r.UserAgent))
	return append(dst, '"')
}

// String returns the record as a combined-format line (see AppendCombined).
func (r Record) String() string { return string(r.AppendCombined(nil)) }

func perr(field, reason string) error { return &ParseError{Field: field, Reason: reason} }

// endsBefore reports a line that stops before the field (id for
// ParseError.Field, name for the message).
func endsBefore(id, name string) error {
	return perr(id, "line ends before the "+name+" field")
}

// clip returns s cut to at most n bytes, for quoting input in errors.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func dash(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func trimSpace(s string) string {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

// nextToken splits s (which starts with a non-space byte) at the next run of
// spaces. ok is false when nothing follows the token.
func nextToken(s string) (tok, rest string, ok bool) {
	i := strings.IndexByte(s, ' ')
	if i < 0 {
		return s, "", false
	}
	rest, ok = skipSep(s[i:])
	return s[:i], rest, ok
}

// skipSep requires at least one space at the start of s and skips the run;
// ok is false when there is no space or nothing after it.
func skipSep(s string) (string, bool) {
	if s == "" || s[0] != ' ' {
		return s, false
	}
	for len(s) > 0 && s[0] == ' ' {
		s = s[1:]
	}
	return s, s != ""
}

// quoted reads a double-quoted field at the start of s. It returns the
// unescaped content and what follows the closing quote: the first `"` that
// is not escaped by a backslash and is followed by a space or the end of s.
func quoted(s, field string) (content, rest string, err error) {
	if s == "" || s[0] != '"' {
		return "", "", perr(fieldID(field), fmt.Sprintf("expected '\"' to open the %s field, got %q", field, clip(s, 16)))
	}
	escaped := false
	for i := 1; i < len(s); {
		j := strings.IndexByte(s[i:], '"')
		if j < 0 {
			break
		}
		j += i
		if b := strings.IndexByte(s[i:j], '\\'); b >= 0 {
			escaped = true
			k := i + b
			for k < j { // a backslash escapes the byte after it
				if s[k] == '\\' {
					k += 2
				} else {
					k++
				}
			}
			if k > j { // the quote at j is escaped
				i = j + 1
				continue
			}
		}
		if j+1 == len(s) || s[j+1] == ' ' {
			content = s[1:j]
			if escaped {
				content = unescape(content)
			}
			return content, s[j+1:], nil
		}
		i = j + 1
	}
	return "", "", perr(fieldID(field), "missing closing quote in "+field+" field")
}

// fieldID turns a field name of a message into its ParseError.Field id.
func fieldID(name string) string { return strings.ReplaceAll(name, " ", "_") }

// unescape replaces `\"` with `"` and `\\` with `\`; other sequences stay.
func unescape(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
			i++
			c = s[i]
		}
		b.WriteByte(c)
	}
	return b.String()
}

func appendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, s[i])
	}
	return dst
}

// splitRequest splits "METHOD PATH PROTOCOL" (or "METHOD PATH"). PATH is
// everything between the first space and the last one when the last word
// starts with "HTTP/"; otherwise PATH is everything after the first space.
func splitRequest(req string) (method, path, proto string, err error) {
	sp := strings.IndexByte(req, ' ')
	if sp <= 0 || sp == len(req)-1 || !isToken(req[:sp]) {
		return "", "", "", perr("request", fmt.Sprintf(`request %q is not "METHOD PATH PROTOCOL"`, clip(req, 64)))
	}
	method, path = req[:sp], req[sp+1:]
	if last := strings.LastIndexByte(path, ' '); last > 0 && strings.HasPrefix(path[last+1:], "HTTP/") {
		path, proto = path[:last], path[last+1:]
	}
	return method, path, proto, nil
}

// isToken reports whether s is a non-empty RFC 9110 token (tchar*).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func parseStatus(tok string) (int, error) {
	if len(tok) == 0 || len(tok) > 3 || !allDigits(tok) {
		return 0, perr("status", fmt.Sprintf("status %q is not a number", clip(tok, 16)))
	}
	n := 0
	for i := 0; i < len(tok); i++ {
		n = n*10 + int(tok[i]-'0')
	}
	if n < 100 || n > 599 {
		return 0, perr("status", fmt.Sprintf("status %d is not an HTTP status (100..599)", n))
	}
	return n, nil
}

func parseBytes(tok string) (int64, error) {
	if tok == "-" {
		return 0, nil
	}
	if !allDigits(tok) {
		return 0, perr("bytes", fmt.Sprintf("bytes %q is not a number", clip(tok, 24)))
	}
	n, err := strconv.ParseInt(tok, 10, 64)
	if err != nil {
		return 0, perr("bytes", fmt.Sprintf("bytes %q is out of range", clip(tok, 24)))
	}
	return n, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// months maps the English three-letter month abbreviations, exact case.
var months = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// parseTime parses "02/Jan/2006:15:04:05 -0700" by hand (time.Parse is
// several times slower) and returns the instant in UTC. It accepts a subset
// of what time.Parse(TimeLayout, s) accepts (month names in exact case) and
// returns the same instant for it.
func parseTime(s string) (time.Time, error) {
	bad := func(why string) (time.Time, error) {
		msg := fmt.Sprintf("timestamp %q not in [%s] form", clip(s, 40), TimeLayout)
		if why != "" {
			msg = fmt.Sprintf("timestamp %q: %s", clip(s, 40), why)
		}
		return time.Time{}, perr("time", msg)
	}
	// 0         1         2
	// 01234567890123456789012345
	// 17/May/2015:10:05:03 +0000
	if len(s) != 26 || s[2] != '/' || s[6] != '/' || s[11] != ':' || s[14] != ':' || s[17] != ':' ||
		s[20] != ' ' || (s[21] != '+' && s[21] != '-') {
		return bad("")
	}
	num := func(i, n int) int {
		v := 0
		for j := i; j < i+n; j++ {
			c := s[j]
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	day, year, hour, minute, sec := num(0, 2), num(7, 4), num(12, 2), num(15, 2), num(18, 2)
	zh, zm := num(22, 2), num(24, 2)
	if day < 0 || year < 0 || hour < 0 || minute < 0 || sec < 0 || zh < 0 || zm < 0 {
		return bad("")
	}
	month := time.Month(0)
	for i, m := range months {
		if s[3:6] == m {
			month = time.Month(i + 1)
			break
		}
	}
	switch {
	case month == 0:
		return bad(fmt.Sprintf("unknown month %q", s[3:6]))
	case day < 1 || day > daysIn(month, year):
		return bad("day out of range")
	case hour > 23:
		return bad("hour out of range")
	case minute > 59:
		return bad("minute out of range")
	case sec > 59:
		return bad("second out of range")
	case zh > 23 || zm > 59:
		return bad("zone offset out of range")
	}
	off := time.Duration(zh)*time.Hour + time.Duration(zm)*time.Minute
	if s[21] == '-' {
		off = -off
	}
	return time.Date(year, month, day, hour, minute, sec, 0, time.UTC).Add(-off), nil
}

func daysIn(m time.Month, year int) int {
	switch m {
	case time.February:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}
