//go:build !unix

package childproc

import (
	"errors"
	"os"
	"os/exec"
)

// SetProcessGroup does nothing where there are no process groups: the child
// itself is stopped by PID.
func SetProcessGroup(*exec.Cmd) {}

// Terminate stops the process pid (no graceful signal here).
func Terminate(pid int) error { return Kill(pid) }

// Kill stops the process pid.
func Kill(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return nil
	}
	if err := p.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// Running reports whether pid is a process that can be found (on Windows,
// FindProcess fails for a process that has ended).
func Running(pid int) bool {
	_, err := os.FindProcess(pid)
	return err == nil
}
