//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package queue

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// localChildEnv makes this test binary a child process that uses a local
// queue and then dies by SIGKILL: "<mode>:<database path>". The child runs
// from init, before TestMain (which starts moto_server for the SQS tests), so
// it starts nothing else and leaves nothing behind when it is killed.
const localChildEnv = "PINLIST_LOCAL_QUEUE_CHILD"

const (
	localChildGroups   = 4
	localChildMessages = 120     // mode "inflight"
	localChildCap      = 200_000 // mode "stream" stops here if never killed
)

func init() {
	spec, ok := os.LookupEnv(localChildEnv)
	if !ok {
		return
	}
	mode, path, _ := strings.Cut(spec, ":")
	if err := runLocalChild(mode, path); err != nil {
		fmt.Fprintln(os.Stderr, "local queue child:", err)
		os.Exit(3)
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// localChildBody is message i of the child's stream: groups g0..g3 in turn.
func localChildMessage(i int) Outgoing {
	g := "g" + strconv.Itoa(i%localChildGroups)
	return Outgoing{GroupID: g, Body: []byte(fmt.Sprintf("%s/%06d", g, i))}
}

// runLocalChild reports on stdout, one line per committed step, what it did:
// "sent N" (messages 0..N-1 are committed), "received B..." (bodies now in
// flight), "deleted B...".
func runLocalChild(mode, path string) error {
	ctx := context.Background()
	l, err := OpenLocal(ctx, LocalOptions{Path: path, Consumer: true})
	if err != nil {
		return err
	}
	sendUpTo := func(n int) error {
		for i := 0; i < n; i += MaxBatch {
			var batch []Outgoing
			for j := i; j < i+MaxBatch; j++ {
				batch = append(batch, localChildMessage(j))
			}
			if _, err := l.SendBatch(ctx, batch); err != nil {
				return err
			}
			fmt.Printf("sent %d\n", i+MaxBatch)
		}
		return nil
	}
	switch mode {
	case "stream": // until the parent kills it
		return sendUpTo(localChildCap)
	case "inflight": // sends, leaves batches in flight, kills itself
		if err := sendUpTo(localChildMessages); err != nil {
			return err
		}
		var batches []Batch
		for range 3 {
			b, err := l.ReceiveGroupBatch(ctx, 5)
			if err != nil {
				return err
			}
			fmt.Printf("received %s\n", strings.Join(bodies(b), " "))
			batches = append(batches, b)
		}
		if err := l.Delete(ctx, receipts(batches[0].Messages)...); err != nil {
			return err
		}
		fmt.Printf("deleted %s\n", strings.Join(bodies(batches[0]), " "))
		return nil
	}
	return fmt.Errorf("unknown mode %q", mode)
}

func TestLocalRestartAfterKill(t *testing.T) {
	tests := []struct {
		name string
		mode string
		// killAfter is how many "sent" lines the parent reads before it
		// kills the child; 0: the child kills itself.
		killAfter int
	}{
		{name: "killed itself with batches in flight", mode: "inflight"},
		{name: "killed by the parent while sending", mode: "stream", killAfter: 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "queue.db")
			report := runLocalChildProcess(t, tt.mode, path, tt.killAfter)

			l, err := OpenLocal(context.Background(), LocalOptions{Path: path, Consumer: true})
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			defer l.Close()
			// No clock moves and the visibility timeout is 30 s: whatever
			// the dead child had in flight must come back at once.
			got := map[string][]string{}
			gotCounts := map[string]int{}
			for {
				b := receive(t, l, MaxBatch)
				if len(b.Messages) == 0 {
					break
				}
				for _, m := range b.Messages {
					got[b.GroupID] = append(got[b.GroupID], string(m.Body))
					gotCounts[string(m.Body)] = m.ReceiveCount
				}
				deleteAll(t, l, b)
			}

			// The child may have committed more than it reported before it
			// died, but only whole batches, in order.
			committed := 0
			for _, bs := range got {
				committed += len(bs)
			}
			committed += len(report.deleted)
			if committed < report.sent || committed%MaxBatch != 0 {
				t.Fatalf("%d messages committed (delivered or deleted), child reported %d sent", committed, report.sent)
			}
			want := map[string][]string{}
			for i := range committed {
				m := localChildMessage(i)
				if !report.deleted[string(m.Body)] {
					want[m.GroupID] = append(want[m.GroupID], string(m.Body))
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("delivered after restart (-want +got):\n%s", diff)
			}
			for body, count := range gotCounts {
				wantCount := 1
				if report.inFlight[body] {
					wantCount = 2
				}
				if count != wantCount {
					t.Errorf("%s: receive count %d, want %d", body, count, wantCount)
				}
			}
			if tt.mode == "inflight" && len(report.inFlight) == 0 {
				t.Error("the child left nothing in flight: the test proves less than it should")
			}
		})
	}
}

type localChildReport struct {
	sent     int
	inFlight map[string]bool // received and not deleted
	deleted  map[string]bool
}

// runLocalChildProcess runs this test binary as a child in mode, kills it
// after killAfter "sent" lines (or lets it kill itself), checks it died by
// SIGKILL and returns what it reported.
func runLocalChildProcess(t *testing.T, mode, path string, killAfter int) localChildReport {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), localChildEnv+"="+mode+":"+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	pid := cmd.Process.Pid
	watchdog := time.AfterFunc(2*time.Minute, func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	defer watchdog.Stop()

	r := localChildReport{inFlight: map[string]bool{}, deleted: map[string]bool{}}
	sentLines := 0
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		verb, rest, _ := strings.Cut(sc.Text(), " ")
		switch verb {
		case "sent":
			n, err := strconv.Atoi(rest)
			if err != nil {
				t.Errorf("child line %q: %v", sc.Text(), err)
			}
			r.sent = n
			sentLines++
			if sentLines == killAfter {
				if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
					t.Errorf("kill child %d: %v", pid, err)
				}
			}
		case "received":
			for _, b := range strings.Fields(rest) {
				r.inFlight[b] = true
			}
		case "deleted":
			for _, b := range strings.Fields(rest) {
				delete(r.inFlight, b)
				r.deleted[b] = true
			}
		}
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("child ended with %v, want death by SIGKILL; stderr:\n%s", err, stderr.String())
	}
	ws, ok := exit.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want death by SIGKILL; stderr:\n%s", err, stderr.String())
	}
	if r.sent == 0 || (killAfter > 0 && sentLines < killAfter) {
		t.Fatalf("child reported %d sent in %d lines before dying; stderr:\n%s", r.sent, sentLines, stderr.String())
	}
	if mode == "inflight" && len(r.deleted) == 0 {
		t.Fatalf("child deleted nothing; stderr:\n%s", stderr.String())
	}
	return r
}

