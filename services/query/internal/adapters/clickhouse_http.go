package adapters

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamwatch/streamwatch/pkg/telemetry"
)

// ClickHouseHTTP sends inserts to ClickHouse's HTTP interface with the
// data in ClickHouse's Native format (columnar, the format the native
// protocol carries, without the protocol's BlockInfo header): the cheapest
// input for the server to parse and for the client to build, since a
// column is written as one contiguous run of values. It exists because the
// native-protocol clients cost as much CPU as the server (clickhouse-go) or
// cannot talk to ClickHouse 18.16 (ch-go fails with UNKNOWN_SETTING); the
// HTTP interface has no version handshake. Queries keep using clickhouse-go.
// Safe for concurrent use.
type ClickHouseHTTP struct {
	client         *http.Client
	endpoint       string // http://host:port/
	user, password string
	tracer         trace.Tracer // nil: tracing was off when created
}

// NewClickHouseHTTP returns a client of the HTTP interface at addr
// (host:port, e.g. 127.0.0.1:8123) authenticating as user with password
// (HTTP basic auth). It does not connect; the first insert does. It fails
// when addr is not host:port. When tracing is on (telemetry.TracingEnabled)
// every insert is a client span as TraceClickHouse makes them: named
// "clickhouse INSERT INTO db.table", a child of the caller's span, linked
// to telemetry.Links(ctx), with the statement and the row count.
func NewClickHouseHTTP(addr, user, password string) (*ClickHouseHTTP, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return nil, fmt.Errorf("clickhouse http address %q: want host:port", addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return nil, fmt.Errorf("clickhouse http address %q: port: %w", addr, err)
	}
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 8,
		// Below the server's keep_alive_timeout (3 s by default on 18.16):
		// a POST on a connection the server is closing fails instead of
		// being retried by the transport.
		IdleConnTimeout:    2 * time.Second,
		DisableCompression: true,
		WriteBufferSize:    256 << 10,
	}
	c := &ClickHouseHTTP{
		client:   &http.Client{Transport: transport},
		endpoint: (&url.URL{Scheme: "http", Host: addr, Path: "/"}).String(),
		user:     user, password: password,
	}
	if telemetry.TracingEnabled() {
		c.tracer = otel.Tracer(tracerName)
	}
	return c, nil
}

// Ping asks the server's /ping endpoint, which answers "Ok.".
func (c *ClickHouseHTTP) Ping(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint+"ping", nil)
	if err != nil {
		return fmt.Errorf("ping clickhouse http %s: %w", c.endpoint, err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("ping clickhouse http: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ping clickhouse http %s: %w", c.endpoint, newHTTPError(resp.StatusCode, body))
	}
	return nil
}

// Close closes idle connections.
func (c *ClickHouseHTTP) Close() {
	c.client.CloseIdleConnections()
}

// nativeBlock is one block of Native format input: named, typed columns
// of equal length. Columns keep their buffers across Reset, so a block
// reused for every insert allocates only while it grows.
type nativeBlock struct {
	cols []proto.InputColumn
	rows int
	buf  proto.Buffer
}

// encode returns the block in Native format (column and row counts, then
// per column its name, type and values). The slice is valid until the next
// encode.
func (b *nativeBlock) encode() ([]byte, error) {
	b.buf.Reset()
	// Revision 0: the HTTP Native format has no BlockInfo and no custom
	// serialization flags.
	if err := (proto.Block{Columns: len(b.cols), Rows: b.rows}).EncodeRawBlock(&b.buf, 0, b.cols); err != nil {
		return nil, fmt.Errorf("encode native block: %w", err)
	}
	return b.buf.Buf, nil
}

// reset empties every column, keeping capacity.
func (b *nativeBlock) reset() {
	for _, c := range b.cols {
		c.Data.(proto.Resettable).Reset()
	}
	b.rows = 0
}

// wireStr is a String column kept in its Native wire form, per row the
// length (unsigned LEB128) and the bytes, so a value is copied once when
// appended and the column is encoded with one copy. (ch-go's ColStr keeps
// the bytes and their positions and writes lengths and bytes value by value
// when encoding, which cost a quarter of the client's CPU.)
type wireStr struct {
	buf  []byte
	rows int
}

var _ proto.ColInput = (*wireStr)(nil)

// Append adds s as the next row.
func (c *wireStr) Append(s string) {
	c.buf = binary.AppendUvarint(c.buf, uint64(len(s)))
	c.buf = append(c.buf, s...)
	c.rows++
}

// Type implements proto.ColInput.
func (c *wireStr) Type() proto.ColumnType { return proto.ColumnTypeString }

// Rows implements proto.ColInput.
func (c *wireStr) Rows() int { return c.rows }

// EncodeColumn implements proto.ColInput.
func (c *wireStr) EncodeColumn(b *proto.Buffer) { b.PutRaw(c.buf) }

// WriteColumn implements proto.ColInput.
func (c *wireStr) WriteColumn(w *proto.Writer) { w.ChainWrite(c.buf) }

// Reset empties the column, keeping capacity.
func (c *wireStr) Reset() { c.buf, c.rows = c.buf[:0], 0 }

