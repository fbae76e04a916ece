package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Service names: each is both the binary in Options.BinDir and the key of
// the per-service maps.
const (
	Collector  = "collector"
	Aggregator = "aggregator"
	Detector   = "detector"
	Notifier   = "notifier"
	Query      = "query"
)

// ServiceNames returns the five service names in start order.
func ServiceNames() []string {
	return []string{Collector, Aggregator, Detector, Notifier, Query}
}

// wellKnownPort is the port a component gets with Options.FixedPorts when
// that port is free; 0 for unknown names.
func wellKnownPort(name string) int {
	switch name {
	case "broker":
		return 9092
	case "redis":
		return 6379
	case "clickhouse":
		return 9000
	case "clickhouse-http":
		return 8123
	case Collector:
		return 8080
	case Aggregator:
		return 8081
	case Detector:
		return 8082
	case Notifier:
		return 8083
	case Query:
		return 8084
	}
	return 0
}

// Errors returned by the service methods of Stack.
var (
	// ErrUnknownService means the name is not a service of this stack.
	ErrUnknownService = errors.New("unknown service")
	// ErrServiceRunning means StartService was called on a running service.
	ErrServiceRunning = errors.New("service already running")
	// ErrClosed means the stack has been closed.
	ErrClosed = errors.New("stack closed")
)

// service is one service binary with a fixed address and environment; its
// process comes and goes.
type service struct {
	name    string
	bin     string
	addr    string // HTTP host:port
	env     []string
	logPath string

	mu   sync.Mutex
	proc *process // nil or exited when not running
}

func (s *service) url() string { return "http://" + s.addr }

// running returns the live process, or nil.
func (s *service) running() *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.exited() {
		return nil
	}
	return s.proc
}

// serviceEnv returns the process environment of a service: this process's
// environment overridden by common, then by extra. Keys are sorted so the
// log line that records it is stable.
func serviceEnv(common, extra map[string]string) []string {
	vars := make(map[string]string)
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	maps.Copy(vars, common)
	maps.Copy(vars, extra)
	env := make([]string, 0, len(vars))
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		env = append(env, k+"="+vars[k])
	}
	return env
}

// findServiceBinary returns the absolute path of dir/name, or an error that
// says how to build it.
func findServiceBinary(dir, name string) (string, error) {
	p, err := filepath.Abs(filepath.Join(dir, name))
	if err != nil {
		return "", err
	}
	st, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("service %s: %w (build it with: go build -o %s ./services/%s/cmd/%s)", name, err, p, name, name)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("service %s: %s is not an executable file", name, p)
	}
	return p, nil
}

// newReadyClient returns the client that polls /readyz: no keep-alives,
// so no connection lingers after a service stops.
func newReadyClient() *http.Client {
	return &http.Client{
		Timeout:   3 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true},
	}
}

// waitReady polls GET url/readyz until it answers 200, proc exits, or ctx is
// done. Errors carry the tail of the service log.
func waitReady(ctx context.Context, client *http.Client, proc *process, url string) error {
	err := pollUntil(ctx, proc, 50*time.Millisecond, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /readyz: %s: %s", resp.Status, bytes.TrimSpace(body))
		}
		return nil
	})
	if err == nil || proc.exited() {
		return err // an exit error already has the log tail
	}
	return fmt.Errorf("%s not ready: %w; last lines of %s:\n%s", proc.name, err, proc.logPath, tailFile(proc.logPath, 20))
}

// start runs the service and waits until it is ready or readyTimeout has
// passed. A service that does not become ready is killed.
func (s *service) start(ctx context.Context, st *Stack) error {
	s.mu.Lock()
	// Checked under s.mu: Close sets closed before it looks at s.proc, so
	// either Close sees this process or this start sees closed.
	if st.isClosed() {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.proc != nil && !s.proc.exited() {
		s.mu.Unlock()
		return fmt.Errorf("start %s: %w", s.name, ErrServiceRunning)
	}
	proc, err := startProcess(st.logger, s.name, s.bin, nil, s.env, s.logPath)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.proc = proc
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, st.opts.ReadyTimeout)
	defer cancel()
	began := time.Now()
	if err := waitReady(ctx, st.http, proc, s.url()); err != nil {
		proc.kill()
		return err
	}
	st.logger.Info("service ready", "service", s.name, "url", s.url(), "pid", proc.cmd.Process.Pid, "took", time.Since(began).Round(time.Millisecond).String())
	return nil
}

// stop stops the running process, if any: SIGTERM, then SIGKILL after grace
// or when ctx is done. It reports whether the process exited on its own.
func (s *service) stop(ctx context.Context, grace time.Duration) (graceful bool) {
	proc := s.running()
	if proc == nil {
		return true
	}
	return proc.stop(ctx, grace)
}

// kill sends SIGKILL to the running process, if any, and waits for it.
func (s *service) kill() {
	if proc := s.running(); proc != nil {
		proc.kill()
	}
}
