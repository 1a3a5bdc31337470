package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/pinlist/pinlist/internal/local"
	"github.com/pinlist/pinlist/internal/pinterestsim"
	"github.com/pinlist/pinlist/internal/token"
)

// buildPinlist builds this command into the test's temporary directory.
func buildPinlist(t *testing.T) string {
	t.Helper()
	gotool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is not on PATH (install Go from https://go.dev/dl/): %v", err)
	}
	bin := filepath.Join(t.TempDir(), "pinlist")
	args := append(append([]string{"build"}, buildFlags...), "-o", bin, ".")
	if out, err := exec.Command(gotool, args...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// proc is a pinlist process the test started, with its stdout and stderr
// captured.
type proc struct {
	cmd    *exec.Cmd
	banner map[string]string // banner lines "key: value"
	stdout *syncBuffer
	stderr string // file
	exited chan struct{}
}

// startProc runs the pinlist binary with args and env until its banner's
// line lastKey; it is killed by PID when the test ends.
func startProc(t *testing.T, bin string, env []string, lastKey string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errFile, err := os.CreateTemp(t.TempDir(), args[0]+"-stderr-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = errFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, banner: map[string]string{}, stdout: &syncBuffer{}, stderr: errFile.Name(), exited: make(chan struct{})}
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // by PID; harmless when it has exited
		<-p.exited
		errFile.Close()
		if t.Failed() {
			logs, _ := os.ReadFile(p.stderr)
			t.Logf("pinlist %s (pid %d) stdout:\n%s\nstderr:\n%s", args[0], cmd.Process.Pid, p.stdout, logs)
		}
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.stdout.Write([]byte(sc.Text() + "\n"))
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(p.exited)
	}()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				logs, _ := os.ReadFile(p.stderr)
				t.Fatalf("pinlist %s exited before its banner was complete:\n%s\n%s", args[0], p.stdout, logs)
			}
			if key, value, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
				p.banner[key] = strings.TrimSpace(value)
				if key == lastKey {
					go func() {
						for range lines {
						}
					}()
					return p
				}
			}
		case <-timeout:
			t.Fatalf("no banner from pinlist %s within 30s:\n%s", args[0], p.stdout)
		}
	}
}

// kill sends SIGKILL to the process (by PID) and waits for it to die.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill pid %d: %v", p.cmd.Process.Pid, err)
	}
	<-p.exited
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signal pid %d: %v", p.cmd.Process.Pid, err)
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("pid %d did not exit within 30s of SIGTERM", p.cmd.Process.Pid)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("pinlist %s exited with %d after SIGTERM, want 0", p.cmd.Args[1], code)
	}
}

// freeAddr returns a loopback address with a port free right now, for a
// process that must listen on the same address twice.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// crashEvent is one membership sent in the crash test's stream.
type crashEvent struct {
	audience, ns, id string
	exited           bool
	at               time.Time
}

// hashIdentity maps an identity as ARCHITECTURE.md says, written out again
// for the test: emails trimmed and lowercased, GAIDs lowercased, IDFAs
// uppercased, then SHA-256 hex.
func hashIdentity(ns, id string) (listType, hash string) {
	switch ns {
	case "email":
		listType, id = "EMAIL", strings.ToLower(strings.TrimSpace(id))
	case "gaid":
		listType, id = "MAID", strings.ToLower(id)
	case "idfa":
		listType, id = "IDFA", strings.ToUpper(id)
	}
	sum := sha256.Sum256([]byte(id))
	return listType, hex.EncodeToString(sum[:])
}

// crashStream makes n request bodies: people join and leave four audiences
// across requests, with event times rising through the stream. It returns
// the bodies, the expected membership ("ns:id TYPE" → sorted hashes; the
// latest event wins) and the plain emails sent.
func crashStream(n, perBody int) ([][]byte, map[string][]string, []string) {
	audiences := []string{"aaaaaaaa-0000-4000-8000-000000000001", "aaaaaaaa-0000-4000-8000-000000000002",
		"aaaaaaaa-0000-4000-8000-000000000003", "aaaaaaaa-0000-4000-8000-000000000004"}
	type person struct{ ids [][2]string }
	var people []person
	for i := range 60 {
		p := person{ids: [][2]string{{"email", fmt.Sprintf(" Crash.Person%d@Example.com", i)}}}
		if i%2 == 0 {
			p.ids = append(p.ids, [2]string{"gaid", fmt.Sprintf("%08x-1111-4222-8333-%012x", i, i*31)})
		}
		if i%3 == 0 {
			p.ids = append(p.ids, [2]string{"idfa", fmt.Sprintf("%08X-4444-4555-8666-%012X", i, i*37)})
		}
		people = append(people, p)
	}
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	latest := map[string]bool{} // "aud TYPE hash" → member
	var bodies [][]byte
	k := 0
	for b := range n {
		var profiles []any
		for j := range perBody {
			k++
			p := people[(b*7+j*11)%len(people)]
			at := start.Add(time.Duration(k) * time.Minute)
			segs := map[string]any{}
			for a, aud := range audiences {
				if (b+j+a)%3 == 0 {
					continue
				}
				status := "realized"
				if (b*j+a)%4 == 1 {
					status = "exited"
				}
				segs[aud] = map[string]string{"status": status, "lastQualificationTime": at.Format(time.RFC3339)}
				for _, id := range p.ids {
					lt, h := hashIdentity(id[0], id[1])
					latest["ups:"+aud+" "+lt+" "+h] = status != "exited"
				}
			}
			idMap := map[string][]map[string]string{}
			for _, id := range p.ids {
				idMap[id[0]] = append(idMap[id[0]], map[string]string{"id": id[1]})
			}
			profiles = append(profiles, map[string]any{"identityMap": idMap, "segmentMembership": map[string]any{"ups": segs}})
		}
		body, _ := json.Marshal(map[string]any{"profiles": profiles})
		bodies = append(bodies, body)
	}
	want := map[string][]string{}
	for k, in := range latest {
		if in {
			i := strings.LastIndexByte(k, ' ')
			want[k[:i]] = append(want[k[:i]], k[i+1:])
		}
	}
	for _, v := range want {
		slices.Sort(v)
	}
	var emails []string
	for _, p := range people {
		emails = append(emails, strings.TrimSpace(p.ids[0][1]))
	}
	return bodies, want, emails
}

