package framework

import "syscall"

// sysProcAttr makes the kernel kill a member when the test process dies, so
// an interrupted go test leaves no servers behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
