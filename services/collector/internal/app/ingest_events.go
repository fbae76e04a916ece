package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/streamwatch/streamwatch/pkg/events"
)

// IngestEvents is a request to ingest client events.
type IngestEvents struct {
	// Body is the request body: a JSON array of event objects, or NDJSON
	// (one object per line). The caller bounds its size.
	Body io.Reader
	// NDJSON forces NDJSON (the client sent Content-Type
	// application/x-ndjson). Otherwise the body is a JSON array when its
	// first non-space byte is '[' and NDJSON when it is anything else.
	NDJSON bool
	// Tenant is the API key's tenant: events without a source get it, events
	// with a source outside it are rejected. Empty allows any source.
	Tenant string
	// Size is the body's length when known (Content-Length), else 0; it
	// only sizes the read buffer.
	Size int64
}

// IngestEventsHandler ingests client events (or, built by New as
// IngestSamples, metric samples). Safe for concurrent use.
type IngestEventsHandler struct {
	pub    EventPublisher
	now    func() time.Time
	limits Limits
	// parse turns one item into an event: events.ParseInput (nil) or
	// events.ParseSample.
	parse func(data []byte, receive time.Time) (events.Event, error)
	// fast is parse's fast path for items of a JSON array: fastInput (nil)
	// or fastSample.
	fast func(s string, i int, receive time.Time, ev *events.Event, out *decoded) bool
	// stdOnly turns the fast path off (tests compare both paths).
	stdOnly bool
	// results recycles fastArray's result slices.
	results eventSlices
}

// decoded is what a fast decoder says of an item besides the event: its
// validation error, the offset just after it and its shape.
type decoded struct {
	err   error
	end   int
	shape events.Shape
}

// fastInput reads the event object at s[i:] into *ev (zero) with
// events.DecodeInput; false when that decoder steps aside (the item then
// takes events.ParseInput).
func fastInput(s string, i int, receive time.Time, ev *events.Event, out *decoded) bool {
	var in events.Input
	end, shape, ok := events.DecodeInput(s, i, &in)
	if !ok {
		return false
	}
	out.err = in.EventTo(ev, receive)
	out.end, out.shape = end, shape
	return true
}

// fastSample is fastInput for samples (events.DecodeSample).
func fastSample(s string, i int, receive time.Time, ev *events.Event, out *decoded) bool {
	var in events.SampleInput
	end, shape, ok := events.DecodeSample(s, i, &in)
	if !ok {
		return false
	}
	*ev, out.err = in.Event(receive)
	out.end, out.shape = end, shape
	return true
}

