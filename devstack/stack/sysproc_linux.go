package stack

import "syscall"

// sysProcAttr puts the child in its own process group (so a terminal's
// Ctrl-C reaches only us, and we stop children in order) and asks the kernel
// to SIGKILL it when the thread that started it dies. Go keeps its threads
// alive unless a goroutine exits while locked to one, so in practice the
// child dies with this process, even when this process is killed with
// SIGKILL. Redis (append-only file), ClickHouse and the services are all
// built to survive a SIGKILL.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
