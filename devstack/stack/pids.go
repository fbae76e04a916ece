package stack

// PID returns the process id of a running child process: "redis",
// "clickhouse" or a service name. It returns 0 when the process is not
// running or the name is unknown. The broker runs inside this process
// (os.Getpid). Benchmarks read /proc/<pid> with it; the id changes when a
// process restarts.
func (s *Stack) PID(name string) int {
	var proc *process
	switch name {
	case "redis", "clickhouse":
		s.infraMu.Lock()
		proc = s.redis
		if name == "clickhouse" {
			proc = s.clickHouse
		}
		s.infraMu.Unlock()
	default:
		s.mu.Lock()
		svc, ok := s.services[name]
		s.mu.Unlock()
		if ok {
			proc = svc.running()
		}
	}
	if proc == nil || proc.exited() {
		return 0
	}
	return proc.cmd.Process.Pid
}