// simLists reads the simulator's non-empty pinlist lists: "ns:id TYPE" →
// sorted hashes.
func simLists(t *testing.T, simRoot, adAccount string) map[string][]string {
	t.Helper()
	var st pinterestsim.State
	if err := getJSON(simRoot+"/_sim/state", &st); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, l := range st.AdAccounts[adAccount].CustomerLists {
		rest, ok := strings.CutPrefix(l.Name, "pinlist ")
		if !ok {
			t.Fatalf("list %q is not one of pinlist's", l.Name)
		}
		f := strings.Fields(rest)
		key := f[0] + " " + f[1]
		if _, dup := got[key]; dup {
			t.Fatalf("two lists for %s", key)
		}
		if len(l.Records) > 0 {
			got[key] = l.Records
		}
	}
	return got
}

// getJSON decodes the JSON answer to GET url into out.
func getJSON(url string, out any) error {
	resp, err := http.Get(url)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// TestServeSurvivesSIGKILL runs `pinlist serve` as a real process against a
// separate `pinlist sim`, posts a stream of bodies, SIGKILLs serve in the
// middle of the stream (requests and batches in flight), starts it again on
// the same data directory, and checks that the simulator ends with exactly
// the membership the stream implies. A request the kill cut off is sent
// again, as a caller does. Then neither the SQLite files nor the logs hold
// a plain email, and status shows an empty queue.
func TestServeSurvivesSIGKILL(t *testing.T) {
	const (
		accessToken  = "crash-test-access-token"
		clientID     = "crash-test-client"
		clientSecret = "crash-test-secret"
		ingestToken  = "crash-test-ingest-token"
		adAccount    = "549755885175"
		bodiesTotal  = 40
		applyFirst   = 8  // bodies applied (in part) before the rest come
		killAfter    = 20 // bodies accepted when serve is killed
	)
	bin := buildPinlist(t)
	sim := startProc(t, bin, nil, "example", "sim", "--addr", "127.0.0.1:0", "--ad-account", adAccount,
		"--access-token", accessToken, "--client-id", clientID, "--client-secret", clientSecret, "--write-limit", "0")
	simRoot := sim.banner["inspect"]
	simRoot = strings.TrimSuffix(simRoot, "/_sim/state")
	if !strings.HasPrefix(simRoot, "http://127.0.0.1:") {
		t.Fatalf("simulator banner %v has no inspect URL", sim.banner)
	}
	// Every customer list update takes a while: work piles up in the queue.
	fault, _ := json.Marshal(pinterestsim.FaultSpec{Route: pinterestsim.RouteCustomerListsUpdate, LatencyMS: 25})
	resp, err := http.Post(simRoot+"/_sim/faults", "application/json", bytes.NewReader(fault))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	dataDir := filepath.Join(t.TempDir(), "data")
	now := time.Now()
	err = token.FileStore{Path: local.TokenPath(dataDir)}.Save(context.Background(), token.Token{
		ClientID: clientID, ClientSecret: clientSecret,
		AccessToken: accessToken, RefreshToken: "not-used-in-this-test",
		AccessTokenExpiresAt: now.Add(29 * 24 * time.Hour), RefreshTokenExpiresAt: now.Add(59 * 24 * time.Hour),
		Scope: "ads:read,ads:write", AdAccountID: adAccount,
	})
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	env := []string{"PINLIST_INGEST_TOKEN=" + ingestToken, "PINTEREST_API_BASE_URL=", "PINLIST_DATA_DIR=", "PINLIST_ADDR="}
	serveArgs := []string{"serve", "--addr", addr, "--pinterest-url", simRoot + "/v5", "--data-dir", dataDir,
		"--write-rate", "0", "--progress-every", "100ms"}
	serve1 := startProc(t, bin, env, "status", serveArgs...)
	if got := serve1.banner["ingest"]; !strings.HasPrefix(got, "http://"+addr) {
		t.Fatalf("serve banner says ingest %q, want http://%s", got, addr)
	}

	bodies, want, emails := crashStream(bodiesTotal, 8)
	killNow := make(chan struct{})
	afterAccepted := func(i int) {
		switch i {
		case applyFirst - 1:
			// Let serve apply part of the stream before more comes: the
			// flusher's first calls (lists are created with their first
			// records, so creates count as well as updates).
			waitUntil(t, "the first changes applied", func() bool {
				var calls map[string]int
				return getJSON(simRoot+"/_sim/calls", &calls) == nil &&
					calls[pinterestsim.RouteCustomerListsCreate]+calls[pinterestsim.RouteCustomerListsUpdate] >= 4
			})
		case killAfter - 1:
			close(killNow)
		}
	}
	posted := make(chan error, 1)
	go func() { posted <- postAll("http://"+addr+"/v1/profiles", ingestToken, bodies, afterAccepted) }()
	select {
	case <-killNow:
	case err := <-posted:
		t.Fatalf("the stream ended before the kill: %v", err)
	}
	serve1.kill(t)
	if code := serve1.cmd.ProcessState.Sys().(syscall.WaitStatus); !code.Signaled() || code.Signal() != syscall.SIGKILL {
		t.Fatalf("serve ended with %v, not by SIGKILL", serve1.cmd.ProcessState)
	}
	t.Logf("after SIGKILL: %s", statusJSON(t, bin, dataDir, simRoot)["queue"])

	serve2 := startProc(t, bin, env, "status", serveArgs...)
	if err := <-posted; err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for got := simLists(t, simRoot, adAccount); !cmp.Equal(got, want, cmpopts.EquateEmpty()); got = simLists(t, simRoot, adAccount) {
		if time.Now().After(deadline) {
			t.Fatalf("the simulator's lists never matched the stream (-want +got):\n%s", cmp.Diff(want, got, cmpopts.EquateEmpty()))
		}
		time.Sleep(50 * time.Millisecond)
	}

	st := statusJSON(t, bin, dataDir, simRoot)
	var q struct{ Depth, DeadLetters int }
	if err := json.Unmarshal(st["queue"], &q); err != nil || q.Depth != 0 || q.DeadLetters != 0 {
		t.Errorf("status queue = %s (%v), want empty with no dead letters", st["queue"], err)
	}
	serve2.stop(t)

	// Privacy: the queue's files and every log and line printed.
	var sources []string
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		sources = append(sources, filepath.Join(dataDir, e.Name()))
	}
	sources = append(sources, serve1.stderr, serve2.stderr)
	if !slices.Contains(sources, filepath.Join(dataDir, local.QueueFile)) {
		t.Fatalf("no queue database among %v", sources)
	}
	for _, f := range sources {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		assertNoEmails(t, filepath.Base(f), b, emails)
	}
	assertNoEmails(t, "serve stdout", []byte(serve1.stdout.String()+serve2.stdout.String()), emails)
}

