package awstest

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// Lazy is the one moto_server of a test binary whose tests mostly do not need
// AWS: the first test that calls Get starts it, and MainLazy stops it. Fuzz
// workers, which run the same binary, then never start a server.
//
//	var moto awstest.Lazy
//
//	func TestMain(m *testing.M) { os.Exit(awstest.MainLazy(m, &moto)) }
type Lazy struct {
	once sync.Once
	srv  *Moto
	err  error
}

// Get returns the server, starting it on first use. A server that cannot
// start (for a missing moto_server: how to install it) fails t.
func (l *Lazy) Get(t testing.TB) *Moto {
	t.Helper()
	l.once.Do(func() { l.srv, l.err = Start() })
	if l.err != nil {
		t.Fatalf("start moto_server: %v", l.err)
	}
	return l.srv
}

// MainLazy runs the tests, then stops l's server if a test started it; it
// returns the exit code for os.Exit. Call it from TestMain.
func MainLazy(m *testing.M, l *Lazy) int {
	code := m.Run()
	if l.srv != nil {
		if err := l.srv.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL: stop moto_server:", err)
			code = max(code, 1)
		}
	}
	return code
}
