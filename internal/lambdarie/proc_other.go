//go:build !linux

package lambdarie

import (
	"errors"
	"os"
	"os/exec"
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
