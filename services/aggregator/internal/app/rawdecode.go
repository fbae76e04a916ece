package app

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/streamwatch/streamwatch/pkg/events"
)

// decodeRaw decodes an events.raw batch record written in the form
// events.EncodeBatch writes (encoding/json: known keys spelled exactly,
// strings without escapes, numbers in JSON syntax) without reflection,
// into buf's array as decodeBatch does. It reports ok = false, having
// decided nothing, for anything else: an escape sequence, an unknown or
// differently cased key, null, a number a field's type cannot hold,
// malformed JSON. The caller then decodes the record with the general
// decoder, so the result never differs from encoding/json's; this path
// only makes the common case fast (a hand-written scanner over the 28
// fields of events.Event, strings converted once, event types and HTTP
// methods and protocols interned).
//
// It checks neither the batch nor the event schema version: v is the batch
// version for the caller to check, as for the general decoder.
func decodeRaw(p []byte, buf []events.Event) (evs []events.Event, v int, ok bool) {
	d := rawDecoder{b: p}
	evs, v, ok = d.batch(buf[:0])
	if !ok {
		// Leave buf as the caller gave it: zero values up to its capacity.
		clear(buf[:min(len(d.evs), cap(buf))])
		return nil, 0, false
	}
	return evs, v, true
}

type rawDecoder struct {
	b   []byte
	i   int
	evs []events.Event // the events decoded so far
}

func (d *rawDecoder) batch(evs []events.Event) (_ []events.Event, v int, _ bool) {
	d.evs = evs
	if !d.byte('{') {
		return nil, 0, false
	}
	seenEvents := false
	for first := true; ; first = false {
		if d.peek() == '}' && first {
			d.i++
			break
		}
		key, ok := d.str()
		if !ok || !d.byte(':') {
			return nil, 0, false
		}
		switch string(key) {
		case "v":
			n, ok := d.int()
			if !ok || n != int64(int(n)) {
				return nil, 0, false
			}
			v = int(n)
		case "events":
			if seenEvents || !d.events() {
				return nil, 0, false // a repeated key merges in encoding/json
			}
			seenEvents = true
		default:
			return nil, 0, false
		}
		if d.byte(',') {
			continue
		}
		if !d.byte('}') {
			return nil, 0, false
		}
		break
	}
	d.ws()
	return d.evs, v, d.i == len(d.b)
}

func (d *rawDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *rawDecoder) peek() byte {
	d.ws()
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

// byte consumes c (after white space) and reports whether it was there.
func (d *rawDecoder) byte(c byte) bool {
	if d.peek() == c {
		d.i++
		return true
	}
	return false
}

// str returns the bytes of a string without escapes or control
// characters, in valid UTF-8 (encoding/json would replace invalid bytes).
// It finds the closing quote with bytes.IndexByte and checks the bytes
// before it eight at a time (plain reports whether none is a control
// character, a backslash or non-ASCII).
func (d *rawDecoder) str() ([]byte, bool) {
	if !d.byte('"') {
		return nil, false
	}
	n := bytes.IndexByte(d.b[d.i:], '"')
	if n < 0 {
		return nil, false
	}
	s := d.b[d.i : d.i+n]
	d.i += n + 1
	if plain(s) {
		return s, true
	}
	for _, c := range s {
		if c < 0x20 || c == '\\' {
			return nil, false
		}
	}
	return s, utf8.Valid(s)
}

// plain reports whether s has no byte below 0x20, no backslash and no byte
// from 0x80 (SWAR: Mycroft's has-less-than test on eight bytes at a time).
func plain(s []byte) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for len(s) >= 8 {
		x := binary.LittleEndian.Uint64(s)
		bs := x ^ (ones * '\\')
		if ((x-ones*0x20)|(bs-ones)|x)&highs != 0 {
			return false
		}
		s = s[8:]
	}
	for _, c := range s {
		if c < 0x20 || c == '\\' || c >= 0x80 {
			return false
		}
	}
	return true
}

// number returns a number token in strict JSON syntax and whether it is an
// integer (no fraction, no exponent).
func (d *rawDecoder) number() (tok []byte, integer, ok bool) {
	d.ws()
	b, i := d.b, d.i
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return nil, false, false
	}
	integer = true
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return nil, false, false
		}
		integer = false
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return nil, false, false
		}
		integer = false
	}
	tok, d.i = b[d.i:i], i
	return tok, integer, true
}

func (d *rawDecoder) int() (int64, bool) {
	tok, integer, ok := d.number()
	if !ok || !integer {
		return 0, false
	}
	n, err := strconv.ParseInt(unsafe.String(unsafe.SliceData(tok), len(tok)), 10, 64)
	return n, err == nil
}

