package events

import (
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// Shape is what a fast decode measured of one JSON item, for the
// collector's limits: Fields is the number of object keys (nested ones
// included, as a ':' count outside strings gives) and Depth the deepest
// nesting of objects and arrays (an event with a properties object is 2).
type Shape struct {
	Fields, Depth int
}

// DecodeInput decodes the JSON object that starts at s[i:] (after JSON
// whitespace) into *in, which must be zero, without encoding/json and with
// no allocation beyond those of the result: strings without escapes are
// substrings of s (so they keep s alive), maps are allocated. It returns the
// offset just after the object and the object's Shape.
//
// It handles the subset of JSON clients send in practice; ok is false for
// anything else: a syntax error, an unknown key, a key that matches a field
// only case-insensitively, a key given twice, null, a value of the wrong
// type, a number that does not fit its field, invalid UTF-8, an
// event_time string that is not RFC 3339. Then *in is undefined and the
// caller must parse the item with ParseInput, which gives encoding/json's
// answer (an error naming the field, or an event). When ok is true,
// encoding/json decodes the same object into the same Input
// (FuzzDecodeInputMatchesEncodingJSON checks it). \u escapes decode as
// encoding/json's do (an unpaired surrogate becomes U+FFFD).
func DecodeInput(s string, i int, in *Input) (end int, shape Shape, ok bool) {
	d := fastDecoder{s: s, i: i}
	var seen uint32
	ok = d.object(func(key string) bool {
		f, known := inputField(key)
		if !known || seen&(1<<f) != 0 {
			return false
		}
		seen |= 1 << f
		switch f {
		case fV:
			return d.int(&in.V)
		case fID:
			return d.str(&in.ID)
		case fType:
			return d.str((*string)(&in.Type))
		case fTime:
			return d.timestamp(&in.Time)
		case fSource:
			return d.str(&in.Source)
		case fUserID:
			return d.str(&in.UserID)
		case fSessionID:
			return d.str(&in.SessionID)
		case fPage:
			return d.str(&in.Page)
		case fProductID:
			return d.str(&in.ProductID)
		case fAmount:
			return d.float(&in.Amount)
		case fQuery:
			return d.str(&in.Query)
		case fProperties:
			return d.strMap(&in.Properties)
		case fService:
			return d.str(&in.Service)
		case fEndpoint:
			return d.str(&in.Endpoint)
		case fLatencyMs:
			return d.float(&in.LatencyMs)
		case fStatus:
			return d.int(&in.Status)
		case fClientIP:
			return d.str(&in.ClientIP)
		case fMethod:
			return d.str(&in.Method)
		case fPath:
			return d.str(&in.Path)
		case fProtocol:
			return d.str(&in.Protocol)
		case fBytes:
			return d.int64(&in.Bytes)
		case fReferrer:
			return d.str(&in.Referrer)
		case fUserAgent:
			return d.str(&in.UserAgent)
		case fSeries:
			return d.str(&in.Series)
		case fLabels:
			return d.strMap(&in.Labels)
		case fValue:
			return d.float(&in.Value)
		}
		return false
	})
	return d.i, Shape{Fields: d.fields, Depth: d.maxDepth}, ok
}

// DecodeSample is DecodeInput for a metric sample (SampleInput): same
// contract, ParseSample gives encoding/json's answer when ok is false.
func DecodeSample(s string, i int, in *SampleInput) (end int, shape Shape, ok bool) {
	d := fastDecoder{s: s, i: i}
	var seen uint32
	ok = d.object(func(key string) bool {
		var f uint32
		switch key {
		case "series":
			f = 1
		case "labels":
			f = 2
		case "value":
			f = 4
		case "timestamp":
			f = 8
		default:
			return false
		}
		if seen&f != 0 {
			return false
		}
		seen |= f
		switch f {
		case 1:
			return d.str(&in.Series)
		case 2:
			return d.strMap(&in.Labels)
		case 4:
			v := new(float64)
			in.Value = v
			return d.float(v)
		default:
			return d.timestamp(&in.Timestamp)
		}
	})
	return d.i, Shape{Fields: d.fields, Depth: d.maxDepth}, ok
}

// SkipJSON checks that s[i:] starts (after whitespace) with one
// syntactically valid JSON value nested at most maxDepth levels deep and
// returns the offset just after it. ok is false for a syntax error, a
// value nested deeper, or invalid UTF-8 in a string (which encoding/json
// would replace, not refuse: callers then take their encoding/json path).
func SkipJSON(s string, i, maxDepth int) (end int, ok bool) {
	d := fastDecoder{s: s, i: i}
	ok = d.skip(maxDepth)
	return d.i, ok
}

// SkipSpace returns the offset of the first byte at or after i that is
// not JSON whitespace (len(s) when none).
func SkipSpace(s string, i int) int {
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	return i
}

// Field numbers of Input, bits of DecodeInput's seen mask.
const (
	fV = iota
	fID
	fType
	fTime
	fSource
	fUserID
	fSessionID
	fPage
	fProductID
	fAmount
	fQuery
	fProperties
	fService
	fEndpoint
	fLatencyMs
	fStatus
	fClientIP
	fMethod
	fPath
	fProtocol
	fBytes
	fReferrer
	fUserAgent
	fSeries
	fLabels
	fValue
)

// inputField returns the field number of the JSON name of one of Input's
// fields (its json tags); a switch, which Go compiles to a search on length
// and bytes, is faster here than a map.
func inputField(key string) (uint32, bool) {
	switch key {
	case "v":
		return fV, true
	case "event_id":
		return fID, true
	case "type":
		return fType, true
	case "event_time":
		return fTime, true
	case "source":
		return fSource, true
	case "user_id":
		return fUserID, true
	case "session_id":
		return fSessionID, true
	case "page":
		return fPage, true
	case "product_id":
		return fProductID, true
	case "amount":
		return fAmount, true
	case "query":
		return fQuery, true
	case "properties":
		return fProperties, true
	case "service":
		return fService, true
	case "endpoint":
		return fEndpoint, true
	case "latency_ms":
		return fLatencyMs, true
	case "status":
		return fStatus, true
	case "client_ip":
		return fClientIP, true
	case "method":
		return fMethod, true
	case "path":
		return fPath, true
	case "protocol":
		return fProtocol, true
	case "bytes":
		return fBytes, true
	case "referrer":
		return fReferrer, true
	case "user_agent":
		return fUserAgent, true
	case "series":
		return fSeries, true
	case "labels":
		return fLabels, true
	case "value":
		return fValue, true
	}
	return 0, false
}

// fastDecoder reads JSON text from s at offset i. Every method returns
// false at the first byte it does not handle, leaving i anywhere.
type fastDecoder struct {
	s        string
	i        int
	fields   int // object keys read
	depth    int // current nesting
	maxDepth int
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (d *fastDecoder) space() {
	for d.i < len(d.s) && isSpace(d.s[d.i]) {
		d.i++
	}
}

func (d *fastDecoder) enter() {
	d.depth++
	d.maxDepth = max(d.maxDepth, d.depth)
}

// object reads an object, calling value for each key with d.i at the start
// of the key's value (after the ':' and whitespace); value reads it.
func (d *fastDecoder) object(value func(key string) bool) bool {
	d.space()
	if d.i >= len(d.s) || d.s[d.i] != '{' {
		return false
	}
	d.i++
	d.enter()
	d.space()
	if d.i < len(d.s) && d.s[d.i] == '}' {
		d.i++
		d.depth--
		return true
	}
	for {
		var key string
		if !d.str(&key) {
			return false
		}
		d.space()
		if d.i >= len(d.s) || d.s[d.i] != ':' {
			return false
		}
		d.i++
		d.fields++
		d.space()
		if !value(key) {
			return false
		}
		if more, ok := d.next('}'); !more {
			return ok
		}
	}
}

// next reads what follows a member of an object or array: a ',' (more is
// true) or the closing byte.
func (d *fastDecoder) next(closing byte) (more, ok bool) {
	d.space()
	if d.i >= len(d.s) {
		return false, false
	}
	switch d.s[d.i] {
	case ',':
		d.i++
		d.space()
		return true, true
	case closing:
		d.i++
		d.depth--
		return false, true
	}
	return false, false
}

// str reads a string into *out: a substring of s when it has no escapes.
func (d *fastDecoder) str(out *string) bool {
	s := d.s
	if d.i >= len(s) || s[d.i] != '"' {
		return false
	}
	start := d.i + 1
	ascii := true
	for i := start; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			v := s[start:i]
			if !ascii && !utf8.ValidString(v) {
				return false
			}
			*out = v
			d.i = i + 1
			return true
		case c == '\\':
			return d.strEscaped(start, i, out)
		case c < 0x20:
			return false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return false
}

// strEscaped reads the string that started at start and has its first
// escape at esc, decoding the escapes into a new string.
func (d *fastDecoder) strEscaped(start, esc int, out *string) bool {
	s := d.s
	buf := make([]byte, 0, esc-start+16)
	buf = append(buf, s[start:esc]...)
	rawStart := start // raw segments are checked for UTF-8 at the end
	i := esc
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			if !utf8.ValidString(s[rawStart:i]) {
				return false
			}
			*out = string(buf)
			d.i = i + 1
			return true
		case c == '\\':
			if i+1 >= len(s) {
				return false
			}
			switch e := s[i+1]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				// As encoding/json's unquote: a valid surrogate pair is one
				// rune, any other surrogate is U+FFFD.
				r, ok := hex4(s, i)
				if !ok {
					return false
				}
				i += 6
				if utf16.IsSurrogate(r) {
					if r2, ok := hex4(s, i); ok {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							buf = utf8.AppendRune(buf, dec)
							i += 6
							continue
						}
					}
					r = utf8.RuneError
				}
				buf = utf8.AppendRune(buf, r)
				continue
			default:
				return false
			}
			i += 2
		case c < 0x20:
			return false
		default:
			buf = append(buf, c)
			i++
		}
	}
	return false
}

