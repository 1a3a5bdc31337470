package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/pinlist/pinlist/internal/connect"
	"github.com/pinlist/pinlist/internal/token"
)

// The OAuth app and ad account of the connect tests; the simulator
// (`pinlist sim`) is started with them.
const (
	connectClientID     = "1484362"
	connectClientSecret = "cli-app-secret-never-printed-7d2e"
	connectAdAccount    = "549755885100"
)

// connectRun is `pinlist connect` running in-process.
type connectRun struct {
	urls     chan string // the printed authorisation URL
	done     chan error
	scanned  chan struct{} // stdout fully read
	stdout   *syncBuffer
	stderr   *syncBuffer
	finalErr error
}

// startConnect runs `pinlist connect ARGS...` and reads its output as a
// person would.
func startConnect(t *testing.T, args ...string) *connectRun {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	pr, pw := io.Pipe()
	c := &connectRun{
		urls: make(chan string, 1), done: make(chan error, 1), scanned: make(chan struct{}),
		stdout: &syncBuffer{}, stderr: &syncBuffer{},
	}
	go func() {
		err := run(ctx, append([]string{"connect"}, args...), pw, c.stderr)
		pw.Close()
		c.done <- err
	}()
	go func() {
		defer close(c.scanned)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			c.stdout.Write([]byte(line + "\n"))
			if s := strings.TrimSpace(line); strings.HasPrefix(s, "http") && strings.Contains(s, "client_id=") {
				select {
				case c.urls <- s:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	return c
}

// authURL is the authorisation URL the command printed.
func (c *connectRun) authURL(t *testing.T) string {
	t.Helper()
	select {
	case u := <-c.urls:
		return u
	case err := <-c.done:
		c.done <- err
		t.Fatalf("pinlist connect ended before printing a URL: %v\nstdout:\n%s\nstderr:\n%s", err, c.stdout, c.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("pinlist connect printed no URL:\n%s", c.stdout)
	}
	return ""
}

// wait returns the command's result once its output is all read.
func (c *connectRun) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-c.done:
		<-c.scanned
		return err
	case <-time.After(60 * time.Second):
		t.Fatalf("pinlist connect did not end:\n%s", c.stdout)
		return nil
	}
}

// browse is the browser: it opens u and follows the consent page's redirect
// to the callback, returning the final page's status.
func browse(t *testing.T, u string) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// connectEnv starts `pinlist sim` with the test app and puts the app into
// the environment, as an operator would.
func connectEnv(t *testing.T) (apiBase string) {
	t.Helper()
	sim := startSim(t, "--client-id", connectClientID, "--client-secret", connectClientSecret, "--ad-account", connectAdAccount)
	t.Setenv(envClientID, connectClientID)
	t.Setenv(envClientSecret, connectClientSecret)
	t.Setenv("PINTEREST_AD_ACCOUNT_ID", "")
	t.Setenv("PINTEREST_API_BASE_URL", "")
	t.Setenv("PINLIST_DATA_DIR", t.TempDir())
	useMoto(t)
	return sim.banner["base URL"]
}

// connectArgs are the flags every test gives: the simulator, a free callback
// port, no browser.
func connectArgs(apiBase, store string, more ...string) []string {
	return append([]string{"--pinterest-url", apiBase, "--ad-account", connectAdAccount, "--redirect-port", "0", "--no-browser", "--store", store}, more...)
}

// emptyTokenSecret creates the token secret as the SAM template does: with no
// value.
func emptyTokenSecret(t *testing.T) string {
	t.Helper()
	out, err := moto.SecretsManager().CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{Name: aws.String(moto.UniqueName("pinlist-token"))})
	if err != nil {
		t.Fatalf("create secret: %v", err)
	}
	return aws.ToString(out.ARN)
}

func TestConnectEndToEnd(t *testing.T) {
	tests := []struct {
		name  string
		store func(t *testing.T) (spec string, load func() (token.Token, error))
	}{
		{
			name: "file",
			store: func(t *testing.T) (string, func() (token.Token, error)) {
				path := filepath.Join(t.TempDir(), "data", "token.json")
				return "file:" + path, func() (token.Token, error) {
					info, err := os.Stat(path)
					if err != nil {
						return token.Token{}, err
					}
					if perm := info.Mode().Perm(); perm != 0o600 {
						t.Errorf("token file mode %04o, want 0600", perm)
					}
					return token.FileStore{Path: path}.Load(t.Context())
				}
			},
		},
		{
			name: "secrets manager",
			store: func(t *testing.T) (string, func() (token.Token, error)) {
				arn := emptyTokenSecret(t)
				return "secretsmanager:" + arn, func() (token.Token, error) {
					return token.NewSecretsManagerStore(moto.SecretsManager(), arn).Load(t.Context())
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			apiBase := connectEnv(t)
			spec, load := tt.store(t)
			c := startConnect(t, connectArgs(apiBase, spec)...)
			u := c.authURL(t)
			if !strings.HasPrefix(u, strings.TrimSuffix(apiBase, "/v5")+"/oauth/?") {
				t.Errorf("authorisation URL %s is not the simulator's consent page", u)
			}
			if status := browse(t, u); status != http.StatusOK {
				t.Errorf("browser's final page: %d, want 200", status)
			}
			if err := c.wait(t); err != nil {
				t.Fatalf("pinlist connect: %v\nstdout:\n%s\nstderr:\n%s", err, c.stdout, c.stderr)
			}

			tok, err := load()
			if err != nil {
				t.Fatalf("load the stored token: %v", err)
			}
			if err := tok.Validate(); err != nil {
				t.Errorf("stored token: %v", err)
			}
			if tok.ClientID != connectClientID || tok.ClientSecret != connectClientSecret || tok.AdAccountID != connectAdAccount || tok.Scope != "ads:read,ads:write" {
				t.Errorf("stored token = %v", tok)
			}
			// The stored access token is one the simulator accepts.
			lists := apiBase + "/ad_accounts/" + connectAdAccount + "/customer_lists"
			if status := call(t, http.MethodGet, lists, tok.AccessToken, nil, nil); status != http.StatusOK {
				t.Errorf("list customer lists with the stored token: %d, want 200", status)
			}

			out := c.stdout.String()
			for _, want := range []string{"Connected Pinterest ad account " + connectAdAccount, "access token expires:", ", in 30 days", "refresh token expires:", "stored in:             " + spec} {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			for what, secret := range map[string]string{"client secret": connectClientSecret, "access token": tok.AccessToken, "refresh token": tok.RefreshToken} {
				if strings.Contains(out, secret) || strings.Contains(c.stderr.String(), secret) {
					t.Errorf("the output shows the %s", what)
				}
			}
		})
	}
}

func TestConnectWritesNothingOnFailure(t *testing.T) {
	tests := []struct {
		name    string
		extra   []string
		browser func(t *testing.T, u string) // nil: the person never comes back
		wantErr error
	}{
		{
			name: "wrong state",
			browser: func(t *testing.T, u string) {
				parsed, err := url.Parse(u)
				if err != nil {
					t.Fatalf("parse %s: %v", u, err)
				}
				q := parsed.Query()
				q.Set("state", "not-the-state-pinlist-sent")
				parsed.RawQuery = q.Encode()
				if status := browse(t, parsed.String()); status != http.StatusBadRequest {
					t.Errorf("callback with a wrong state: %d, want 400", status)
				}
			},
			wantErr: connect.ErrStateMismatch,
		},
		{name: "timeout", extra: []string{"--timeout", "50ms"}, wantErr: connect.ErrTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			apiBase := connectEnv(t)
			path := filepath.Join(t.TempDir(), "token.json")
			arn := emptyTokenSecret(t)
			for _, spec := range []string{"file:" + path, "secretsmanager:" + arn} {
				c := startConnect(t, connectArgs(apiBase, spec, tt.extra...)...)
				u := c.authURL(t)
				if tt.browser != nil {
					tt.browser(t, u)
				}
				err := c.wait(t)
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), "run pinlist connect again") {
					t.Errorf("%s: pinlist connect = %v, want %v and what to do", spec, err, tt.wantErr)
				}
				if err != nil && strings.Contains(err.Error(), connectClientSecret) {
					t.Errorf("%s: the error shows the client secret", spec)
				}
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("token file exists after a failed connect (stat: %v)", err)
			}
			if _, err := token.NewSecretsManagerStore(moto.SecretsManager(), arn).Load(t.Context()); !errors.Is(err, token.ErrNotFound) {
				t.Errorf("token secret after a failed connect: %v, want no value", err)
			}
		})
	}
}

