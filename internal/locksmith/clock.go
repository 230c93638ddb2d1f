package locksmith

import "time"

// Clock is the daemon's view of time, injectable so tests can move it:
// reboot windows are judged by Now, and every wait of the daemon (for the
// next check, for a window, between lock attempts) is an After.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