func assertNoEmails(t *testing.T, name string, b []byte, emails []string) {
	t.Helper()
	lower := bytes.ToLower(b)
	for _, e := range emails {
		if bytes.Contains(lower, []byte(strings.ToLower(e))) {
			t.Errorf("%s contains the plain email %q", name, e)
		}
	}
}

// postAll posts bodies in order, each until it is accepted: a request that
// fails (the server was killed, or is starting again) is sent again, as AEP
// retries. It calls afterAccepted(i) once body i is accepted.
func postAll(url, tok string, bodies [][]byte, afterAccepted func(i int)) error {
	client := &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(90 * time.Second)
	for i, b := range bodies {
		for {
			req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					break
				}
				if resp.StatusCode < 500 {
					return fmt.Errorf("body %d: status %d", i, resp.StatusCode)
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("body %d never accepted (last error %v)", i, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		afterAccepted(i)
	}
	return nil
}

// waitUntil polls cond until it holds, failing after a bound with what. It
// may run on any goroutine: it reports with t.Error and then stops waiting.
func waitUntil(t *testing.T, what string, cond func() bool) {
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Errorf("timed out waiting for %s", what)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// statusJSON runs `pinlist status --json` on the data directory.
func statusJSON(t *testing.T, bin, dataDir, simRoot string) map[string]json.RawMessage {
	t.Helper()
	cmd := exec.Command(bin, "status", "--json", "--data-dir", dataDir, "--pinterest-url", simRoot+"/v5")
	cmd.Env = append(os.Environ(), "PINTEREST_API_BASE_URL=", "PINLIST_DATA_DIR=")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pinlist status: %v\n%s", err, out)
	}
	var st map[string]json.RawMessage
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("pinlist status --json: %v\n%s", err, out)
	}
	return st
}
