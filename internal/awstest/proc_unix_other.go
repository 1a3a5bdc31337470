//go:build unix && !linux

package awstest

import "syscall"

// setParentDeathSignal does nothing where the kernel has no parent-death
// signal; Close still stops the process group.
func setParentDeathSignal(*syscall.SysProcAttr) {}
