package stack

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// reniceThreads sets the nice value (-20..19; 19 is the lowest priority)
// of every thread of process pid whose name (/proc/<pid>/task/<tid>/comm)
// starts with prefix, and returns how many it set. Linux applies
// setpriority(PRIO_PROCESS, tid) to that one thread, so the process's
// other threads keep their priority. Threads started later are not
// changed. It returns an error when the task list cannot be read or a
// matching thread refuses the new value (a thread that exited meanwhile is
// skipped).
func reniceThreads(pid int, prefix string, nice int) (int, error) {
	taskDir := filepath.Join("/proc", strconv.Itoa(pid), "task")
	tasks, err := os.ReadDir(taskDir)
	if err != nil {
		return 0, fmt.Errorf("threads of %d: %w", pid, err)
	}
	n := 0
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(taskDir, task.Name(), "comm"))
		if err != nil {
			continue // exited since ReadDir
		}
		name := strings.TrimSpace(string(comm))
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil {
			if errors.Is(err, syscall.ESRCH) {
				continue
			}
			return n, fmt.Errorf("nice %d for thread %d (%s) of %d: %w", nice, tid, name, pid, err)
		}
		n++
	}
	return n, nil
}
