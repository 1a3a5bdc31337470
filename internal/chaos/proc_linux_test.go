//go:build linux

package chaos

import "syscall"

// dieWithTest has the kernel kill a started process if the test binary
// dies without stopping it (a panic or a test timeout).
func dieWithTest(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
