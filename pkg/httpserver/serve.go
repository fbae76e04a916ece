package httpserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"golang.org/x/sync/errgroup"

	"github.com/streamwatch/streamwatch/pkg/config"
)

// OpsPaths are the operational endpoints: always open (no API key), and
// moved to config.HTTP.HealthAddr when that is set.
var OpsPaths = []string{"/healthz", "/readyz", "/metrics"}

// Default server timeouts, used where config.HTTP leaves one at zero.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 60 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultShutdownTimeout   = 10 * time.Second
)

// Serve serves h (an echo instance from New, served through Handler so
// that requests get server spans and HTTP metrics, or Handler of it) on cfg.Addr
// until ctx is done, then shuts down gracefully within cfg.ShutdownTimeout.
// Every connection has read, write and idle timeouts (cfg, or the defaults
// above for zero values; the header read is bounded by min(10 s,
// ReadTimeout)). The write deadline is set per request, before h runs, so
// that Server-Sent Events streams (requests that accept
// text/event-stream, as EventSource sends) can stay open: they get none.
//
// With cfg.HealthAddr set, a second server on that address serves only
// OpsPaths and the main one answers them 404, so probes and metric scrapes
// can stay on an internal port.
//
// It returns nil after a clean shutdown, the listen error when an address
// is unusable (e.g. in use), or the serve or shutdown error.
func Serve(ctx context.Context, h http.Handler, cfg config.HTTP) error {
	if e, ok := h.(*echo.Echo); ok {
		h = Handler(e) // server spans and HTTP metrics
	}
	main := h
	var health http.Handler
	if cfg.HealthAddr != "" {
		main = pathFilter(h, false)
		health = pathFilter(h, true)
	}
	lns := []net.Listener{}
	handlers := []http.Handler{}
	for _, a := range []struct {
		addr string
		h    http.Handler
	}{{cfg.Addr, main}, {cfg.HealthAddr, health}} {
		if a.h == nil {
			continue
		}
		ln, err := net.Listen("tcp", a.addr)
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			return fmt.Errorf("listen %s: %w", a.addr, err)
		}
		lns = append(lns, ln)
		handlers = append(handlers, a.h)
	}
	timeout := cfg.ShutdownTimeout
	if timeout <= 0 {
		timeout = DefaultShutdownTimeout
	}
	g, gctx := errgroup.WithContext(ctx)
	for i, ln := range lns {
		srv := newServer(handlers[i], cfg)
		g.Go(func() error { return ServeOn(gctx, srv, ln, timeout) })
	}
	return g.Wait()
}

// ServeOn serves srv on ln until ctx is done, then shuts srv down
// gracefully, waiting up to timeout for requests under way. It returns nil
// after a clean shutdown, or the error that ended serving or the shutdown.
// Serve runs each of its listeners with it; a server built elsewhere (the
// debug listener of pkg/boot) shares the same life cycle.
func ServeOn(ctx context.Context, srv *http.Server, ln net.Listener, timeout time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown http %s: %w", ln.Addr(), err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}

func newServer(h http.Handler, cfg config.HTTP) *http.Server {
	or := func(d, def time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return def
	}
	read := or(cfg.ReadTimeout, DefaultReadTimeout)
	return &http.Server{
		Handler:           writeDeadline(h, or(cfg.WriteTimeout, DefaultWriteTimeout)),
		ReadHeaderTimeout: min(DefaultReadHeaderTimeout, read),
		ReadTimeout:       read,
		IdleTimeout:       or(cfg.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes:    64 << 10,
	}
}

// writeDeadline bounds writing each response to d from the request's start
// (what http.Server.WriteTimeout does for every request), except for event
// streams. It runs outermost, on net/http's own ResponseWriter, so wrappers
// inside (otelhttp, echo) need not support http.ResponseController.
func writeDeadline(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
			_ = rc.SetWriteDeadline(time.Now().Add(d))
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), responseControllerKey{}, rc)))
	})
}

// responseControllerKey is the request-context key of the connection's
// *http.ResponseController, for ExtendWriteDeadline.
type responseControllerKey struct{}

// ExtendWriteDeadline moves the write deadline of the response to the
// request of ctx to now + d (d <= 0: no deadline), for a handler that
// legitimately runs longer than HTTP_WRITE_TIMEOUT (a synchronous batch
// run, a stream). It reports whether it could: false outside Serve.
func ExtendWriteDeadline(ctx context.Context, d time.Duration) bool {
	rc, ok := ctx.Value(responseControllerKey{}).(*http.ResponseController)
	if !ok {
		return false
	}
	var at time.Time
	if d > 0 {
		at = time.Now().Add(d)
	}
	return rc.SetWriteDeadline(at) == nil
}

// pathFilter serves the OpsPaths of h when ops is true and every other path
// when it is false; the rest is answered 404 with the JSON error body.
func pathFilter(h http.Handler, ops bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slices.Contains(OpsPaths, r.URL.Path) != ops {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"code":"not_found","message":"Not Found"}` + "\n"))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// CORS returns echo's CORS middleware for the given allowed origins
// (config.HTTP.CORSOrigins): browsers on those origins may call the API
// with GET, HEAD, POST, PUT, DELETE and the Authorization, X-API-Key and
// Content-Type headers; preflights are cached 10 minutes. No origins means
// no cross-origin access (the middleware is a no-op); "*" allows any origin
// but then never with credentials (cookies).
func CORS(origins []string) echo.MiddlewareFunc {
	if len(origins) == 0 {
		return func(next echo.HandlerFunc) echo.HandlerFunc { return next }
	}
	return middleware.CORSWithConfig(middleware.CORSConfig{
		AllowOrigins:     origins,
		AllowMethods:     []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete},
		AllowHeaders:     []string{echo.HeaderAuthorization, "X-API-Key", echo.HeaderContentType},
		ExposeHeaders:    []string{"Retry-After"},
		AllowCredentials: !slices.Contains(origins, "*"),
		MaxAge:           600,
	})
}
