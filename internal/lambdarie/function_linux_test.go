package lambdarie

import (
	"testing"

	"github.com/pinlist/pinlist/internal/childproc"
)

// TestCloseStopsEmulatorAndBootstrap checks that Close ends both processes:
// the emulator by its PID and the bootstrap it started.
func TestCloseStopsEmulatorAndBootstrap(t *testing.T) {
	f := startEcho(t)
	var got echoResponse
	if err := f.InvokeJSON(t.Context(), map[string]string{"say": "hi"}, &got); err != nil {
		t.Fatalf("invoke: %v", err)
	}
	if got.PID == 0 || !childproc.Running(f.PID()) || !childproc.Running(got.PID) {
		t.Fatalf("before Close: emulator %d running %v, bootstrap %d running %v; want both",
			f.PID(), childproc.Running(f.PID()), got.PID, childproc.Running(got.PID))
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if childproc.Running(f.PID()) || childproc.Running(got.PID) {
		t.Errorf("after Close: emulator %d running %v, bootstrap %d running %v; want neither",
			f.PID(), childproc.Running(f.PID()), got.PID, childproc.Running(got.PID))
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
