// Package childproc runs helper servers — moto_server, the Lambda Runtime
// Interface Emulator, pinlist itself — as child processes the way tests and
// local tooling need them: each in its own process group so that it and
// everything it starts are stopped by its PID, killed by the kernel if the
// parent dies without stopping it (Linux), on free 127.0.0.1 ports, with the
// tail of its output kept for error messages.
package childproc

import (
	"fmt"
	"net"
	"sync"
)

// FreePorts asks the kernel for n distinct free 127.0.0.1 ports. They are
// released before the caller's child binds them, so another process can take
// one in between: a caller that cannot tolerate that retries on "address
// already in use".
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free 127.0.0.1 port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// FreePort is FreePorts(1).
func FreePort() (int, error) {
	ports, err := FreePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// Tail is an io.Writer that keeps the last Max bytes written to it; safe for
// concurrent writers (a child's stdout and stderr).
type Tail struct {
	Max int

	mu  sync.Mutex
	buf []byte
}

// NewTail returns a Tail keeping max bytes.
func NewTail(max int) *Tail { return &Tail{Max: max} }

func (b *Tail) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.Max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

// String is what the tail holds now.
func (b *Tail) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