// wireStrArr is an Array(String) column in Native wire form: the rows' end
// offsets into the flattened values (UInt64), then the values.
type wireStrArr struct {
	offsets proto.ColUInt64
	values  wireStr
}

var _ proto.ColInput = (*wireStrArr)(nil)

// Add appends s to the current row's array; End closes the row.
func (c *wireStrArr) Add(s string) { c.values.Append(s) }

// End closes the current row (an empty array when nothing was added).
func (c *wireStrArr) End() { c.offsets.Append(uint64(c.values.rows)) }

// Type implements proto.ColInput.
func (c *wireStrArr) Type() proto.ColumnType { return proto.ColumnTypeString.Array() }

// Rows implements proto.ColInput.
func (c *wireStrArr) Rows() int { return len(c.offsets) }

// EncodeColumn implements proto.ColInput.
func (c *wireStrArr) EncodeColumn(b *proto.Buffer) {
	c.offsets.EncodeColumn(b)
	c.values.EncodeColumn(b)
}

// WriteColumn implements proto.ColInput.
func (c *wireStrArr) WriteColumn(w *proto.Writer) {
	c.offsets.WriteColumn(w)
	c.values.WriteColumn(w)
}

// Reset empties the column, keeping capacity.
func (c *wireStrArr) Reset() {
	c.offsets.Reset()
	c.values.Reset()
}

// appendSortedPairs adds m as the next row of keys and values, two aligned
// arrays with the keys sorted (as sortedPairs), using scratch for the
// sort; it returns scratch for the next call, so once grown it allocates
// nothing.
func appendSortedPairs(keys, values *wireStrArr, m map[string]string, scratch []string) []string {
	ks := scratch[:0]
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	for _, k := range ks {
		keys.Add(k)
		values.Add(m[k])
	}
	keys.End()
	values.End()
	clear(ks)
	return ks[:0]
}

// freeList keeps up to cap(l) blocks for reuse across inserts.
type freeList[B any] chan *B

// get returns a kept block, or a new one from create.
func (l freeList[B]) get(create func() *B) *B {
	select {
	case b := <-l:
		return b
	default:
		return create()
	}
}

// put keeps b unless the list is full (then b is left to the GC).
func (l freeList[B]) put(b *B) {
	select {
	case l <- b:
	default:
	}
}

// insertNative writes block (encoded Native data of rows rows) into table
// (database.table) naming columns (comma-separated, the block's order) in
// one INSERT: all rows or none. Server errors come back as
// *ClickHouseHTTPError wrapped with the table and row count.
func (c *ClickHouseHTTP) insertNative(ctx context.Context, table, columns string, block []byte, rows int) (err error) {
	stmt := "INSERT INTO " + table + " (" + columns + ") FORMAT Native"
	if c.tracer != nil {
		var span trace.Span
		ctx, span = c.tracer.Start(ctx, "clickhouse "+operation(stmt), trace.WithSpanKind(trace.SpanKindClient),
			trace.WithLinks(telemetry.Links(ctx)...),
			trace.WithAttributes(attribute.String("db.system", "clickhouse"), attribute.String("db.query.text", stmt),
				attribute.Int("db.operation.batch.size", rows)))
		defer func() { end(span, err) }()
	}
	q := url.Values{"query": {stmt}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint+"?"+q.Encode(), bytes.NewReader(block))
	if err != nil {
		return fmt.Errorf("insert %d rows into %s: %w", rows, table, err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.SetBasicAuth(c.user, c.password)
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("insert %d rows into %s: %w", rows, table, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body) // keep the connection reusable
		return nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	return fmt.Errorf("insert %d rows into %s: %w", rows, table, newHTTPError(resp.StatusCode, msg))
}

// ClickHouseHTTPError is an error answer of ClickHouse's HTTP interface.
type ClickHouseHTTPError struct {
	// Status is the HTTP status (500 for most server exceptions, 404 for
	// an unknown table or database, 400 for a bad query).
	Status int
	// Code is ClickHouse's error code ("Code: 60" → 60), 0 when the answer
	// carries none.
	Code int
	// Message is the server's answer text, trimmed.
	Message string
}

// Error implements error.
func (e *ClickHouseHTTPError) Error() string {
	return fmt.Sprintf("clickhouse http %d: %s", e.Status, e.Message)
}

// codeRe finds the exception code in an answer such as "Code: 60,
// e.displayText() = DB::Exception: Table x doesn't exist."
var codeRe = regexp.MustCompile(`Code: (\d+)`)

func newHTTPError(status int, body []byte) *ClickHouseHTTPError {
	e := &ClickHouseHTTPError{Status: status, Message: strings.TrimSpace(string(body))}
	if m := codeRe.FindStringSubmatch(e.Message); m != nil {
		e.Code, _ = strconv.Atoi(m[1])
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return e
}

// AsClickHouseHTTPError returns the *ClickHouseHTTPError in err's chain.
func AsClickHouseHTTPError(err error) (*ClickHouseHTTPError, bool) {
	var e *ClickHouseHTTPError
	ok := errors.As(err, &e)
	return e, ok
}
