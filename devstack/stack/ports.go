package stack

import (
	"errors"
	"fmt"
	"net"
	"strconv"
)

// FreePorts returns n distinct TCP ports on 127.0.0.1 that were free when it
// returned. It holds all n listeners open at once so the ports differ, then
// closes them; another process may still take a port before the caller binds
// it, so callers that can retry should. It fails when the system has no free
// port or n < 0.
func FreePorts(n int) ([]int, error) {
	if n < 0 {
		return nil, fmt.Errorf("free ports: negative count %d", n)
	}
	ports := make([]int, 0, n)
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range listeners {
			_ = ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free ports: %w", err)
		}
		listeners = append(listeners, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// PortFree reports whether a listener can bind 127.0.0.1:port right now.
func PortFree(port int) bool {
	ln, err := net.Listen("tcp", hostPort(port))
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}

// portPicker hands out ports for one stack: the preferred port when asked
// for and free, otherwise a free one, never the same port twice.
type portPicker struct {
	used map[int]bool
}

func newPortPicker() *portPicker { return &portPicker{used: make(map[int]bool)} }

// pick returns preferred when it is > 0, unused and free, otherwise a free
// port that this picker has not handed out before.
func (p *portPicker) pick(preferred int) (int, error) {
	if preferred > 0 && !p.used[preferred] && PortFree(preferred) {
		p.used[preferred] = true
		return preferred, nil
	}
	for range 100 {
		ports, err := FreePorts(1)
		if err != nil {
			return 0, err
		}
		if !p.used[ports[0]] {
			p.used[ports[0]] = true
			return ports[0], nil
		}
	}
	return 0, errors.New("pick port: no unused free port after 100 tries")
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
