//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package queue

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockLocalConsumer takes an exclusive flock on path. The kernel drops it
// when the process dies, however it dies, so holding it proves that no other
// live consumer exists. The lock is a separate file: closing any descriptor
// of the database file would drop SQLite's own POSIX locks.
func lockLocalConsumer(path string) (unlock func() error, exclusive bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("open consumer lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, ErrLocalConsumerLocked
		}
		return nil, false, fmt.Errorf("take consumer lock: %w", err)
	}
	return f.Close, true, nil
}
