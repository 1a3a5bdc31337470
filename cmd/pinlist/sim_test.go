package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pinlist/pinlist/internal/fake"
	"github.com/pinlist/pinlist/internal/pinterestsim"
)

// syncBuffer is output a test reads while it is being written.
type syncBuffer = fake.Buffer

// runningSim is `pinlist sim` running in-process on a free port.
type runningSim struct {
	banner map[string]string // "base URL" → "http://...", ...
	stdout string
	stderr *syncBuffer
	stop   func() error
}

// startSim runs `pinlist sim --addr 127.0.0.1:0 ARGS...` and waits for its
// banner.
func startSim(t *testing.T, args ...string) *runningSim {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		err := run(ctx, append([]string{"sim", "--addr", "127.0.0.1:0"}, args...), pw, stderr)
		pw.Close()
		done <- err
	}()

	sim := &runningSim{banner: map[string]string{}, stderr: stderr}
	var out strings.Builder
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if key, value, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			sim.banner[key] = strings.TrimSpace(value)
		}
		if strings.HasPrefix(strings.TrimSpace(line), "example:") {
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	sim.stdout = out.String()
	var once sync.Once
	var stopErr error
	sim.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				stopErr = errors.New("pinlist sim did not stop after its context was cancelled")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { _ = sim.stop() })
	if sim.banner["base URL"] == "" {
		cancel()
		t.Fatalf("no base URL in the banner; stdout:\n%s\nstderr:\n%s\nrun: %v", sim.stdout, stderr, <-done)
	}
	return sim
}

// call sends a request and decodes a JSON reply into out (if not nil).
func call(t *testing.T, method, url, token string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("decode reply of %s %s: %v", method, url, err)
		}
	}
	return resp.StatusCode
}

func TestSimServesTheRoutes(t *testing.T) {
	sim := startSim(t)
	base := sim.banner["base URL"]
	if !strings.HasPrefix(base, "http://127.0.0.1:") || !strings.HasSuffix(base, "/v5") {
		t.Fatalf("base URL = %q", base)
	}
	root := strings.TrimSuffix(base, "/v5")
	token := sim.banner["access token"]
	if !strings.HasPrefix(token, "pina") || !strings.HasPrefix(sim.banner["refresh token"], "pinr") {
		t.Fatalf("banner has no issued token pair:\n%s", sim.stdout)
	}
	if got := sim.banner["ad accounts"]; got != defaultAdAccount {
		t.Errorf("ad accounts = %q, want %s", got, defaultAdAccount)
	}

	var list struct {
		ID string `json:"id"`
	}
	lists := base + "/ad_accounts/" + defaultAdAccount + "/customer_lists"
	if status := call(t, http.MethodPost, lists, token, map[string]string{"name": "aud EMAIL", "records": "b,a"}, &list); status != http.StatusOK {
		t.Fatalf("create list: %d", status)
	}
	if status := call(t, http.MethodPatch, lists+"/"+list.ID, token, map[string]string{"operation_type": "ADD", "records": "c"}, nil); status != http.StatusOK {
		t.Fatalf("update list: %d", status)
	}
	if status := call(t, http.MethodPatch, lists+"/"+list.ID, token, map[string]string{"records": "c"}, nil); status != http.StatusBadRequest {
		t.Errorf("invalid update: %d, want 400", status)
	}

	var recs struct {
		Records []string `json:"records"`
	}
	call(t, http.MethodGet, root+"/_sim/ad_accounts/"+defaultAdAccount+"/customer_lists/"+list.ID+"/records", "", nil, &recs)
	if strings.Join(recs.Records, ",") != "a,b,c" {
		t.Errorf("records = %v, want [a b c]", recs.Records)
	}
	var state struct {
		AdAccounts map[string]struct {
			CustomerLists []struct {
				ID         string `json:"id"`
				NumBatches int    `json:"num_batches"`
			} `json:"customer_lists"`
		} `json:"ad_accounts"`
	}
	call(t, http.MethodGet, root+"/_sim/state", "", nil, &state)
	if ls := state.AdAccounts[defaultAdAccount].CustomerLists; len(ls) != 1 || ls[0].ID != list.ID || ls[0].NumBatches != 2 {
		t.Errorf("state lists = %+v", ls)
	}

	// The printed refresh token works with the default OAuth app.
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {sim.banner["refresh token"]}}
	req, _ := http.NewRequest(http.MethodPost, base+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(defaultClientID, defaultClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("refresh with the printed token: %d, want 200", resp.StatusCode)
	}

	if err := sim.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	logs := sim.stderr.String()
	if !strings.Contains(logs, `"msg":"pinterestsim request"`) {
		t.Errorf("no request log lines in:\n%s", logs)
	}
	for _, secret := range []string{token, sim.banner["refresh token"], defaultClientSecret} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs contain a token or secret")
		}
	}
	if _, err := http.Get(root + "/_sim/state"); err == nil {
		t.Error("the simulator still answers after shutdown")
	}
}

