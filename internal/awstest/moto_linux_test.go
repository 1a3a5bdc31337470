package awstest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
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
	if !running(m.PID()) || !running(child) {
		m.Close()
		t.Fatalf("before Close: server %d running %v, child %d running %v; want both", m.PID(), running(m.PID()), child, running(child))
	}
	if err := m.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if running(m.PID()) || running(child) {
		t.Fatalf("after Close: server %d running %v, child %d running %v; want neither", m.PID(), running(m.PID()), child, running(child))
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// running reports whether pid is a live process (a zombie waiting for its
// parent counts as ended).
func running(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	_, rest, ok := strings.Cut(string(stat), ") ")
	return ok && !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}