// Handle reads the whole body, checks every item against the Limits (size,
// JSON depth and field count), parses it with events.ParseInput (receive
// time = now; a UUIDv7 id for items without event_id), checks its event
// time against the bounds and its source against cmd.Tenant, and publishes
// the valid events to Topic in input order, returning after the broker
// acknowledged them. A JSON array body is read in one pass without
// encoding/json when it can be (see fastArray), with the same results.
//
// Rejections carry the 0-based array index or the 0-based NDJSON line index
// (blank NDJSON lines are skipped but counted) and the reason naming the
// field. A Result with Accepted == 0 and rejections means nothing was valid
// and nothing was published.
//
// Errors: a *RequestError for an empty body, an empty array ("no events")
// or a JSON array that is not syntactically valid as a whole (naming the
// byte offset); an error wrapping ErrUnavailable when publishing failed
// (nothing counts as accepted); an error wrapping ErrBody and the read error
// (e.g. an *http.MaxBytesError when the body exceeds its limit).
func (h *IngestEventsHandler) Handle(ctx context.Context, cmd IngestEvents) (Result, error) {
	body, err := readBody(cmd.Body, cmd.Size)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrBody, err)
	}
	receive := h.now()
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if !cmd.NDJSON && len(trimmed) > 0 && trimmed[0] == '[' && !h.stdOnly {
		if valid, res, ok := h.fastArray(body, receive, cmd.Tenant); ok {
			res, err := h.finish(ctx, valid, res)
			if err == nil {
				// Published: EventPublisher keeps nothing after a nil return.
				h.results.put(valid)
			}
			return res, err
		}
	}
	var (
		valid []events.Event
		res   Result
	)
	add := func(pos int, item []byte) {
		ev, err := h.item(item, receive, cmd.Tenant)
		if err != nil {
			res.Rejected = append(res.Rejected, Rejection{Position: int64(pos), Err: err})
			return
		}
		valid = append(valid, ev)
	}

	switch {
	case len(trimmed) == 0:
		return Result{}, requestErrorf("no events")
	case !cmd.NDJSON && trimmed[0] == '[':
		// Items deeper than MaxJSONDepth are rejected one by one below; a
		// body nested beyond any use is refused before the decoder walks it.
		if err := checkJSONShape(trimmed, MaxBodyJSONDepth, 0); err != nil {
			return Result{}, requestErrorf("%s", oneLine(err))
		}
		var items []json.RawMessage
		if err := json.Unmarshal(body, &items); err != nil {
			if serr, ok := errors.AsType[*json.SyntaxError](err); ok {
				return Result{}, requestErrorf("malformed JSON array at byte %d: %s", serr.Offset, serr.Error())
			}
			return Result{}, requestErrorf("malformed JSON array: %s", err.Error())
		}
		if len(items) == 0 {
			return Result{}, requestErrorf("no events")
		}
		for i, item := range items {
			add(i, item)
		}
	case !h.stdOnly:
		valid, res = h.fastLines(body, receive, cmd.Tenant)
		if len(valid)+len(res.Rejected) == 0 {
			return Result{}, requestErrorf("no events")
		}
		res, err := h.finish(ctx, valid, res)
		if err == nil {
			h.results.put(valid)
		}
		return res, err
	default:
		n := 0
		for line := range bytes.Lines(body) {
			if len(bytes.TrimSpace(line)) > 0 {
				add(n, line)
			}
			n++
		}
		if len(valid)+len(res.Rejected) == 0 {
			return Result{}, requestErrorf("no events")
		}
	}

	return h.finish(ctx, valid, res)
}

// fastLines reads an NDJSON body as Handle's reference loop does (lines as
// bytes.Lines yields them, blank ones skipped but counted, each checked by
// h.item), except that a line holding one object the fast decoder reads
// whole is decoded from one copy of the body, as fastArray does, with no
// copy and no shape scan of its own.
func (h *IngestEventsHandler) fastLines(body []byte, receive time.Time, tenant string) ([]events.Event, Result) {
	fast := h.fast
	if fast == nil {
		fast = fastInput
	}
	s := string(body)
	valid := h.results.get(len(s) / 128)
	var (
		res Result
		d   decoded
	)
	for n, start := 0, 0; start < len(body); n++ {
		end := len(body)
		if i := bytes.IndexByte(body[start:], '\n'); i >= 0 {
			end = start + i + 1
		}
		line := body[start:end]
		if len(bytes.TrimSpace(line)) > 0 {
			d = decoded{}
			valid = append(valid, events.Event{})
			ev := &valid[len(valid)-1]
			if fast(s, start, receive, ev, &d) && d.end <= end && events.SkipSpace(s[:end], d.end) == end && h.limits.within(len(line), d.shape) {
				if d.err == nil {
					d.err = h.limits.admit(ev, receive, tenant)
				}
			} else {
				*ev, d.err = h.item(line, receive, tenant)
			}
			if d.err != nil {
				res.Rejected = append(res.Rejected, Rejection{Position: int64(n), Err: d.err})
				*ev = events.Event{}
				valid = valid[:len(valid)-1]
			}
		}
		start = end
	}
	return valid, res
}

