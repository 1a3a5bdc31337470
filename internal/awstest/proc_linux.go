//go:build linux

package awstest

import "syscall"

// setParentDeathSignal has the kernel kill the server if the test binary dies
// without running Close (a panic or a test timeout).
func setParentDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
