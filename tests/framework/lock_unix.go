//go:build unix

package framework

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive lock on path, waiting for it. go test runs
// packages in parallel processes; the lock makes them build a binary one at
// a time, so the first compiles and the rest find the go build cache warm
// instead of compiling the same packages side by side.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