// hex4 reads the escape \uXXXX at s[i:].
func hex4(s string, i int) (rune, bool) {
	if i+6 > len(s) || s[i] != '\\' || s[i+1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i+2 : i+6]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number reads a number and returns its text; integer is true when it has
// neither a fraction nor an exponent.
func (d *fastDecoder) number() (lit string, integer, ok bool) {
	s, i := d.s, d.i
	start := i
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return "", false, false
	}
	integer = true
	if i < len(s) && s[i] == '.' {
		integer = false
		i++
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return "", false, false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		integer = false
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return "", false, false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	d.i = i
	return s[start:i], integer, true
}

func (d *fastDecoder) float(out *float64) bool {
	lit, _, ok := d.number()
	if !ok {
		return false
	}
	f, err := strconv.ParseFloat(lit, 64)
	*out = f
	return err == nil
}

func (d *fastDecoder) int64(out *int64) bool {
	lit, integer, ok := d.number()
	if !ok || !integer {
		return false
	}
	n, err := strconv.ParseInt(lit, 10, 64)
	*out = n
	return err == nil
}

func (d *fastDecoder) int(out *int) bool {
	var n int64
	if !d.int64(&n) || int64(int(n)) != n {
		return false
	}
	*out = int(n)
	return true
}

// timestamp reads an event time as Timestamp.UnmarshalJSON does: an RFC
// 3339 string or a number of milliseconds.
func (d *fastDecoder) timestamp(out *Timestamp) bool {
	if d.i < len(d.s) && d.s[d.i] == '"' {
		var v string
		if !d.str(&v) {
			return false
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return false
		}
		*out = Timestamp(t.UnixMilli())
		return true
	}
	lit, integer, ok := d.number()
	if !ok {
		return false
	}
	if integer && len(lit) <= 15 { // exact in a float64: int64(ParseFloat) would give the same
		n, err := strconv.ParseInt(lit, 10, 64)
		*out = Timestamp(n)
		return err == nil
	}
	f, err := strconv.ParseFloat(lit, 64)
	*out = Timestamp(int64(f))
	return err == nil
}

// strMap reads an object of string values into a new map.
func (d *fastDecoder) strMap(out *map[string]string) bool {
	m := map[string]string{}
	*out = m
	return d.object(func(key string) bool {
		var v string
		if !d.str(&v) {
			return false
		}
		m[key] = v
		return true
	})
}

// skip reads any value nested at most maxDepth levels.
func (d *fastDecoder) skip(maxDepth int) bool {
	d.space()
	if d.i >= len(d.s) {
		return false
	}
	switch c := d.s[d.i]; {
	case c == '{':
		if d.depth+1 > maxDepth {
			return false
		}
		return d.object(func(string) bool { return d.skip(maxDepth) })
	case c == '[':
		if d.depth+1 > maxDepth {
			return false
		}
		d.i++
		d.enter()
		d.space()
		if d.i < len(d.s) && d.s[d.i] == ']' {
			d.i++
			d.depth--
			return true
		}
		for {
			if !d.skip(maxDepth) {
				return false
			}
			if more, ok := d.next(']'); !more {
				return ok
			}
		}
	case c == '"':
		var v string
		return d.str(&v)
	case c == '-' || (c >= '0' && c <= '9'):
		_, _, ok := d.number()
		return ok
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if len(d.s)-d.i >= len(lit) && d.s[d.i:d.i+len(lit)] == lit {
			d.i += len(lit)
			return true
		}
	}
	return false
}
