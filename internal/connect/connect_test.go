package connect

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/google/go-cmp/cmp"

	"github.com/pinlist/pinlist/internal/awstest"
	"github.com/pinlist/pinlist/internal/fake"
	"github.com/pinlist/pinlist/internal/pinterestsim"
	"github.com/pinlist/pinlist/internal/token"
)

// moto is this test binary's moto_server (the Secrets Manager target).
var moto *awstest.Moto

func TestMain(m *testing.M) { os.Exit(awstest.Main(m, &moto)) }

const (
	adAccount    = "549755885175"
	clientID     = "1484362"
	clientSecret = "app-secret-do-not-print-4f1c"
)

// now is the clock of the simulator and of Run, so expiries are exact.
var now = time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)

// syncBuffer is output a test reads while it is being written.
type syncBuffer = fake.Buffer

// page is what the test's browser got back at the end of the redirects.
type page struct {
	status int
	body   string
	err    error
}

// harness is a simulator with an auto-approving consent page, and a browser
// that follows the authorisation URL Run hands it.
type harness struct {
	t     *testing.T
	sim   *pinterestsim.Server
	srv   *httptest.Server
	out   syncBuffer
	pages chan page
	// rewrite, when set, changes the authorisation URL before the browser
	// opens it.
	rewrite func(u *url.URL)
	// opened records that OpenBrowser was called.
	opened bool
}

