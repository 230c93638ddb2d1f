package framework

import (
	"fmt"
	"net"
	"sync"
	"testing"
)

// usedPorts holds every port this process has handed out. A member keeps its
// ports across Restart, so a port is never given to a second member of the
// same process even after the first one stopped. Other processes can still
// take a port between the probe below and the server binding it; Start
// recognises that failure and retries on fresh ports.
var (
	portsMu   sync.Mutex
	usedPorts = map[int]bool{}
)

// pickPort is freePort; tests replace it to force a port clash.
var pickPort = freePort

// freePort returns a 127.0.0.1 TCP port that the kernel reported free and that
// this process has not handed out before.
func freePort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !usedPorts[port] {
			usedPorts[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("no unused port after 100 tries")
}

// FreeURL returns an http URL on a free 127.0.0.1 port that this process
// has not handed out before, for a listener the test starts itself.
func FreeURL(t testing.TB) string {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}
