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
}

// Handle reads the whole body, checks every item against the Limits (size,
// JSON depth and field count), parses it with events.ParseInput (receive
// time = now; a UUIDv7 id for items without event_id), checks its event
// time against the bounds and its source against cmd.Tenant, and publishes
// the valid events to Topic in input order, returning after the broker
// acknowledged them.
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
	body, err := io.ReadAll(cmd.Body)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrBody, err)
	}
	receive := h.now()
	var (
		valid []events.Event
		res   Result
	)
	parse := h.parse
	if parse == nil {
		parse = events.ParseInput
	}
	add := func(pos int, item []byte) {
		err := h.limits.checkItem(item)
		var ev events.Event
		if err == nil {
			ev, err = parse(item, receive)
		}
		if err == nil {
			err = h.limits.admit(&ev, receive, cmd.Tenant)
		}
		if err != nil {
			res.Rejected = append(res.Rejected, Rejection{Position: int64(pos), Err: err})
			return
		}
		valid = append(valid, ev)
	}

	trimmed := bytes.TrimLeft(body, " \t\r\n")
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

	if len(valid) > 0 {
		if err := publish(ctx, h.pub, valid); err != nil {
			return Result{}, err
		}
	}
	res.Accepted = len(valid)
	return res, nil
}