func TestLocalConsumerLock(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "queue.db")
	clock := newLocalClock()
	opts := LocalOptions{Path: path, Consumer: true, Now: clock.Now}
	a, err := OpenLocal(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	send(t, a, msgs("a", 0, 3)...)
	first := receive(t, a, 2)

	if _, err := OpenLocal(ctx, opts); !errors.Is(err, ErrLocalConsumerLocked) {
		t.Errorf("second consumer: err = %v, want ErrLocalConsumerLocked", err)
	}
	reader, err := OpenLocal(ctx, LocalOptions{Path: path, Now: clock.Now})
	if err != nil {
		t.Fatalf("reader beside a consumer: %v", err)
	}
	if _, err := reader.ReceiveGroupBatch(ctx, 1); !errors.Is(err, ErrLocalNotConsumer) {
		t.Errorf("reader receive: err = %v, want ErrLocalNotConsumer", err)
	}
	if err := reader.Delete(ctx, receipts(first.Messages)...); !errors.Is(err, ErrLocalNotConsumer) {
		t.Errorf("reader delete: err = %v, want ErrLocalNotConsumer", err)
	}
	// The reader takes nothing over: the batch is still in flight.
	if s := stats(t, reader); s.InFlight != 2 || s.Queued != 1 {
		t.Errorf("reader Stats = %+v, want 2 in flight, 1 queued", s)
	}
	if err := reader.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	// The next consumer returns the dead one's batch at once, with no clock
	// movement.
	b, err := OpenLocal(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	next := receive(t, b, 10)
	if diff := cmp.Diff([]string{"a/0000", "a/0001", "a/0002"}, bodies(next)); diff != "" {
		t.Errorf("after takeover (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{2, 2, 1}, counts(next)); diff != "" {
		t.Errorf("receive counts after takeover (-want +got):\n%s", diff)
	}
}