func newHarness(t *testing.T, clients map[string]string) *harness {
	t.Helper()
	sim, err := pinterestsim.New(pinterestsim.Options{
		AdAccounts: []string{adAccount},
		Clients:    clients,
		Clock:      func() time.Time { return now },
		Seed:       1,
	})
	if err != nil {
		t.Fatalf("new simulator: %v", err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &harness{t: t, sim: sim, srv: srv, pages: make(chan page, 1)}
}

// options are Run's options against the simulator, playing the browser.
func (h *harness) options(target Target) Options {
	return Options{
		ClientID:     clientID,
		ClientSecret: clientSecret,
		AdAccountID:  adAccount,
		APIBaseURL:   h.srv.URL + "/v5",
		AuthURL:      h.srv.URL + "/oauth/",
		RedirectPort: 0,
		Timeout:      time.Minute,
		Target:       target,
		Out:          &h.out,
		OpenBrowser:  h.open,
		Now:          func() time.Time { return now },
		HTTPClient:   h.srv.Client(),
	}
}

// open is the browser: it follows the URL (the consent page's 302 to the
// callback included) in the background, as a browser would while Run waits.
func (h *harness) open(_ context.Context, raw string) error {
	h.opened = true
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if h.rewrite != nil {
		h.rewrite(u)
	}
	go func() { h.pages <- get(u.String()) }()
	return nil
}

func get(u string) page {
	resp, err := http.Get(u)
	if err != nil {
		return page{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, body: string(b), err: err}
}

// page waits for the browser's final page.
func (h *harness) page() page {
	h.t.Helper()
	select {
	case p := <-h.pages:
		if p.err != nil {
			h.t.Fatalf("browser: %v", p.err)
		}
		return p
	case <-time.After(30 * time.Second):
		h.t.Fatal("the browser got no page")
		return page{}
	}
}

// noSecrets fails when a secret of the connection shows up in text.
func noSecrets(t *testing.T, where, text string, tok token.Token) {
	t.Helper()
	for name, s := range map[string]string{
		"client secret": clientSecret, "access token": tok.AccessToken, "refresh token": tok.RefreshToken,
	} {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s shows the %s", where, name)
		}
	}
}

// emptySecret creates a secret without a value, as the SAM template does.
func emptySecret(t *testing.T) string {
	t.Helper()
	out, err := moto.SecretsManager().CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{Name: aws.String(moto.UniqueName("pinterest-token"))})
	if err != nil {
		t.Fatalf("create secret: %v", err)
	}
	return aws.ToString(out.ARN)
}

// secretValue is a secret's current value; "" when it has none.
func secretValue(t *testing.T, id string) string {
	t.Helper()
	out, err := moto.SecretsManager().GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
	var nf *smtypes.ResourceNotFoundException
	if errors.As(err, &nf) {
		return ""
	}
	if err != nil {
		t.Fatalf("get secret %s: %v", id, err)
	}
	return aws.ToString(out.SecretString)
}

func TestRunStoresAWorkingToken(t *testing.T) {
	tests := []struct {
		name   string
		target func(t *testing.T) (Target, func() token.Token)
	}{
		{
			name: "file",
			target: func(t *testing.T) (Target, func() token.Token) {
				path := filepath.Join(t.TempDir(), "data", "token.json")
				return FileTarget(path), func() token.Token {
					info, err := os.Stat(path)
					if err != nil {
						t.Fatalf("stat token file: %v", err)
					}
					if perm := info.Mode().Perm(); perm != 0o600 {
						t.Errorf("token file mode %04o, want 0600", perm)
					}
					tok, err := token.FileStore{Path: path}.Load(t.Context())
					if err != nil {
						t.Fatalf("load token file: %v", err)
					}
					return tok
				}
			},
		},
		{
			name: "secrets manager",
			target: func(t *testing.T) (Target, func() token.Token) {
				arn := emptySecret(t)
				return SecretsManagerTarget(moto.SecretsManager(), arn), func() token.Token {
					var tok token.Token
					if err := json.Unmarshal([]byte(secretValue(t, arn)), &tok); err != nil {
						t.Fatalf("decode secret value: %v", err)
					}
					return tok
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, map[string]string{clientID: clientSecret})
			target, stored := tt.target(t)
			res, err := Run(t.Context(), h.options(target))
			if err != nil {
				t.Fatalf("Run: %v\noutput:\n%s", err, h.out.String())
			}
			p := h.page()
			if p.status != http.StatusOK || !strings.Contains(p.body, "connected to Pinterest ad account "+adAccount) {
				t.Errorf("browser page = %d %q, want 200 and connected", p.status, p.body)
			}

			got := stored()
			want := token.Token{
				ClientID:              clientID,
				ClientSecret:          clientSecret,
				AccessTokenExpiresAt:  now.Add(pinterestsim.DefaultAccessTokenTTL),
				RefreshTokenExpiresAt: now.Add(pinterestsim.DefaultRefreshTokenTTL),
				Scope:                 "ads:read,ads:write",
				AdAccountID:           adAccount,
				RefreshedAt:           now,
			}
			if got.AccessToken == "" || got.RefreshToken == "" {
				t.Fatalf("stored token lacks a token: %v", got)
			}
			want.AccessToken, want.RefreshToken = got.AccessToken, got.RefreshToken
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("stored token (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(want, res.Token); diff != "" {
				t.Errorf("result token (-want +got):\n%s", diff)
			}
			if res.Store != target.Name || res.AdAccountID != adAccount {
				t.Errorf("result = %q, %q; want %q, %q", res.Store, res.AdAccountID, target.Name, adAccount)
			}
			// The stored token is the one the simulator issued and checked.
			if calls := h.sim.Calls(); calls[pinterestsim.RouteOAuthToken] != 1 || calls[pinterestsim.RouteCustomerListsList] != 1 {
				t.Errorf("simulator calls = %v, want one token exchange and one customer list page", calls)
			}

			out := h.out.String()
			for _, line := range []string{
				"Connected Pinterest ad account " + adAccount + ".",
				"access token expires:  2026-12-27 09:30 UTC, in 30 days (",
				"refresh token expires: 2027-01-26 09:30 UTC, in 60 days (",
				"stored in:             " + target.Name,
				"http://127.0.0.1:",
			} {
				if !strings.Contains(out, line) {
					t.Errorf("output lacks %q:\n%s", line, out)
				}
			}
			noSecrets(t, "output", out, got)
			noSecrets(t, "browser page", p.body, got)
		})
	}
}

func TestRunPrintsTheURLAndTheRedirectURI(t *testing.T) {
	tests := []struct{ name, host, wantHost string }{
		{"default", "", "127.0.0.1"},
		{"localhost", "localhost", "localhost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, map[string]string{clientID: clientSecret})
			var authURL string
			opts := h.options(FileTarget(filepath.Join(t.TempDir(), "token.json")))
			opts.RedirectHost = tt.host
			opts.OpenBrowser = func(ctx context.Context, u string) error {
				authURL = u
				return h.open(ctx, u)
			}
			if _, err := Run(t.Context(), opts); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if p := h.page(); p.status != http.StatusOK {
				t.Errorf("browser page = %d, want 200", p.status)
			}
			u, err := url.Parse(authURL)
			if err != nil {
				t.Fatalf("parse authorisation URL: %v", err)
			}
			q := u.Query()
			redirect, err := url.Parse(q.Get("redirect_uri"))
			if err != nil {
				t.Fatalf("parse redirect URI: %v", err)
			}
			if redirect.Scheme != "http" || redirect.Hostname() != tt.wantHost || redirect.Port() == "" || redirect.Path != CallbackPath {
				t.Errorf("redirect URI = %s, want http://%s:PORT/callback", redirect, tt.wantHost)
			}
			if q.Get("scope") != "ads:read,ads:write" || q.Get("response_type") != "code" || q.Get("client_id") != clientID {
				t.Errorf("authorisation URL query = %v", q)
			}
			if len(q.Get("state")) < 26 {
				t.Errorf("state %q is shorter than 128 random bits", q.Get("state"))
			}
			out := h.out.String()
			for _, want := range []string{authURL, q.Get("redirect_uri")} {
				if !strings.Contains(out, "\n  "+want+"\n") {
					t.Errorf("output does not print %q on a line of its own:\n%s", want, out)
				}
			}
		})
	}
}

