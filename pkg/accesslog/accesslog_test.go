package accesslog_test

import (
	"bufio"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/streamwatch/streamwatch/pkg/accesslog"
	"github.com/streamwatch/streamwatch/pkg/events"
)

// apacheLogs is the real 10,000-line sample (see testdata/README.md at the
// repository root).
const apacheLogs = "../../testdata/apache_logs"

const sample = `83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /presentations/logstash-monitorama-2013/images/kibana-search.png HTTP/1.1" 200 203023 "http://semicomplete.com/presentations/logstash-monitorama-2013/" "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/32.0.1700.77 Safari/537.36"`

func TestParseCombined(t *testing.T) {
	t.Parallel()
	ts := time.Date(2015, time.May, 17, 10, 5, 3, 0, time.UTC)
	tests := []struct {
		name string
		line string
		want accesslog.Record
	}{
		{
			name: "combined",
			line: sample,
			want: accesslog.Record{
				ClientIP: "83.149.9.216", Time: ts, Method: "GET",
				Path: "/presentations/logstash-monitorama-2013/images/kibana-search.png", Protocol: "HTTP/1.1",
				Status: 200, Bytes: 203023, Referrer: "http://semicomplete.com/presentations/logstash-monitorama-2013/",
				UserAgent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/32.0.1700.77 Safari/537.36",
			},
		},
		{
			name: "common format",
			line: `127.0.0.1 user-identifier frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326`,
			want: accesslog.Record{
				ClientIP: "127.0.0.1", Ident: "user-identifier", User: "frank",
				Time:   time.Date(2000, time.October, 10, 20, 55, 36, 0, time.UTC),
				Method: "GET", Path: "/apache_pb.gif", Protocol: "HTTP/1.0", Status: 200, Bytes: 2326,
			},
		},
		{
			name: "positive offset converted to UTC",
			line: `::1 - - [01/Jan/2020:00:30:00 +0130] "POST /a HTTP/2.0" 201 - "-" "-"`,
			want: accesslog.Record{
				ClientIP: "::1", Time: time.Date(2019, time.December, 31, 23, 0, 0, 0, time.UTC),
				Method: "POST", Path: "/a", Protocol: "HTTP/2.0", Status: 201,
			},
		},
		{
			name: "escaped quotes and backslashes",
			line: `1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET /q?x=\"a\" HTTP/1.1" 200 5 "-" "Agent \"quoted\" \\ \x16"`,
			want: accesslog.Record{
				ClientIP: "1.2.3.4", Time: ts, Method: "GET", Path: `/q?x="a"`, Protocol: "HTTP/1.1",
				Status: 200, Bytes: 5, UserAgent: `Agent "quoted" \ \x16`,
			},
		},
		{
			name: "unescaped quote inside a field is tolerated",
			line: `1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "Agent "x"y"`,
			want: accesslog.Record{
				ClientIP: "1.2.3.4", Time: ts, Method: "GET", Path: "/", Protocol: "HTTP/1.1",
				Status: 200, Bytes: 5, UserAgent: `Agent "x"y`,
			},
		},
		{
			name: "user agent cut off at the end of the line",
			line: `1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "Mozilla/5.0 (compatible; \"x\"; +http://www.google.com/bot.html`,
			want: accesslog.Record{
				ClientIP: "1.2.3.4", Time: ts, Method: "GET", Path: "/", Protocol: "HTTP/1.1",
				Status: 200, Bytes: 5, UserAgent: `Mozilla/5.0 (compatible; "x"; +http://www.google.com/bot.html`,
			},
		},
		{
			name: "HTTP/0.9 request line has no protocol",
			line: `1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET /old" 200 5`,
			want: accesslog.Record{ClientIP: "1.2.3.4", Time: ts, Method: "GET", Path: "/old", Status: 200, Bytes: 5},
		},
		{
			name: "space inside the path",
			line: `1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET /a b HTTP/1.1" 404 0`,
			want: accesslog.Record{ClientIP: "1.2.3.4", Time: ts, Method: "GET", Path: "/a b", Protocol: "HTTP/1.1", Status: 404},
		},
		{
			name: "CRLF, extra spaces and trailing fields",
			line: "  1.2.3.4  -  bob  [17/May/2015:10:05:03 +0000]  \"GET / HTTP/1.1\"  200  7  \"r\"  \"u\" \"10.0.0.1\" 0.003\r\n",
			want: accesslog.Record{
				ClientIP: "1.2.3.4", User: "bob", Time: ts, Method: "GET", Path: "/", Protocol: "HTTP/1.1",
				Status: 200, Bytes: 7, Referrer: "r", UserAgent: "u",
			},
		},
		{
			name: "leap day",
			line: `1.2.3.4 - - [29/Feb/2016:23:59:59 -1200] "GET / HTTP/1.1" 200 1`,
			want: accesslog.Record{
				ClientIP: "1.2.3.4", Time: time.Date(2016, time.March, 1, 11, 59, 59, 0, time.UTC),
				Method: "GET", Path: "/", Protocol: "HTTP/1.1", Status: 200, Bytes: 1,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := accesslog.ParseCombined(tt.line)
			if err != nil {
				t.Fatalf("ParseCombined: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseCombined:\n got %+v\nwant %+v", got, tt.want)
			}
			if got.Time.Location() != time.UTC {
				t.Fatalf("time location %v, want UTC", got.Time.Location())
			}
		})
	}
}

