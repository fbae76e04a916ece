package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"
)

// process is a child process that runs in its own process group, writes
// stdout and stderr to a log file, and is killed by the kernel when this
// process dies (see sysProcAttr).
type process struct {
	name    string
	logPath string
	logger  *slog.Logger
	cmd     *exec.Cmd
	done    chan struct{} // closed once the process has exited and been reaped
	err     error         // exit status; valid after done is closed
	stopped atomic.Bool   // set when we asked the process to exit
}

// startProcess starts bin with args and env (the whole environment),
// appending its output to logPath. It returns once the process has started.
func startProcess(logger *slog.Logger, name, bin string, args, env []string, logPath string) (*process, error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer logFile.Close() // the child holds its own descriptor
	fmt.Fprintf(logFile, "---- %s: starting %s %q\n", time.Now().UTC().Format(time.RFC3339Nano), bin, args)

	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{
		name:    name,
		logPath: logPath,
		logger:  logger,
		cmd:     cmd,
		done:    make(chan struct{}),
	}
	go p.wait()
	logger.Debug("process started", "process", name, "pid", cmd.Process.Pid)
	return p, nil
}

// wait reaps the process, logs its exit and then closes done, so nothing
// is logged after a stop returns.
func (p *process) wait() {
	p.err = p.cmd.Wait()
	if p.stopped.Load() {
		p.logger.Debug("process exited", "process", p.name, "status", exitStatus(p.err))
	} else {
		p.logger.Warn("process exited unexpectedly", "process", p.name, "status", exitStatus(p.err), "log", p.logPath)
	}
	close(p.done)
}

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process group; it is a no-op once the process
// has exited.
func (p *process) signal(sig syscall.Signal) {
	if p.exited() {
		return
	}
	// A negative pid addresses the whole process group (Setpgid made the
	// child its leader), so helpers the child forked get the signal too.
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		p.logger.Warn("signal process", "process", p.name, "signal", sig.String(), "error", err.Error())
	}
}

// stop sends SIGTERM, waits up to grace (or until ctx is done), then sends
// SIGKILL and waits for the exit. It reports whether the process exited
// without SIGKILL. It is safe to call more than once and after the process
// has exited.
func (p *process) stop(ctx context.Context, grace time.Duration) (graceful bool) {
	p.stopped.Store(true)
	p.signal(syscall.SIGTERM)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		return true
	case <-timer.C:
	case <-ctx.Done():
	}
	p.logger.Warn("process did not stop after SIGTERM, killing it", "process", p.name)
	p.kill()
	return false
}

// kill sends SIGKILL to the process group and waits for the exit.
func (p *process) kill() {
	p.stopped.Store(true)
	p.signal(syscall.SIGKILL)
	<-p.done
}

// exitError describes why the process has exited, with the tail of its log.
// Call it only after done is closed.
func (p *process) exitError() error {
	return fmt.Errorf("%s exited (%s); last lines of %s:\n%s", p.name, exitStatus(p.err), p.logPath, tailFile(p.logPath, 20))
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// tailFile returns at most the last n lines of the file at path, or a note
// saying why it could not be read.
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer f.Close()
	const maxTail = 64 << 10
	if st, err := f.Stat(); err == nil && st.Size() > maxTail {
		_, _ = f.Seek(-maxTail, io.SeekEnd)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	b = bytes.TrimRight(b, "\n")
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// pollUntil calls check every interval until it returns nil, proc exits
// (when proc is not nil), or ctx is done. It returns the last check error
// wrapped with the reason it gave up.
func pollUntil(ctx context.Context, proc *process, interval time.Duration, check func(context.Context) error) error {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var done <-chan struct{}
	if proc != nil {
		done = proc.done
	}
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return proc.exitError()
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-ticker.C:
		}
	}
}
