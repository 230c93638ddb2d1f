package framework

import (
	"net"
	"strings"
	"testing"
)

// TestStartRetriesOnPortClash hands the first member a client port that is
// already bound, as if another process took it between the probe and the
// bind, and checks that Start notices and retries on fresh ports.
func TestStartRetriesOnPortClash(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port

	first := true
	pickPort = func() (int, error) {
		if first {
			first = false
			return takenPort, nil
		}
		return freePort()
	}
	defer func() { pickPort = freePort }()

	m := Start(t, Config{Binary: EtcdBinary(t)})
	if m.client == takenPort {
		t.Fatalf("member kept the taken port %d", takenPort)
	}
	if !strings.Contains(m.Logs(), "address already in use") {
		t.Errorf("expected the first attempt to fail on the taken port; log:\n%s", m.Logs())
	}
}