func TestParseCombinedErrors(t *testing.T) {
	t.Parallel()
	const pre = `1.2.3.4 - - [17/May/2015:10:05:03 +0000] `
	tests := []struct {
		name    string
		line    string
		field   string
		wantErr string
	}{
		{"empty", "   ", "line", "empty line"},
		{"only host", "1.2.3.4", "ident", "line ends before the ident field"},
		{"no timestamp", "1.2.3.4 - -", "time", "line ends before the timestamp field"},
		{"timestamp not bracketed", `1.2.3.4 - - 17/May/2015 "GET / HTTP/1.1" 200 1`, "time", `expected "[" to open the timestamp`},
		{"timestamp not closed", `1.2.3.4 - - [17/May/2015:10:05:03 +0000 "GET / HTTP/1.1" 200 1`, "time", `missing closing "]" in timestamp`},
		{"timestamp wrong form", `1.2.3.4 - - [2015-05-17T10:05:03Z] "GET / HTTP/1.1" 200 1`, "time", `timestamp "2015-05-17T10:05:03Z" not in [02/Jan/2006:15:04:05 -0700] form`},
		{"timestamp unknown month", `1.2.3.4 - - [17/Mai/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 1`, "time", `unknown month "Mai"`},
		{"timestamp day out of range", `1.2.3.4 - - [31/Apr/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 1`, "time", "day out of range"},
		{"timestamp hour out of range", `1.2.3.4 - - [30/Apr/2015:24:05:03 +0000] "GET / HTTP/1.1" 200 1`, "time", "hour out of range"},
		{"no request", pre, "request", "line ends before the request field"},
		{"request not quoted", pre + `GET / HTTP/1.1 200 1`, "request", `expected '"' to open the request field, got "GET / HTTP/1.1 2..."`},
		{"request not closed", pre + `"GET / HTTP/1.1 200 1`, "request", "missing closing quote in request field"},
		{"request dash", pre + `"-" 408 0 "-" "-"`, "request", `request "-" is not "METHOD PATH PROTOCOL"`},
		{"request garbage", pre + `"\x16\x03\x01\x00" 400 0 "-" "-"`, "request", `request "\\x16\\x03\\x01\\x00" is not "METHOD PATH PROTOCOL"`},
		{"request method only", pre + `"GET" 400 0`, "request", `request "GET" is not "METHOD PATH PROTOCOL"`},
		{"no status", pre + `"GET / HTTP/1.1"`, "status", "line ends before the status field"},
		{"status not a number", pre + `"GET / HTTP/1.1" abc 1`, "status", `status "abc" is not a number`},
		{"status out of range", pre + `"GET / HTTP/1.1" 700 1`, "status", "status 700 is not an HTTP status (100..599)"},
		{"no bytes", pre + `"GET / HTTP/1.1" 200`, "bytes", "line ends before the bytes field"},
		{"bytes not a number", pre + `"GET / HTTP/1.1" 200 12k`, "bytes", `bytes "12k" is not a number`},
		{"bytes negative", pre + `"GET / HTTP/1.1" 200 -5`, "bytes", `bytes "-5" is not a number`},
		{"bytes overflow", pre + `"GET / HTTP/1.1" 200 99999999999999999999`, "bytes", "out of range"},
		{"referrer not quoted", pre + `"GET / HTTP/1.1" 200 1 ref "ua"`, "referrer", `expected '"' to open the referrer field`},
		{"referrer not closed", pre + `"GET / HTTP/1.1" 200 1 "ref`, "referrer", "missing closing quote in referrer field"},
		{"no user agent", pre + `"GET / HTTP/1.1" 200 1 "ref"`, "user_agent", "line ends before the user agent field"},
		{"user agent not quoted", pre + `"GET / HTTP/1.1" 200 1 "ref" ua`, "user_agent", `expected '"' to open the user agent field, got "ua"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := accesslog.ParseCombined(tt.line)
			if err == nil {
				t.Fatalf("ParseCombined(%q) = %+v, want error", tt.line, got)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tt.wantErr)
			}
			if !errors.Is(err, accesslog.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			var pe *accesslog.ParseError
			if !errors.As(err, &pe) || pe.Field != tt.field {
				t.Fatalf("error %#v: want *ParseError with Field %q", err, tt.field)
			}
			if !reflect.DeepEqual(got, accesslog.Record{}) {
				t.Fatalf("record on error is %+v, want zero", got)
			}
		})
	}
}

// TestParseCombinedApacheLogs parses every line of the real sample.
func TestParseCombinedApacheLogs(t *testing.T) {
	t.Parallel()
	f, err := os.Open(apacheLogs)
	if err != nil {
		t.Fatalf("open sample: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	first, last := time.Time{}, time.Time{}
	for sc.Scan() {
		n++
		r, err := accesslog.ParseCombined(sc.Text())
		if err != nil {
			t.Fatalf("line %d: %v\n%s", n, err, sc.Text())
		}
		if ev := r.Event("apache_logs", int64(n), time.Now()); ev.Validate() != nil {
			t.Fatalf("line %d: event invalid: %v", n, ev.Validate())
		}
		if first.IsZero() {
			first = r.Time
		}
		last = r.Time
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 10000 {
		t.Fatalf("parsed %d lines, want 10000", n)
	}
	if want := time.Date(2015, time.May, 17, 10, 5, 3, 0, time.UTC); !first.Equal(want) {
		t.Fatalf("first time %v, want %v", first, want)
	}
	if last.Before(first) {
		t.Fatalf("last time %v before first %v", last, first)
	}
}

func TestRecordEvent(t *testing.T) {
	t.Parallel()
	r, err := accesslog.ParseCombined(sample)
	if err != nil {
		t.Fatal(err)
	}
	receive := time.UnixMilli(1_700_000_000_123)
	tests := []struct {
		name   string
		source string
		line   int64
		wantID string
	}{
		{"with source the id is source:line", "apache_logs", 42, "apache_logs:42"},
		{"without source the id is left empty", "", 42, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := events.Event{
				V: events.SchemaVersion, ID: tt.wantID, Type: events.TypeHTTPRequest,
				Time: 1431857103000, ReceiveTime: 1_700_000_000_123, Key: "83.149.9.216", Source: tt.source,
				Status: 200, ClientIP: "83.149.9.216", Method: "GET", Path: r.Path, Protocol: "HTTP/1.1",
				Bytes: 203023, Referrer: r.Referrer, UserAgent: r.UserAgent,
			}
			got := r.Event(tt.source, tt.line, receive)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Event:\n got %+v\nwant %+v", got, want)
			}
			if tt.wantID != "" {
				if err := got.Validate(); err != nil {
					t.Fatalf("Validate: %v", err)
				}
			}
		})
	}
}

func TestAppendCombinedRoundTrip(t *testing.T) {
	t.Parallel()
	r, err := accesslog.ParseCombined(`1.2.3.4 id u [17/May/2015:10:05:03 -0230] "GET /q?x=\"a\"\\ HTTP/1.1" 200 - "-" "A \"b\" \x16"`)
	if err != nil {
		t.Fatal(err)
	}
	line := r.String()
	want := `1.2.3.4 id u [17/May/2015:12:35:03 +0000] "GET /q?x=\"a\"\\ HTTP/1.1" 200 0 "-" "A \"b\" \\x16"`
	if line != want {
		t.Fatalf("String:\n got %s\nwant %s", line, want)
	}
	back, err := accesslog.ParseCombined(line)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, r) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", back, r)
	}
}

// FuzzParseCombined checks that ParseCombined never panics and returns
// either an error with a zero record or a record that satisfies every
// documented guarantee and survives a round trip through AppendCombined.
func FuzzParseCombined(f *testing.F) {
	for _, s := range []string{
		sample,
		`127.0.0.1 user-identifier frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326`,
		`1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET /q?x=\"a\" HTTP/1.1" 200 5 "-" "Agent \"q\" \\ \x16"`,
		`1.2.3.4 - - [17/May/2015:10:05:03 +0000] "-" 408 0 "-" "-"`,
		`1.2.3.4 - - [29/Feb/2016:23:59:59 -1200] "GET /old" 200 -`,
		`1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "Agent "x"y" extra`,
		"1.2.3.4 - - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1\" 200 5 \"r\r\" \"\\",
		`a b c [] "" 1 2 "" ""`,
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r, err := accesslog.ParseCombined(line)
		if err != nil {
			if !errors.Is(err, accesslog.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if !reflect.DeepEqual(r, accesslog.Record{}) {
				t.Fatalf("record on error is %+v, want zero", r)
			}
			return
		}
		switch {
		case r.ClientIP == "":
			t.Fatal("empty ClientIP")
		case r.Method == "" || strings.ContainsAny(r.Method, " \"\\"):
			t.Fatalf("bad Method %q", r.Method)
		case r.Path == "":
			t.Fatal("empty Path")
		case r.Status < 100 || r.Status > 599:
			t.Fatalf("Status %d", r.Status)
		case r.Bytes < 0:
			t.Fatalf("Bytes %d", r.Bytes)
		case r.Time.IsZero() || r.Time.Location() != time.UTC:
			t.Fatalf("Time %v", r.Time)
		}
		back, err := accesslog.ParseCombined(r.String())
		if err != nil {
			t.Fatalf("reparse of %q: %v", r.String(), err)
		}
		if !reflect.DeepEqual(back, r) {
			t.Fatalf("round trip of %q:\n got %+v\nwant %+v", line, back, r)
		}
	})
}

// FuzzTimestamp checks the hand-written timestamp parser against time.Parse:
// whatever it accepts, time.Parse accepts with the same instant.
func FuzzTimestamp(f *testing.F) {
	for _, s := range []string{"17/May/2015:10:05:03 +0000", "29/Feb/2016:23:59:59 -1200", "31/Dec/9999:23:59:59 +2359", "00/Jan/0000:00:00:00 -0000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ts string) {
		r, err := accesslog.ParseCombined(`1.2.3.4 - - [` + ts + `] "GET / HTTP/1.1" 200 1`)
		if err != nil {
			return
		}
		want, perr := time.Parse(accesslog.TimeLayout, ts)
		if perr != nil {
			t.Fatalf("ParseCombined accepted %q, time.Parse: %v", ts, perr)
		}
		if !r.Time.Equal(want) {
			t.Fatalf("%q: got %v, time.Parse %v", ts, r.Time, want)
		}
	})
}

func BenchmarkParseCombined(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(sample)))
	for b.Loop() {
		if _, err := accesslog.ParseCombined(sample); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseCombinedApacheLogs parses the whole 10,000-line sample per
// iteration; ns/op / 10000 is the cost per line.
func BenchmarkParseCombinedApacheLogs(b *testing.B) {
	data, err := os.ReadFile(apacheLogs)
	if err != nil {
		b.Skipf("sample not available: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		for _, l := range lines {
			if _, err := accesslog.ParseCombined(l); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkTimeParse is the baseline the hand-written timestamp parser
// replaces.
func BenchmarkTimeParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := time.Parse(accesslog.TimeLayout, "17/May/2015:10:05:03 +0000"); err != nil {
			b.Fatal(err)
		}
	}
}