// finish publishes the valid events and completes the result.
func (h *IngestEventsHandler) finish(ctx context.Context, valid []events.Event, res Result) (Result, error) {
	if len(valid) > 0 {
		if err := publish(ctx, h.pub, valid); err != nil {
			return Result{}, err
		}
	}
	res.Accepted = len(valid)
	return res, nil
}

// item checks one JSON item against the limits, parses it and admits it:
// the reference path, whose errors the fast path reproduces by calling it.
func (h *IngestEventsHandler) item(item []byte, receive time.Time, tenant string) (events.Event, error) {
	if err := h.limits.checkItem(item); err != nil {
		return events.Event{}, err
	}
	parse := h.parse
	if parse == nil {
		parse = events.ParseInput
	}
	ev, err := parse(item, receive)
	if err == nil {
		err = h.limits.admit(&ev, receive, tenant)
	}
	return ev, err
}

// fastArray reads a JSON array body in one pass: each item is decoded by
// the fast decoder (events.DecodeInput or DecodeSample, no encoding/json)
// and checked against the limits with the shape it measured; an item the
// fast decoder steps aside for, or one beyond a limit, is delimited with
// events.SkipJSON and takes the reference path (h.item), so its error
// message is the one encoding/json gives. ok is false when the body is not
// a syntactically valid array of at least one item nested at most
// MaxBodyJSONDepth deep (or holds invalid UTF-8): the caller then takes
// the encoding/json path for the whole body, which names the problem.
// The events' strings slice one copy of the body.
func (h *IngestEventsHandler) fastArray(body []byte, receive time.Time, tenant string) (valid []events.Event, res Result, ok bool) {
	fast := h.fast
	if fast == nil {
		fast = fastInput
	}
	s := string(body)
	i := events.SkipSpace(s, 0) + 1 // after '['
	i = events.SkipSpace(s, i)
	if i < len(s) && s[i] == ']' {
		return nil, Result{}, false // empty: the reference path says "no events"
	}
	valid = h.results.get(len(s) / 128) // a typical event is 120-250 bytes of JSON
	var d decoded                       // one for all items: a func value's argument escapes
	for pos := 0; ; pos++ {
		start := i
		d = decoded{}
		valid = append(valid, events.Event{}) // decoded in place; dropped again unless valid
		ev := &valid[len(valid)-1]
		if fast(s, i, receive, ev, &d) && h.limits.within(d.end-start, d.shape) {
			if d.err == nil {
				d.err = h.limits.admit(ev, receive, tenant)
			}
			if d.err != nil {
				res.Rejected = append(res.Rejected, Rejection{Position: int64(pos), Err: d.err})
				*ev = events.Event{}
				valid = valid[:len(valid)-1]
			}
			i = d.end
		} else {
			*ev = events.Event{}
			valid = valid[:len(valid)-1]
			end, ok := events.SkipJSON(s, i, MaxBodyJSONDepth-1)
			if !ok {
				return nil, Result{}, false
			}
			if ev, err := h.item(body[start:end], receive, tenant); err != nil {
				res.Rejected = append(res.Rejected, Rejection{Position: int64(pos), Err: err})
			} else {
				valid = append(valid, ev)
			}
			i = end
		}
		i = events.SkipSpace(s, i)
		if i >= len(s) {
			return nil, Result{}, false
		}
		switch s[i] {
		case ',':
			i = events.SkipSpace(s, i+1)
		case ']':
			if events.SkipSpace(s, i+1) != len(s) {
				return nil, Result{}, false
			}
			return valid, res, true
		default:
			return nil, Result{}, false
		}
	}
}

// readBody reads r whole; size > 0 is the expected length (the request's
// Content-Length), which saves the growing copies of io.ReadAll.
func readBody(r io.Reader, size int64) ([]byte, error) {
	if size <= 0 || size > 1<<30 {
		return io.ReadAll(r)
	}
	buf := bytes.NewBuffer(make([]byte, 0, size+1)) // +1: EOF is seen without growing
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}
