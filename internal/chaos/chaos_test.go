package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/pinlist/pinlist/internal/loadgen"
	"github.com/pinlist/pinlist/internal/local"
	"github.com/pinlist/pinlist/internal/token"
)

// The chaos run's settings.
const (
	chaosRequests    = 240
	chaosPace        = 70 * time.Millisecond // between requests: the run spans ~17s
	chaosMaxRecords  = 40                    // per Pinterest call: many calls, many faults
	chaosIngestToken = "chaos-ingest-token"
	chaosAdAccount   = "549755885175"
	chaosClientID    = "chaos-client"
	chaosSecret      = "chaos-client-secret"
)

// Where in the stream things go wrong.
const (
	firstKill   = 70  // serve is SIGKILLed while this request is in flight
	expireAt    = 120 // every access token expires before this request
	secondKill  = 170
	settleLimit = 90 * time.Second // for the lists to reach the expected membership after the stream
)

// TestChaos runs `pinlist serve` and `pinlist sim` as separate processes and
// streams audience changes through them while the simulator answers 10 % of
// calls with 500 and 10 % with 429 and Retry-After, adds latency spikes,
// expires every access token once, and serve is SIGKILLed twice and
// restarted on the same data directory. Afterwards the simulator's lists
// must equal the membership the oracle computes from the accepted bodies,
// the queue must be empty with no dead letters, and every 202 must account
// for each identity it received: activated, excluded or failed.
func TestChaos(t *testing.T) {
	ctx := t.Context()
	simAddr := freeAddr(t)
	startProc(t, "pinlist sim", nil, "sim", "--addr", simAddr, "--ad-account", chaosAdAccount,
		"--client-id", chaosClientID, "--client-secret", chaosSecret, "--seed", "8",
		"--max-records", strconv.Itoa(chaosMaxRecords), "--write-limit", "0") // faults, not the budget
	simRoot := "http://" + simAddr
	sim := loadgen.NewSim(simRoot, chaosAdAccount)
	readyCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := sim.WaitReady(readyCtx); err != nil {
		t.Fatalf("the simulator did not start: %v", err)
	}

	// The token serve starts with, as pinlist connect would store it.
	data := dataDir(t)
	tokenPath := local.TokenPath(data)
	out, err := exec.Command(pinlistBin, "load", "--sim-url", simRoot, "--provision-token", tokenPath,
		"--client-id", chaosClientID, "--client-secret", chaosSecret, "--ad-account", chaosAdAccount).CombinedOutput()
	if err != nil {
		t.Fatalf("pinlist load --provision-token: %v\n%s", err, out)
	}
	provisioned, err := token.FileStore{Path: tokenPath}.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}

	faults := loadgen.Fault{Route: "*", Rate500: 0.10, Rate429: 0.10, RetryAfterSeconds: 1}
	if err := sim.SetFault(ctx, faults); err != nil {
		t.Fatal(err)
	}
	stopSpikes := latencySpikes(t, sim, faults)

	addr := freeAddr(t)
	env := []string{"PINLIST_INGEST_TOKEN=" + chaosIngestToken, "PINLIST_MAX_RECORDS_PER_REQUEST=" + strconv.Itoa(chaosMaxRecords),
		"PINTEREST_API_BASE_URL=", "PINLIST_DATA_DIR=", "PINLIST_ADDR=", "PINTEREST_AD_ACCOUNT_ID="}
	serveArgs := []string{"serve", "--addr", addr, "--pinterest-url", simRoot + "/v5", "--data-dir", data,
		"--write-rate", "0", "--progress-every", "1s"}
	ingest := loadgen.NewIngest("http://"+addr, chaosIngestToken)
	var serves []*proc
	startServe := func() *proc {
		p := startProc(t, "pinlist serve #"+strconv.Itoa(len(serves)+1), env, serveArgs...)
		serves = append(serves, p)
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := ingest.WaitReady(ctx); err != nil {
			t.Fatalf("%s did not start: %v", p.name, err)
		}
		return p
	}
	serve := startServe()

	oracle := loadgen.NewOracle()
	var totals struct{ received, activated, excluded, failed, changes, accepted int }
	// accepted checks one 202 against the request's construction and the
	// oracle, and applies the body to the oracle.
	accepted := func(i int, req chaosRequest, a *loadgen.Accepted) {
		t.Helper()
		st, err := oracle.AddBody(req.body, time.Now())
		if err != nil {
			t.Fatalf("request %d: the server accepted a body the oracle refuses: %v", i, err)
		}
		nonZero := cmpopts.EquateEmpty()
		if diff := cmp.Diff(req.excluded, a.Excluded, nonZero); diff != "" {
			t.Errorf("request %d: excluded (-made +reported):\n%s", i, diff)
		}
		if diff := cmp.Diff(req.failed, a.Failed, nonZero); diff != "" {
			t.Errorf("request %d: failed (-made +reported):\n%s", i, diff)
		}
		if got := a.Activated + sum(a.Excluded) + sum(a.Failed); got != req.identities {
			t.Errorf("request %d: %d activated + %d excluded + %d failed = %d, but %d identities were sent",
				i, a.Activated, sum(a.Excluded), sum(a.Failed), got, req.identities)
		}
		if a.Activated != st.Activated || a.ChangesEnqueued != st.Changes {
			t.Errorf("request %d: %d activated and %d changes enqueued; the oracle counts %d and %d",
				i, a.Activated, a.ChangesEnqueued, st.Activated, st.Changes)
		}
		totals.received += req.identities
		totals.activated += a.Activated
		totals.excluded += sum(a.Excluded)
		totals.failed += sum(a.Failed)
		totals.changes += a.ChangesEnqueued
		totals.accepted++
	}
	// send posts a body until it is accepted, as a caller retries: after a
	// lost connection or a 503.
	send := func(i int, req chaosRequest) {
		t.Helper()
		for attempt := 1; ; attempt++ {
			a, err := ingest.PostProfiles(ctx, req.body)
			if err == nil && a.Status == http.StatusAccepted {
				accepted(i, req, a.Accepted)
				return
			}
			if err == nil && a.Status != http.StatusServiceUnavailable {
				t.Fatalf("request %d: HTTP %d: %s", i, a.Status, a.Body)
			}
			if attempt == 20 || serve.exited() {
				t.Fatalf("request %d: not accepted after %d attempts (serve exited: %v): %v %s", i, attempt, serve.exited(), err, a.Body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	stream := chaosStream(1, chaosRequests)
	start := time.Now()
	for i, req := range stream {
		switch i {
		case expireAt:
			if err := sim.ExpireTokens(ctx); err != nil {
				t.Fatal(err)
			}
		case firstKill, secondKill:
			serve = killDuring(t, serve, startServe, func() bool {
				a, err := ingest.PostProfiles(ctx, req.body)
				if err != nil || a.Status != http.StatusAccepted {
					return false // cut off by the kill: sent again below
				}
				accepted(i, req, a.Accepted)
				return true
			}, func() { send(i, req) })
			continue
		}
		send(i, req)
		if req.retryNow {
			send(i, req)
		}
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * chaosPace)))
	}
	stopSpikes()
	t.Logf("stream done in %s: %d requests accepted; %d identities received = %d activated + %d excluded + %d failed; %d changes enqueued",
		time.Since(start).Round(time.Millisecond), totals.accepted, totals.received, totals.activated, totals.excluded, totals.failed, totals.changes)
	if totals.received != totals.activated+totals.excluded+totals.failed {
		t.Errorf("received %d identities, but %d activated + %d excluded + %d failed", totals.received, totals.activated, totals.excluded, totals.failed)
	}
	if totals.excluded == 0 || totals.failed == 0 || totals.changes == 0 {
		t.Errorf("the stream should exclude, fail and change something: %+v", totals)
	}

	// Every accepted change reaches Pinterest, faults still on. When it
	// does not, say first what the server's state shows.
	diff := settle(t, sim, oracle, settleLimit)
	st := drained(t, data, simRoot, 30*time.Second)
	refreshed, err := token.FileStore{Path: tokenPath}.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if refreshed.AccessToken == provisioned.AccessToken || !refreshed.RefreshedAt.After(provisioned.RefreshedAt) {
		t.Errorf("pinlist serve never refreshed the access token after the simulator expired it (stored token refreshed at %s): "+
			"uploads get 401 until a person reconnects or the token is due by its stored expiry", refreshed.RefreshedAt.Format(time.RFC3339))
	}
	if st.Queue == nil || st.Queue.Depth != 0 || st.Queue.DeadLetters != 0 {
		t.Errorf("pinlist status: queue depth %d, %d dead letters (error %q), want empty with no dead letters",
			st.Queue.Depth, st.Queue.DeadLetters, st.QueueError)
	}
	if len(diff) > 0 {
		t.Fatalf("the simulator's lists did not reach the expected membership within %s of the stream's end:\n  %s", settleLimit, joinLines(diff))
	}
	t.Logf("the simulator matched the oracle %s after the stream started", time.Since(start).Round(time.Millisecond))
	calls, err := sim.Calls(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Pinterest calls, faulted ones included: %v", calls)
	serve.stop(t)

	// No plain email in the queue's files, the token file or any output.
	files, err := filepath.Glob(filepath.Join(data, "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range serves {
		files = append(files, p.log)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lower := bytes.ToLower(b)
		for _, plain := range []string{"chaos.person", "chaos.bad"} {
			if bytes.Contains(lower, []byte(plain)) {
				t.Errorf("%s holds a plain email (%s...)", f, plain)
			}
		}
	}
}

// killDuring runs post in the background, SIGKILLs serve while it is in
// flight (or just after), starts serve again on the same data directory,
// and calls resend when post was cut off.
func killDuring(t *testing.T, serve *proc, startServe func() *proc, post func() bool, resend func()) *proc {
	t.Helper()
	done := make(chan bool, 1)
	go func() { done <- post() }()
	time.Sleep(2 * time.Millisecond)
	serve.kill(t)
	ok := <-done
	serve = startServe()
	if !ok {
		resend()
	}
	return serve
}

// latencySpikes makes customer list updates slow (400ms) for a second out
// of every three, on top of the failure rates, until the returned func is
// called.
func latencySpikes(t *testing.T, sim *loadgen.Sim, rates loadgen.Fault) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	var wg sync.WaitGroup
	set := func(latency int64) {
		f := rates
		f.Route, f.LatencyMS = "customer_lists.update", latency
		if err := sim.SetFault(ctx, f); err != nil && ctx.Err() == nil {
			t.Errorf("set a latency spike: %v", err)
		}
	}
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for n := 0; ; n++ {
			set(map[bool]int64{true: 400, false: 0}[n%3 == 1])
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	return func() {
		cancel()
		wg.Wait()
		set(0)
	}
}

// drained reads `pinlist status --json` until the queue is empty (the last
// batches applied to the simulator may not be deleted yet) or limit
// passes, and returns the last status.
func drained(t *testing.T, data, simRoot string, limit time.Duration) local.Status {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		st := status(t, data, simRoot)
		if st.Queue == nil {
			t.Fatalf("pinlist status --json shows no queue: %s", st.QueueError)
		}
		if st.Queue.Depth == 0 || time.Now().After(deadline) {
			return st
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// status runs `pinlist status --json` beside the running serve.
func status(t *testing.T, data, simRoot string) local.Status {
	t.Helper()
	out, err := exec.Command(pinlistBin, "status", "--json", "--data-dir", data, "--pinterest-url", simRoot+"/v5").Output()
	// Exit code 3 means "needs attention" (the warnings are in the JSON and
	// asserted by the caller); anything else is a failure of the command.
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 3) {
		t.Fatalf("pinlist status --json: %v\n%s", err, out)
	}
	var st local.Status
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("pinlist status --json: %v\n%s", err, out)
	}
	if len(st.Warnings) > 0 {
		t.Logf("pinlist status warnings: %v", st.Warnings)
	}
	return st
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