func TestSimFlags(t *testing.T) {
	const token, secret = "pina_given_token", "given-secret"
	sim := startSim(t, "--ad-account", "11,12", "--ad-account", "13", "--access-token", token,
		"--client-id", "my-app", "--client-secret", secret, "--max-records", "2", "--seed", "5")
	base := sim.banner["base URL"]
	if strings.Contains(sim.stdout, token) || strings.Contains(sim.stdout, secret) {
		t.Errorf("the banner echoes a token or secret given on the command line:\n%s", sim.stdout)
	}
	if sim.banner["refresh token"] != "" {
		t.Errorf("a refresh token was issued although --access-token was given")
	}
	for _, ad := range []string{"11", "12", "13"} {
		if status := call(t, http.MethodGet, base+"/ad_accounts/"+ad+"/customer_lists", token, nil, nil); status != http.StatusOK {
			t.Errorf("ad account %s with the given token: %d, want 200", ad, status)
		}
	}
	if status := call(t, http.MethodPost, base+"/ad_accounts/11/customer_lists", token, map[string]string{"name": "x", "records": "a,b,c"}, nil); status != http.StatusBadRequest {
		t.Errorf("3 records with --max-records 2: %d, want 400", status)
	}

	tokenStatus := func(client, secret string) int {
		req, _ := http.NewRequest(http.MethodPost, base+"/oauth/token", strings.NewReader("grant_type=refresh_token&refresh_token=pinr_unknown"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(client, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("token request: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := tokenStatus("my-app", secret); got != http.StatusBadRequest {
		t.Errorf("known client, unknown refresh token: %d, want 400", got)
	}
	if got := tokenStatus(defaultClientID, defaultClientSecret); got != http.StatusUnauthorized {
		t.Errorf("the default client when another is configured: %d, want 401", got)
	}
}

func TestSimAdAccountFromEnvironment(t *testing.T) {
	t.Setenv("PINTEREST_AD_ACCOUNT_ID", "777")
	sim := startSim(t)
	if got := sim.banner["ad accounts"]; got != "777" {
		t.Errorf("ad accounts = %q, want 777 from PINTEREST_AD_ACCOUNT_ID", got)
	}
}

func TestRunDispatch(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantErr    error // nil: success; errAny: some error
		wantStdout string
	}{
		{name: "no command", args: nil, wantErr: errUsage},
		{name: "unknown command", args: []string{"nope"}, wantErr: errUsage},
		{name: "help", args: []string{"help"}, wantStdout: "sim"},
		{name: "sim help", args: []string{"sim", "-h"}, wantErr: flag.ErrHelp},
		{name: "sim extra argument", args: []string{"sim", "extra"}, wantErr: errUsage},
		{name: "sim bad ad account", args: []string{"sim", "--addr", "127.0.0.1:0", "--ad-account", "abc"}, wantErr: errAny},
		{name: "sim bad address", args: []string{"sim", "--addr", "127.0.0.1:notaport"}, wantErr: errAny},
		{name: "sim empty client", args: []string{"sim", "--addr", "127.0.0.1:0", "--client-id", ""}, wantErr: errAny},
		{name: "sim negative write limit", args: []string{"sim", "--addr", "127.0.0.1:0", "--write-limit", "-1"}, wantErr: errUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr syncBuffer
			err := run(context.Background(), tt.args, &stdout, &stderr)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Errorf("run = %v, want success", err)
			case tt.wantErr == errAny && err == nil:
				t.Error("run succeeded, want an error")
			case tt.wantErr != nil && tt.wantErr != errAny && !errors.Is(err, tt.wantErr):
				t.Errorf("run = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout = %q, want it to contain %q", stdout.String(), tt.wantStdout)
			}
		})
	}
}

// errAny in a test table means "some error".
var errAny = errors.New("any error")

// TestSimWriteLimit: --write-limit sets the ads_write budget (Pinterest's
// 400 a minute by default), and /_sim/calls counts the 429s.
func TestSimWriteLimit(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		wantBanner  string
		writes      int
		want429s    int
		wantHeaders bool
	}{
		{name: "default: Pinterest's budget", wantBanner: "400 calls a minute per ad account (--write-limit 0 for none)", writes: 3, wantHeaders: true},
		// 6 a minute holds one call: the second, within seconds, finds it spent.
		{name: "a small budget", args: []string{"--write-limit", "6"}, wantBanner: "6 calls a minute per ad account (--write-limit 0 for none)", writes: 3, want429s: 2, wantHeaders: true},
		{name: "none", args: []string{"--write-limit", "0"}, wantBanner: "none", writes: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := startSim(t, tt.args...)
			if got := sim.banner["write limit"]; got != tt.wantBanner {
				t.Errorf("banner write limit %q, want %q", got, tt.wantBanner)
			}
			base, token := sim.banner["base URL"], sim.banner["access token"]
			lists := base + "/ad_accounts/" + defaultAdAccount + "/customer_lists"
			limited := 0
			for i := range tt.writes {
				b, _ := json.Marshal(map[string]string{"name": fmt.Sprint("l", i), "records": "a"})
				req, _ := http.NewRequest(http.MethodPost, lists, bytes.NewReader(b))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusTooManyRequests {
					limited++
				}
				if has := resp.Header.Get(pinterestsim.HeaderRateLimitRemaining) != ""; has != tt.wantHeaders {
					t.Errorf("write %d: X-RateLimit headers %v, want %v", i, has, tt.wantHeaders)
				}
			}
			if limited != tt.want429s {
				t.Errorf("%d writes answered 429, want %d", limited, tt.want429s)
			}
			var calls map[string]int
			if status := call(t, http.MethodGet, strings.TrimSuffix(base, "/v5")+"/_sim/calls", "", nil, &calls); status != http.StatusOK {
				t.Fatalf("/_sim/calls: %d", status)
			}
			if got := calls[pinterestsim.RateLimitedKey(pinterestsim.RouteCustomerListsCreate)]; got != tt.want429s {
				t.Errorf("/_sim/calls counts %d 429s of creates, want %d: %v", got, tt.want429s, calls)
			}
		})
	}
}
