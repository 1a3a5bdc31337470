//go:build unix

package childproc

import (
	"errors"
	"os/exec"
	"syscall"
)

// SetProcessGroup makes cmd's process the leader of a new process group, so
// the whole group can be signalled by its PID and nothing it starts is left
// behind; on Linux the kernel also kills it if the parent dies first.
func SetProcessGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	setParentDeathSignal(cmd.SysProcAttr)
}

// signalGroup sends sig to the process group led by pid. A group that is
// already gone is not an error.
func signalGroup(pid int, sig syscall.Signal) error {
	err := syscall.Kill(-pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// Terminate sends SIGTERM to the process group led by pid.
func Terminate(pid int) error { return signalGroup(pid, syscall.SIGTERM) }

// Kill sends SIGKILL to the process group led by pid.
func Kill(pid int) error { return signalGroup(pid, syscall.SIGKILL) }
