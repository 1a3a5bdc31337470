//go:build unix && !linux

package childproc

import (
	"os"
	"syscall"
)

// setParentDeathSignal does nothing where the kernel has no parent-death
// signal; stopping by PID still stops the process group.
func setParentDeathSignal(*syscall.SysProcAttr) {}

// Running reports whether pid is a process that can be signalled.
func Running(pid int) bool {
	p, err := os.FindProcess(pid)
	return err == nil && p.Signal(syscall.Signal(0)) == nil
}