func (d *rawDecoder) float() (float64, bool) {
	tok, _, ok := d.number()
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(tok), len(tok)), 64)
	return f, err == nil
}

// stringMap decodes an object of strings into a new map.
func (d *rawDecoder) stringMap() (map[string]string, bool) {
	if !d.byte('{') {
		return nil, false
	}
	m := map[string]string{}
	if d.byte('}') {
		return m, true
	}
	for {
		k, ok := d.str()
		if !ok || !d.byte(':') {
			return nil, false
		}
		v, ok := d.str()
		if !ok {
			return nil, false
		}
		m[string(k)] = string(v)
		if d.byte(',') {
			continue
		}
		return m, d.byte('}')
	}
}

// events decodes the events array into d.evs.
func (d *rawDecoder) events() bool {
	if !d.byte('[') {
		return false
	}
	if d.byte(']') {
		return true
	}
	for {
		if len(d.evs) < cap(d.evs) {
			d.evs = d.evs[:len(d.evs)+1] // zero: the caller's buffer is zeroed
		} else {
			d.evs = append(d.evs, events.Event{})
		}
		if !d.event(&d.evs[len(d.evs)-1]) {
			return false
		}
		if d.byte(',') {
			continue
		}
		return d.byte(']')
	}
}

// event decodes one event object into e (zero on entry).
func (d *rawDecoder) event(e *events.Event) bool {
	if !d.byte('{') {
		return false
	}
	if d.byte('}') {
		return true
	}
	for {
		key, ok := d.str()
		if !ok || !d.byte(':') {
			return false
		}
		if !d.field(e, key) {
			return false
		}
		if d.byte(',') {
			continue
		}
		return d.byte('}')
	}
}

// field decodes the value of the field named key into e.
func (d *rawDecoder) field(e *events.Event, key []byte) bool {
	var ok bool
	switch string(key) {
	case "v":
		var n int64
		n, ok = d.int()
		e.V = int(n)
		return ok && n == int64(e.V)
	case "status":
		var n int64
		n, ok = d.int()
		e.Status = int(n)
		return ok && n == int64(e.Status)
	case "event_time":
		e.Time, ok = d.int()
	case "receive_time":
		e.ReceiveTime, ok = d.int()
	case "bytes":
		e.Bytes, ok = d.int()
	case "amount":
		e.Amount, ok = d.float()
	case "latency_ms":
		e.LatencyMs, ok = d.float()
	case "value":
		e.Value, ok = d.float()
	case "properties": // a repeated map key merges in encoding/json
		if e.Properties != nil {
			return false
		}
		e.Properties, ok = d.stringMap()
	case "labels":
		if e.Labels != nil {
			return false
		}
		e.Labels, ok = d.stringMap()
	case "type":
		var s []byte
		s, ok = d.str()
		e.Type = events.Type(internType(s))
	case "method":
		var s []byte
		s, ok = d.str()
		e.Method = internMethod(s)
	case "protocol":
		var s []byte
		s, ok = d.str()
		e.Protocol = internProtocol(s)
	default:
		f := stringField(e, key)
		if f == nil {
			return false
		}
		var s []byte
		s, ok = d.str()
		*f = string(s)
	}
	return ok
}

// stringField returns the address of e's plain string field named key, nil
// for another key.
func stringField(e *events.Event, key []byte) *string {
	switch string(key) {
	case "event_id":
		return &e.ID
	case "key":
		return &e.Key
	case "source":
		return &e.Source
	case "user_id":
		return &e.UserID
	case "session_id":
		return &e.SessionID
	case "page":
		return &e.Page
	case "product_id":
		return &e.ProductID
	case "query":
		return &e.Query
	case "service":
		return &e.Service
	case "endpoint":
		return &e.Endpoint
	case "client_ip":
		return &e.ClientIP
	case "path":
		return &e.Path
	case "referrer":
		return &e.Referrer
	case "user_agent":
		return &e.UserAgent
	case "series":
		return &e.Series
	}
	return nil
}

func internType(s []byte) string {
	for _, t := range events.Types {
		if string(t) == string(s) {
			return string(t)
		}
	}
	return string(s)
}

var (
	methods   = [...]string{"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"}
	protocols = [...]string{"HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/2"}
)

func internMethod(s []byte) string {
	for _, m := range methods {
		if m == string(s) {
			return m
		}
	}
	return string(s)
}

func internProtocol(s []byte) string {
	for _, p := range protocols {
		if p == string(s) {
			return p
		}
	}
	return string(s)
}