func TestRunWritesNothingWhenItFails(t *testing.T) {
	tests := []struct {
		name    string
		clients map[string]string // the simulator's apps (default: the right one)
		setup   func(h *harness, o *Options)
		browse  bool // whether the browser comes back to the callback
		status  int  // the browser's final page (when it browses)
		wantErr error
		wantMsg string
	}{
		{
			name:    "wrong state",
			setup:   func(h *harness, _ *Options) { h.rewrite = setQuery("state", "forged-state") },
			browse:  true,
			status:  http.StatusBadRequest,
			wantErr: ErrStateMismatch,
			wantMsg: "run pinlist connect again",
		},
		{
			name: "declined in the browser",
			setup: func(h *harness, _ *Options) {
				h.rewrite = func(u *url.URL) { // straight to the callback, as Pinterest does on "Decline"
					q := u.Query()
					redirect, _ := url.Parse(q.Get("redirect_uri"))
					redirect.RawQuery = url.Values{"state": {q.Get("state")}, "error": {"access_denied"}}.Encode()
					*u = *redirect
				}
			},
			browse:  true,
			status:  http.StatusBadRequest,
			wantErr: ErrDenied,
			wantMsg: "access_denied",
		},
		{
			name:    "timeout",
			setup:   func(_ *harness, o *Options) { o.OpenBrowser, o.Timeout = nil, 20*time.Millisecond },
			wantErr: ErrTimeout,
			wantMsg: "--timeout",
		},
		{
			name:    "wrong client secret",
			clients: map[string]string{clientID: "the-real-secret"},
			browse:  true,
			status:  http.StatusBadGateway,
			wantMsg: "client ID or secret",
		},
		{
			name: "ad account not found",
			setup: func(_ *harness, o *Options) {
				o.AdAccountID = "1234"
			},
			browse:  true,
			status:  http.StatusBadGateway,
			wantMsg: "ad account 1234 was not found",
		},
		{
			name: "scope without ads:write",
			setup: func(h *harness, _ *Options) {
				h.rewrite = setQuery("scope", "ads:read")
			},
			browse:  true,
			status:  http.StatusBadGateway,
			wantMsg: "needs ads:write",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clients := tt.clients
			if clients == nil {
				clients = map[string]string{clientID: clientSecret}
			}
			h := newHarness(t, clients)
			arn := emptySecret(t)
			for _, target := range []Target{FileTarget(filepath.Join(t.TempDir(), "token.json")), SecretsManagerTarget(moto.SecretsManager(), arn)} {
				h.out = syncBuffer{}
				opts := h.options(target)
				if tt.setup != nil {
					tt.setup(h, &opts)
				}
				_, err := Run(t.Context(), opts)
				if err == nil {
					t.Fatalf("%s: Run succeeded, want an error", target.Name)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("%s: Run error = %v, want %v", target.Name, err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("%s: Run error = %v, want it to say %q", target.Name, err, tt.wantMsg)
				}
				if tt.browse {
					if p := h.page(); p.status != tt.status {
						t.Errorf("%s: browser page = %d %q, want %d", target.Name, p.status, p.body, tt.status)
					}
				}
				if _, err := target.Store.Load(t.Context()); !errors.Is(err, token.ErrNotFound) {
					t.Errorf("%s: after a failed Run, Load = %v, want ErrNotFound (nothing written)", target.Name, err)
				}
				noSecrets(t, "output", h.out.String(), token.Token{})
				noSecrets(t, "error", err.Error(), token.Token{})
			}
			if tt.wantErr == ErrStateMismatch || tt.wantErr == ErrDenied || tt.wantErr == ErrTimeout {
				if n := h.sim.Calls()[pinterestsim.RouteOAuthToken]; n != 0 {
					t.Errorf("%d token exchanges, want none", n)
				}
			}
		})
	}
}

