package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func osPid() int { return os.Getpid() }

// ProfileEntry is one function's share of a process's CPU samples.
type ProfileEntry struct {
	// Percent of the process's samples in the function itself (self) or
	// in it and its callees (cumulative).
	Percent float64 `json:"percent"`
	Symbol  string  `json:"symbol"`
}

// Profile is the top of one process's CPU profile.
type Profile struct {
	Seconds    float64        `json:"seconds"`
	Self       []ProfileEntry `json:"self"`
	Cumulative []ProfileEntry `json:"cumulative"`
}

// perfAvailable reports whether perf(1) is on PATH.
func perfAvailable() bool {
	_, err := exec.LookPath("perf")
	return err == nil
}

// recordProfile samples pid's on-CPU stacks with perf at 299 Hz for d
// (frame-pointer call graphs: Go keeps frame pointers) into dir/name.perf.
// Go binaries carry their symbol table, so perf names Go functions. The
// services are not touched: no pprof endpoint is needed.
func recordProfile(ctx context.Context, dir, name string, pid int, d time.Duration) (string, error) {
	out := filepath.Join(dir, name+".perf")
	cmd := exec.CommandContext(ctx, "perf", "record", "-F", "299", "--call-graph", "fp", "-o", out,
		"-p", strconv.Itoa(pid), "--", "sleep", strconv.Itoa(int(d.Seconds())))
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("perf record %s: %w: %s", name, err, bytes.TrimSpace(b))
	}
	return out, nil
}

// reportProfile returns the top n functions by self and cumulative share.
func reportProfile(ctx context.Context, file string, n int) (Profile, error) {
	var p Profile
	for _, children := range []bool{false, true} {
		flag := "--no-children"
		if children {
			flag = "--children"
		}
		b, err := exec.CommandContext(ctx, "perf", "report", "-i", file, "--stdio", flag, "--sort", "symbol",
			"-g", "none", "--percent-limit", "0.5").Output()
		if err != nil {
			return p, fmt.Errorf("perf report %s: %w", file, err)
		}
		entries := parsePerfReport(b, children, n)
		if children {
			p.Cumulative = entries
		} else {
			p.Self = entries
		}
	}
	return p, nil
}

// parsePerfReport parses `perf report --stdio --sort symbol -g none`
// lines: "  12.34%  [.] symbol" (self), or "  40.00%   1.00%  [.] symbol"
// (children, cumulative first), with perf's trailing " - -" columns
// removed. Kernel symbols ([k]) are kept; the cumulative list leaves out
// goroutine entry and plumbing frames (boringFrame).
func parsePerfReport(b []byte, children bool, n int) []ProfileEntry {
	var out []ProfileEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() && len(out) < n {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 || !strings.HasSuffix(f[0], "%") {
			continue
		}
		pct, err := strconv.ParseFloat(strings.TrimSuffix(f[0], "%"), 64)
		if err != nil {
			continue
		}
		i := 1
		if children {
			i = 2
		}
		if i >= len(f) || !strings.HasPrefix(f[i], "[") {
			continue
		}
		sym := strings.TrimSpace(strings.TrimRight(strings.Join(f[i+1:], " "), " -"))
		if children && boringFrame(sym) {
			continue
		}
		out = append(out, ProfileEntry{Percent: pct, Symbol: sym})
	}
	return out
}

// boringFrame reports frames that top every cumulative list without saying
// where the time goes: goroutine entry, and the plumbing every record or
// request passes through (Watermill's router and middleware, retries, the
// HTTP server, echo, otelhttp).
func boringFrame(sym string) bool {
	for _, p := range []string{
		"runtime.goexit", "runtime.main", "main.main", "runtime.mcall", "runtime.mstart",
		"golang.org/x/sync/errgroup.", "github.com/ThreeDotsLabs/watermill/message.",
		"github.com/ThreeDotsLabs/watermill/message/router/middleware.", "github.com/cenkalti/backoff/",
		"github.com/streamwatch/streamwatch/pkg/messaging.", "net/http.", "github.com/labstack/echo/",
		"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp.", "github.com/streamwatch/streamwatch/pkg/httpserver.",
	} {
		if strings.HasPrefix(sym, p) {
			return true
		}
	}
	return false
}
