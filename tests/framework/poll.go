package framework

import (
	"testing"
	"time"
)

// Poll calls cond every 50ms until it returns nil, and fails the test with
// cond's last error, naming what it waited for, after d.
func Poll(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not done after %v: %v", what, d, err)
		}
		<-tick.C
	}
}
