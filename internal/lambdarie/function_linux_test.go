package lambdarie

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestCloseStopsEmulatorAndBootstrap checks that Close ends both processes:
// the emulator by its PID and the bootstrap it started.
func TestCloseStopsEmulatorAndBootstrap(t *testing.T) {
	f := startEcho(t)
	var got echoResponse
	if err := f.InvokeJSON(t.Context(), map[string]string{"say": "hi"}, &got); err != nil {
		t.Fatalf("invoke: %v", err)
	}
	if got.PID == 0 || !running(f.PID()) || !running(got.PID) {
		t.Fatalf("before Close: emulator %d running %v, bootstrap %d running %v; want both",
			f.PID(), running(f.PID()), got.PID, running(got.PID))
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if running(f.PID()) || running(got.PID) {
		t.Errorf("after Close: emulator %d running %v, bootstrap %d running %v; want neither",
			f.PID(), running(f.PID()), got.PID, running(got.PID))
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// running reports whether pid is a live process (a zombie counts as ended).
func running(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, rest, ok := strings.Cut(string(stat), ") ")
	return ok && !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}
