package boot

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/streamwatch/streamwatch/pkg/httpserver"
)

// DebugAddrEnv names the environment variable that turns on a service's
// debug listener (debugConfig.Addr).
const DebugAddrEnv = "DEBUG_ADDR"

// debugConfig is the debug listener's configuration, read by Main with
// config.Load for every service.
type debugConfig struct {
	// Addr is the listener's host:port (port 0 picks a free one, logged
	// as "debug listener" with its address). Empty, nothing listens.
	Addr string `env:"DEBUG_ADDR"`
}

// debugMux returns the handlers of the debug listener: Go's runtime
// profiles under /debug/pprof/ as net/http/pprof serves them (index, cmdline,
// profile?seconds=N for a CPU profile, symbol, trace?seconds=N, and the named
// profiles heap, allocs, goroutine, block, mutex, threadcreate), on a mux of
// their own rather than http.DefaultServeMux, so no other package's handler
// is exposed with them. They are the pprof endpoints of the Go tool
// (go tool pprof http://ADDR/debug/pprof/heap).
func debugMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// serveDebug serves debugMux on ln until ctx is done, then shuts the server
// down, waiting up to 5 s for requests under way (a CPU profile of N seconds
// is cut short), as httpserver.ServeOn does for every service's API. It
// returns nil after a shutdown, or the error that ended serving. The
// listener is for operators only: it has no authentication, so bind it to
// loopback or a network only they reach.
func serveDebug(ctx context.Context, ln net.Listener, logger *slog.Logger) error {
	srv := &http.Server{Handler: debugMux(), ReadHeaderTimeout: 10 * time.Second}
	logger.Info("debug listener", "addr", ln.Addr().String())
	return httpserver.ServeOn(ctx, srv, ln, 5*time.Second)
}

// startDebug starts the debug listener on addr (DEBUG_ADDR) in the
// background when addr is not empty, and returns a function that stops it
// and waits until it has. A listener that cannot bind is logged and
// skipped: profiling is not a reason for a service not to start.
func startDebug(ctx context.Context, addr string, logger *slog.Logger) (stop func()) {
	if addr == "" {
		return func() {}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		logger.Error("debug listener not started", "env", DebugAddrEnv, "addr", addr, "error", err.Error())
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := serveDebug(ctx, ln, logger); err != nil {
			logger.Error("debug listener failed", "error", err.Error())
		}
	}()
	return func() { cancel(); <-done }
}
