//go:build unix && !linux

package stack

import "syscall"

// sysProcAttr puts the child in its own process group. Outside Linux there
// is no parent-death signal: children of a process killed with SIGKILL
// survive it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
