package awstest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pinlist/pinlist/internal/childproc"
)

// TestCloseLeavesNoProcessBehind starts a stand-in moto_server (a shell that
// leaves a child running and then becomes an HTTP server) and checks that
// Close ends both: the server by PID and its child through the process group.
func TestCloseLeavesNoProcessBehind(t *testing.T) {
	childPIDFile := filepath.Join(t.TempDir(), "child.pid")
	fakeMotoServer(t, `sleep 300 & echo $! > `+childPIDFile+`
exec python3 -m http.server --bind "$2" "$4"`)
	m, err := Start()
	if err != nil {
		t.Fatalf("start stand-in server: %v", err)
	}
	raw, err := os.ReadFile(childPIDFile)
	if err != nil {
		m.Close()
		t.Fatalf("read the stand-in's child PID: %v", err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		m.Close()
		t.Fatalf("parse child PID %q: %v", raw, err)
	}
	if !childproc.Running(m.PID()) || !childproc.Running(child) {
		m.Close()
		t.Fatalf("before Close: server %d running %v, child %d running %v; want both", m.PID(), childproc.Running(m.PID()), child, childproc.Running(child))
	}
	if err := m.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if childproc.Running(m.PID()) || childproc.Running(child) {
		t.Fatalf("after Close: server %d running %v, child %d running %v; want neither", m.PID(), childproc.Running(m.PID()), child, childproc.Running(child))
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}
