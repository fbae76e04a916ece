package stack

import (
	"net"
	"testing"
)

func TestPortPicker(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	free, err := FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}

	p := newPortPicker()
	got, err := p.pick(free[0])
	if err != nil || got != free[0] {
		t.Fatalf("pick(free %d) = %d, %v; want the preferred port", free[0], got, err)
	}
	again, err := p.pick(free[0])
	if err != nil || again == free[0] {
		t.Fatalf("pick(%d) twice = %d, %v; want another port", free[0], again, err)
	}
	other, err := p.pick(busyPort)
	if err != nil || other == busyPort || other == again || other == free[0] {
		t.Fatalf("pick(busy %d) = %d, %v; want a new free port", busyPort, other, err)
	}
}
