package ports

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/streamwatch/streamwatch/pkg/httpserver"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/window"
)

// streamBuffer is how many results one stream client may lag behind
// before results are dropped for it.
const streamBuffer = 1024

var streamParams = map[string]bool{"metric": true}

// streamWindows serves GET /api/v1/stream: Server-Sent Events, one event
// "window" per window result the projector stores (data: the
// metrics.Result JSON; id: <result id>|<revision>), of the metrics given
// (all when none), plus a ": heartbeat" comment every Heartbeat so proxies
// and clients see a live connection. It ends when the client disconnects
// (the request context ends) or the server stops (StreamConfig.Stop).
// Results are not replayed: a client that reconnects reads the current
// state from /api/v1/live and then follows the stream.
func (s *HTTPServer) streamWindows(c echo.Context) error {
	params := c.QueryParams()
	if err := checkParams(params, streamParams); err != nil {
		return badRequest(err)
	}
	names := params["metric"]
	var errs []error
	for _, m := range names {
		errs = append(errs, window.CheckMetric(m))
	}
	if len(names) > window.MaxLiveMetrics {
		errs = append(errs, window.InvalidParam("metric", "%d given, at most %d", len(names), window.MaxLiveMetrics))
	}
	if err := errors.Join(errs...); err != nil {
		return badRequest(err)
	}
	if s.stream.Feed == nil {
		return httpserver.Error(http.StatusServiceUnavailable, "live stream not available")
	}
	// A stream outlasts HTTP_WRITE_TIMEOUT, also for clients that do not
	// send Accept: text/event-stream.
	httpserver.ExtendWriteDeadline(c.Request().Context(), 0)
	results, unsubscribe := s.stream.Feed.Subscribe(names, streamBuffer)
	defer unsubscribe()

	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "text/event-stream")
	w.Header().Set(echo.HeaderCacheControl, "no-cache")
	w.Header().Set(echo.HeaderConnection, "keep-alive")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, ": connected\n\n"); err != nil {
		return nil
	}
	w.Flush()

	heartbeat := time.NewTicker(s.stream.Heartbeat)
	defer heartbeat.Stop()
	ctx := c.Request().Context()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.stream.Stop:
			return nil
		case <-heartbeat.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return nil // client gone
			}
			w.Flush()
		case r := <-results:
			data, err := json.Marshal(r)
			if err != nil {
				continue
			}
			if _, err := fmt.Fprintf(w, "id: %s|%s\nevent: window\ndata: %s\n\n", r.ID(), strconv.FormatInt(r.Revision, 10), data); err != nil {
				return nil
			}
			w.Flush()
		}
	}
}
