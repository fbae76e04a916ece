//go:build !linux

package stack

import "errors"

// reniceThreads needs Linux, where a thread id can be given to
// setpriority; elsewhere it changes nothing and says so.
func reniceThreads(pid int, prefix string, nice int) (int, error) {
	return 0, errors.New("per-thread priority needs Linux")
}