// setQuery is a rewrite that sets one parameter of the authorisation URL.
func setQuery(key, value string) func(u *url.URL) {
	return func(u *url.URL) {
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	h := newHarness(t, map[string]string{clientID: clientSecret})
	path := filepath.Join(t.TempDir(), "token.json")
	ctx, cancel := context.WithCancel(t.Context())
	opts := h.options(FileTarget(path))
	opts.OpenBrowser = func(context.Context, string) error {
		cancel() // Ctrl-C while the user looks at the consent page
		return nil
	}
	_, err := Run(ctx, opts)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("Run = %v, want context.Canceled and nothing written", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("token file exists after a cancelled Run (stat: %v)", err)
	}
}

func TestRunReconnectsWithTheStoredApp(t *testing.T) {
	h := newHarness(t, map[string]string{clientID: clientSecret})
	target := FileTarget(filepath.Join(t.TempDir(), "token.json"))
	first, err := Run(t.Context(), h.options(target))
	if err != nil {
		t.Fatalf("first Run: %v", err)
	}
	h.page()

	opts := h.options(target)
	opts.ClientID, opts.ClientSecret, opts.AdAccountID = "", "", ""
	opts.ReadSecret = func(string) (string, error) {
		t.Error("ReadSecret called although the store holds the secret")
		return "", errors.New("unexpected")
	}
	second, err := Run(t.Context(), opts)
	if err != nil {
		t.Fatalf("second Run: %v", err)
	}
	h.page()
	if second.Token.ClientID != clientID || second.Token.ClientSecret != clientSecret || second.AdAccountID != adAccount {
		t.Errorf("reconnected with %v, want the stored app and ad account", second.Token)
	}
	if second.Token.AccessToken == first.Token.AccessToken {
		t.Error("the reconnect stored the old access token")
	}
	if !strings.Contains(h.out.String(), "Reconnecting: using the app and ad account stored in "+target.Name) {
		t.Errorf("output does not say it reused the stored app:\n%s", h.out.String())
	}
}

func TestRunAsksForAMissingSecret(t *testing.T) {
	h := newHarness(t, map[string]string{clientID: clientSecret})
	opts := h.options(FileTarget(filepath.Join(t.TempDir(), "token.json")))
	opts.ClientSecret = ""
	var askedFor string
	opts.ReadSecret = func(id string) (string, error) {
		askedFor = id
		return clientSecret + "\n", nil
	}
	res, err := Run(t.Context(), opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	h.page()
	if askedFor != clientID || res.Token.ClientSecret != clientSecret {
		t.Errorf("asked for %q, stored secret ok=%v; want asked for %q and the typed secret stored", askedFor, res.Token.ClientSecret == clientSecret, clientID)
	}
	noSecrets(t, "output", h.out.String(), res.Token)
}

func TestRunRefusesBeforeTheBrowser(t *testing.T) {
	missingSecret := func(t *testing.T) Target {
		return SecretsManagerTarget(moto.SecretsManager(), moto.UniqueName("no-such-secret"))
	}
	fileTarget := func(t *testing.T) Target { return FileTarget(filepath.Join(t.TempDir(), "token.json")) }
	tests := []struct {
		name    string
		target  func(t *testing.T) Target
		setup   func(o *Options)
		wantMsg string
	}{
		{name: "secret does not exist", target: missingSecret, wantMsg: "deploy the stack first"},
		{name: "file target is a directory", target: func(t *testing.T) Target { return FileTarget(t.TempDir()) }, wantMsg: "it is a directory"},
		{name: "no client ID", target: fileTarget, setup: func(o *Options) { o.ClientID = "" }, wantMsg: "--client-id"},
		{name: "no secret and no prompt", target: fileTarget, setup: func(o *Options) { o.ClientSecret = "" }, wantMsg: "PINTEREST_CLIENT_SECRET"},
		{name: "no ad account", target: fileTarget, setup: func(o *Options) { o.AdAccountID = "" }, wantMsg: "--ad-account"},
		{name: "ad account not digits", target: fileTarget, setup: func(o *Options) { o.AdAccountID = "act_12" }, wantMsg: "want 1 to 18 digits"},
		{name: "redirect port out of range", target: fileTarget, setup: func(o *Options) { o.RedirectPort = 70000 }, wantMsg: "want 1 to 65535"},
		{name: "redirect host not loopback", target: fileTarget, setup: func(o *Options) { o.RedirectHost = "example.com" }, wantMsg: "want 127.0.0.1 or localhost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, map[string]string{clientID: clientSecret})
			opts := h.options(tt.target(t))
			if tt.setup != nil {
				tt.setup(&opts)
			}
			_, err := Run(t.Context(), opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Run = %v, want an error saying %q", err, tt.wantMsg)
			}
			if h.opened {
				t.Error("the browser was opened although Run could not succeed")
			}
		})
	}
}

func TestRunReportsAPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	h := newHarness(t, map[string]string{clientID: clientSecret})
	opts := h.options(FileTarget(filepath.Join(t.TempDir(), "token.json")))
	opts.RedirectPort = ln.Addr().(*net.TCPAddr).Port
	_, err = Run(t.Context(), opts)
	if err == nil || !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), "--redirect-port") {
		t.Fatalf("Run = %v, want the port in use and --redirect-port named", err)
	}
	if !strings.Contains(err.Error(), strconv.Itoa(opts.RedirectPort)) {
		t.Errorf("error %q does not name port %d", err, opts.RedirectPort)
	}
}

