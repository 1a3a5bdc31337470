package childproc

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestTailKeepsTheLastBytes(t *testing.T) {
	tail := NewTail(5)
	for _, s := range []string{"ab", "cdef", "gh"} {
		if n, err := tail.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got := tail.String(); got != "defgh" {
		t.Errorf("tail = %q, want %q", got, "defgh")
	}
}

func TestFreePortsAreDistinctAndFree(t *testing.T) {
	ports, err := FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("ports = %v, want three distinct ports", ports)
		}
		seen[p] = true
	}
}

// waitGone polls until pid has ended, bounded so a failure cannot hang.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for range 200 {
		if !Running(pid) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d still running", pid)
}

func TestTerminateStopsTheWholeGroup(t *testing.T) {
	// The shell starts a grandchild and prints its PID; both must go.
	cmd := exec.Command("sh", "-c", `sleep 60 & echo $!; wait`)
	out := NewTail(64)
	cmd.Stdout = out
	SetProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	var grandchild int
	for range 200 {
		if s := strings.TrimSpace(out.String()); s != "" {
			grandchild, _ = strconv.Atoi(s)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if grandchild == 0 || !Running(grandchild) || !Running(cmd.Process.Pid) {
		t.Fatalf("child %d / grandchild %d not running", cmd.Process.Pid, grandchild)
	}
	if err := Terminate(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	<-done
	waitGone(t, grandchild)
	// Signalling a group that is gone is not an error.
	if err := Kill(cmd.Process.Pid); err != nil {
		t.Errorf("Kill after exit = %v", err)
	}
}
