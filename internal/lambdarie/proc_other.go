//go:build !linux

package lambdarie

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// setProcessGroup does nothing here: the emulator itself is stopped by PID
// and stops its bootstrap on the way out.
func setProcessGroup(*exec.Cmd) {}

func terminate(pid int) error { return kill(pid) }

func kill(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return nil
	}
	if err := p.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// Running reports whether pid is a process that can be signalled.
func Running(pid int) bool {
	p, err := os.FindProcess(pid)
	return err == nil && p.Signal(syscall.Signal(0)) == nil
}