func TestCallbackTakesOnlyTheFirstAnswer(t *testing.T) {
	cb := newCallback("s1")
	srv := httptest.NewServer(cb)
	defer srv.Close()
	first := make(chan page, 1)
	go func() { first <- get(srv.URL + CallbackPath + "?state=s1&code=c1") }()
	a, err := cb.wait(t.Context(), time.Minute)
	if err != nil || a.err != nil || a.code != "c1" {
		t.Fatalf("wait = %+v, %v; want code c1", a, err)
	}
	if p := get(srv.URL + CallbackPath + "?state=s1&code=c2"); p.status != http.StatusConflict {
		t.Errorf("second callback = %d, want 409", p.status)
	}
	if p := get(srv.URL + "/favicon.ico"); p.status != http.StatusNotFound {
		t.Errorf("favicon = %d, want 404", p.status)
	}
	cb.stop() // the run ends without a reply
	if p := <-first; p.status != http.StatusServiceUnavailable || p.err != nil {
		t.Errorf("first callback after stop = %d %v, want 503", p.status, p.err)
	}
}

func TestExpiry(t *testing.T) {
	tests := []struct {
		name string
		in   time.Duration
		want string
	}{
		{"thirty days", 30 * 24 * time.Hour, "2026-12-27 09:30 UTC, in 30 days"},
		{"a few seconds short rounds up", 30*24*time.Hour - 3*time.Second, "2026-12-27 09:29 UTC, in 30 days"},
		{"one day", 24 * time.Hour, "2026-11-28 09:30 UTC, in 1 day"},
		{"today", time.Hour, "2026-11-27 10:30 UTC, in 0 days"},
		{"past", -48 * time.Hour, "2026-11-25 09:30 UTC, 2 days ago"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := expiry(now.Add(tt.in), now); got != tt.want {
				t.Errorf("expiry(now%+v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
