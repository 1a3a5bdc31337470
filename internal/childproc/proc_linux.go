//go:build linux

package childproc

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// setParentDeathSignal has the kernel kill the child if its parent dies
// without stopping it (a panic or a test timeout).
func setParentDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }

// Running reports whether pid is a live process; a zombie waiting for its
// parent counts as ended.
func Running(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	_, rest, ok := strings.Cut(string(stat), ") ")
	return ok && !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}