func TestConnectUsage(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr error
		want    string
	}{
		{name: "unknown store", args: []string{"--store", "s3:bucket/token"}, wantErr: errUsage, want: "want file:PATH or secretsmanager:NAME_OR_ARN"},
		{name: "zero timeout", args: []string{"--timeout", "0s"}, wantErr: errUsage, want: "--timeout"},
		{name: "stray argument", args: []string{"now"}, wantErr: errUsage, want: "unexpected arguments"},
		{name: "help", args: []string{"-h"}, wantErr: flag.ErrHelp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(envClientSecret, connectClientSecret)
			var stdout, stderr strings.Builder
			err := run(t.Context(), append([]string{"connect"}, tt.args...), &stdout, &stderr)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("pinlist connect %v = %v, want %v saying %q", tt.args, err, tt.wantErr, tt.want)
			}
			if strings.Contains(stdout.String()+stderr.String(), connectClientSecret) {
				t.Error("the output shows the client secret from the environment")
			}
		})
	}
}

func TestConsentPageFor(t *testing.T) {
	tests := []struct{ name, base, want string }{
		{"Pinterest", "https://api.pinterest.com/v5", "https://www.pinterest.com/oauth/"},
		{"Pinterest's sandbox", "https://api-sandbox.pinterest.com/v5", "https://www.pinterest.com/oauth/"},
		{"simulator", "http://127.0.0.1:8081/v5", "http://127.0.0.1:8081/oauth/"},
		{"not a URL", "::", "https://www.pinterest.com/oauth/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := consentPageFor(tt.base); got != tt.want {
				t.Errorf("consentPageFor(%q) = %q, want %q", tt.base, got, tt.want)
			}
		})
	}
}

func TestTerminalSecretReaderNeedsATerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatalf("pipe: %v", err)
	}
	defer r.Close()
	defer w.Close()
	if read := terminalSecretReader(t.Context(), r, io.Discard); read != nil {
		t.Error("a pipe got a secret prompt; want none (a missing secret is an error off a terminal)")
	}
}
