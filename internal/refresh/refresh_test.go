package refresh

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/pinlist/pinlist/internal/pinterest"
	"github.com/pinlist/pinlist/internal/retry"
	"github.com/pinlist/pinlist/internal/token"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

const (
	oldAccess  = "pina.OLD-ACCESS-SECRET"
	oldRefresh = "pinr.OLD-REFRESH-SECRET"
	newAccess  = "pina.NEW-ACCESS-SECRET"
	newRefresh = "pinr.NEW-REFRESH-SECRET"
	appSecret  = "APP-CLIENT-SECRET"
)

// memStore is a token.Store in memory that can fail saves.
type memStore struct {
	mu        sync.Mutex
	tok       *token.Token
	saves     int
	failSaves int // fail this many saves first
}

func (s *memStore) Load(context.Context) (token.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok == nil {
		return token.Token{}, token.ErrNotFound
	}
	return *s.tok, nil
}

func (s *memStore) Save(_ context.Context, t token.Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saves++
	if s.failSaves > 0 {
		s.failSaves--
		return errors.New("secrets manager: throttled")
	}
	s.tok = &t
	return nil
}

// fakeOAuth answers refreshes from a script of errors, then succeeds.
type fakeOAuth struct {
	calls []string // refresh tokens it was given
	errs  []error
}

func (f *fakeOAuth) Refresh(_ context.Context, rt string) (*pinterest.Token, error) {
	f.calls = append(f.calls, rt)
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	return &pinterest.Token{
		AccessToken:           newAccess,
		RefreshToken:          newRefresh,
		Scope:                 "ads:read,ads:write",
		AccessTokenExpiresAt:  now.Add(30 * 24 * time.Hour),
		RefreshTokenExpiresAt: now.Add(60 * 24 * time.Hour),
	}, nil
}

type recAlerts struct{ got []Alert }

func (r *recAlerts) Publish(_ context.Context, a Alert) error { r.got = append(r.got, a); return nil }

func storedToken(accessLeft, refreshLeft time.Duration) *token.Token {
	return &token.Token{
		ClientID: "1234567", ClientSecret: appSecret,
		AccessToken: oldAccess, RefreshToken: oldRefresh,
		AccessTokenExpiresAt:  now.Add(accessLeft),
		RefreshTokenExpiresAt: now.Add(refreshLeft),
		Scope:                 "ads:read,ads:write", AdAccountID: "549755885175",
	}
}

type harness struct {
	store   *memStore
	oauth   *fakeOAuth
	alerts  *recAlerts
	metrics bytes.Buffer
	logs    bytes.Buffer
	r       *Refresher
}

func newHarness(t *testing.T, tok *token.Token) *harness {
	t.Helper()
	h := &harness{store: &memStore{tok: tok}, oauth: &fakeOAuth{}, alerts: &recAlerts{}}
	r, err := New(Options{
		Store:            h.store,
		NewRefresher:     func(token.Token) TokenRefresher { return h.oauth },
		Alerts:           h.alerts,
		Metrics:          NewMetricsWriter(&h.metrics, func() time.Time { return now }),
		Connection:       "test-conn",
		ReconnectCommand: "pinlist connect --store secretsmanager:pinlist-token",
		Now:              func() time.Time { return now },
		Retry:            retry.Policy{Sleep: func(context.Context, time.Duration) error { return nil }},
		Logger:           slog.New(slog.NewJSONHandler(&h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	h.r = r
	return h
}

// metric returns the value of name in the last EMF line.
func (h *harness) metric(t *testing.T, name string) (float64, bool) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(h.metrics.String()), "\n")
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rec); err != nil {
		t.Fatalf("EMF line is not JSON: %v", err)
	}
	v, ok := rec[name].(float64)
	return v, ok
}

func (h *harness) assertNoSecretsLogged(t *testing.T) {
	t.Helper()
	out := h.logs.String() + h.metrics.String()
	for _, a := range h.alerts.got {
		out += a.Text() + a.Title()
	}
	for _, s := range []string{oldAccess, oldRefresh, newAccess, newRefresh, appSecret} {
		if strings.Contains(out, s) {
			t.Errorf("a secret (%s…) reached a log line, metric or alert", s[:6])
		}
	}
}

func TestNotDueMakesNoCall(t *testing.T) {
	h := newHarness(t, storedToken(20*24*time.Hour, 50*24*time.Hour))
	res, err := h.r.Run(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Refreshed || len(h.oauth.calls) != 0 || h.store.saves != 0 {
		t.Fatalf("not-due run refreshed: result %+v, calls %d, saves %d", res, len(h.oauth.calls), h.store.saves)
	}
	if v, _ := h.metric(t, "DaysToAccessTokenExpiry"); v != 20 {
		t.Errorf("DaysToAccessTokenExpiry = %v, want 20", v)
	}
	if v, _ := h.metric(t, "DaysToRefreshTokenExpiry"); v != 50 {
		t.Errorf("DaysToRefreshTokenExpiry = %v, want 50", v)
	}
	if v, _ := h.metric(t, "RefreshFailures"); v != 0 {
		t.Errorf("RefreshFailures = %v, want 0", v)
	}
	if len(h.alerts.got) != 0 {
		t.Errorf("alerts = %v, want none", h.alerts.got)
	}
	h.assertNoSecretsLogged(t)
}

func TestDueRefreshesAndStoresTheRotatedPair(t *testing.T) {
	h := newHarness(t, storedToken(9*24*time.Hour, 50*24*time.Hour))
	res, err := h.r.Run(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Refreshed || len(h.oauth.calls) != 1 || h.oauth.calls[0] != oldRefresh {
		t.Fatalf("result %+v, refresh calls %d", res, len(h.oauth.calls))
	}
	got := *h.store.tok
	if got.AccessToken != newAccess || got.RefreshToken != newRefresh {
		t.Error("the stored pair is not the new one")
	}
	if got.ClientID != "1234567" || got.ClientSecret != appSecret || got.AdAccountID != "549755885175" {
		t.Error("the app credentials or ad account were not kept")
	}
	if !got.AccessTokenExpiresAt.Equal(now.Add(30*24*time.Hour)) || !got.RefreshTokenExpiresAt.Equal(now.Add(60*24*time.Hour)) {
		t.Errorf("expiries = %v / %v", got.AccessTokenExpiresAt, got.RefreshTokenExpiresAt)
	}
	if !got.RefreshedAt.Equal(now) {
		t.Errorf("RefreshedAt = %v, want %v", got.RefreshedAt, now)
	}
	if v, _ := h.metric(t, "DaysToAccessTokenExpiry"); v != 30 {
		t.Errorf("DaysToAccessTokenExpiry after refresh = %v, want 30", v)
	}
	h.assertNoSecretsLogged(t)
}

func TestRefreshBeforeWindowEdge(t *testing.T) {
	for name, tc := range map[string]struct {
		left time.Duration
		want bool
	}{
		"just outside the window": {240*time.Hour + time.Second, false},
		"exactly at the window":   {240 * time.Hour, true},
		"already expired":         {-time.Hour, true},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, storedToken(tc.left, 50*24*time.Hour))
			res, err := h.r.Run(context.Background(), false)
			if err != nil || res.Refreshed != tc.want {
				t.Fatalf("Refreshed = %v, err %v; want %v", res.Refreshed, err, tc.want)
			}
		})
	}
}

func TestForceRefreshesAnyway(t *testing.T) {
	h := newHarness(t, storedToken(25*24*time.Hour, 50*24*time.Hour))
	res, err := h.r.HandleEvent(context.Background(), events.EventBridgeEvent{Detail: json.RawMessage(`{"force":true}`)})
	if err != nil || !res.Refreshed {
		t.Fatalf("forced run: %+v, %v", res, err)
	}
	// A scheduled event carries an empty detail and does not force.
	h = newHarness(t, storedToken(25*24*time.Hour, 50*24*time.Hour))
	res, err = h.r.HandleEvent(context.Background(), events.EventBridgeEvent{DetailType: "Scheduled Event", Detail: json.RawMessage(`{}`)})
	if err != nil || res.Refreshed {
		t.Fatalf("scheduled run: %+v, %v", res, err)
	}
	if _, err := h.r.HandleEvent(context.Background(), events.EventBridgeEvent{Detail: json.RawMessage(`[1]`)}); err == nil {
		t.Fatal("a malformed detail was accepted")
	}
}

func TestInvalidGrantNeedsReconnectAndLeavesTheStoreAlone(t *testing.T) {
	h := newHarness(t, storedToken(time.Hour, 50*24*time.Hour))
	h.oauth.errs = []error{&pinterest.InvalidGrantError{APIError: pinterest.APIError{StatusCode: 400, Message: "invalid_grant", Method: "POST", Path: "/oauth/token"}}}
	_, err := h.r.Run(context.Background(), false)
	if !errors.Is(err, ErrReconnectNeeded) {
		t.Fatalf("err = %v, want ErrReconnectNeeded", err)
	}
	if len(h.oauth.calls) != 1 {
		t.Errorf("invalid grant was retried: %d calls", len(h.oauth.calls))
	}
	if h.store.saves != 0 || h.store.tok.RefreshToken != oldRefresh {
		t.Error("the store was written after an invalid grant")
	}
	if len(h.alerts.got) != 1 {
		t.Fatalf("alerts = %d, want 1", len(h.alerts.got))
	}
	a := h.alerts.got[0]
	if !strings.Contains(a.Text(), "pinlist connect --store secretsmanager:pinlist-token") || !strings.Contains(a.Text(), "test-conn") {
		t.Errorf("alert lacks the connection or the reconnect command:\n%s", a.Text())
	}
	if v, _ := h.metric(t, "RefreshFailures"); v != 1 {
		t.Errorf("RefreshFailures = %v, want 1", v)
	}
	h.assertNoSecretsLogged(t)
}

func TestTransientFailuresAreRetried(t *testing.T) {
	h := newHarness(t, storedToken(time.Hour, 50*24*time.Hour))
	h.oauth.errs = []error{
		&pinterest.APIError{StatusCode: 503, Method: "POST", Path: "/oauth/token"},
		&pinterest.RateLimitError{APIError: pinterest.APIError{StatusCode: 429, Method: "POST", Path: "/oauth/token"}},
	}
	res, err := h.r.Run(context.Background(), false)
	if err != nil || !res.Refreshed || len(h.oauth.calls) != 3 {
		t.Fatalf("res %+v err %v calls %d; want refreshed on the third call", res, err, len(h.oauth.calls))
	}
	if len(h.alerts.got) != 0 {
		t.Errorf("a recovered run alerted: %v", h.alerts.got)
	}
}

func TestPersistentTransientFailureAlerts(t *testing.T) {
	h := newHarness(t, storedToken(time.Hour, 50*24*time.Hour))
	for range 10 {
		h.oauth.errs = append(h.oauth.errs, &pinterest.APIError{StatusCode: 500, Method: "POST", Path: "/oauth/token"})
	}
	_, err := h.r.Run(context.Background(), false)
	if err == nil || errors.Is(err, ErrReconnectNeeded) {
		t.Fatalf("err = %v, want a transient failure", err)
	}
	if len(h.oauth.calls) != 4 || h.store.saves != 0 || len(h.alerts.got) != 1 {
		t.Errorf("calls %d saves %d alerts %d; want 4, 0, 1", len(h.oauth.calls), h.store.saves, len(h.alerts.got))
	}
}

// TestStoreWriteIsNotRetriedHere: the store owns the retries of its write
// (SecretsManagerStore.Save retries throttling and server faults); the
// refresher calls Save once, so retries never nest.
func TestStoreWriteIsNotRetriedHere(t *testing.T) {
	h := newHarness(t, storedToken(time.Hour, 50*24*time.Hour))
	h.store.failSaves = 1
	_, err := h.r.Run(context.Background(), false)
	if err == nil || h.store.saves != 1 {
		t.Fatalf("err %v saves %d; want an error after one save", err, h.store.saves)
	}
}

func TestStoreWriteFailureIsAnErrorAndLogsNoToken(t *testing.T) {
	h := newHarness(t, storedToken(time.Hour, 50*24*time.Hour))
	h.store.failSaves = 100
	_, err := h.r.Run(context.Background(), false)
	if err == nil || !strings.Contains(err.Error(), "store the refreshed token") {
		t.Fatalf("err = %v", err)
	}
	if h.store.saves != 1 || len(h.alerts.got) != 1 {
		t.Errorf("saves %d alerts %d; want 1 and 1", h.store.saves, len(h.alerts.got))
	}
	if !strings.Contains(h.logs.String(), "could not be stored") {
		t.Error("the lost token was not logged (without its secrets)")
	}
	h.assertNoSecretsLogged(t)
}

func TestRefreshTokenNearExpiryAlertsOnce(t *testing.T) {
	h := newHarness(t, storedToken(20*24*time.Hour, 10*24*time.Hour))
	res, err := h.r.Run(context.Background(), false)
	if err != nil || res.Refreshed {
		t.Fatalf("res %+v err %v", res, err)
	}
	if len(h.alerts.got) != 1 || res.Alerts != 1 {
		t.Fatalf("alerts = %d (result says %d), want 1", len(h.alerts.got), res.Alerts)
	}
	if a := h.alerts.got[0]; !strings.Contains(a.Problem, "expires at") || !strings.Contains(a.Text(), "pinlist connect") {
		t.Errorf("alert text:\n%s", a.Text())
	}
}

func TestLapsedRefreshTokenNeedsReconnectWithoutACall(t *testing.T) {
	h := newHarness(t, storedToken(-time.Hour, -time.Minute))
	_, err := h.r.Run(context.Background(), false)
	if !errors.Is(err, ErrReconnectNeeded) || len(h.oauth.calls) != 0 {
		t.Fatalf("err %v calls %d", err, len(h.oauth.calls))
	}
}

func TestNothingStoredNeedsReconnect(t *testing.T) {
	h := newHarness(t, nil)
	_, err := h.r.Run(context.Background(), false)
	if !errors.Is(err, ErrReconnectNeeded) || len(h.alerts.got) != 1 {
		t.Fatalf("err %v alerts %d", err, len(h.alerts.got))
	}
}

func TestNewChecksOptions(t *testing.T) {
	valid := func() Options {
		return Options{Store: &memStore{}, NewRefresher: func(token.Token) TokenRefresher { return &fakeOAuth{} }}
	}
	tests := []struct {
		name      string
		mod       func(*Options)
		wantField string // "" means New succeeds
	}{
		{"defaults", func(*Options) {}, ""},
		{"no store", func(o *Options) { o.Store = nil }, "Options.Store"},
		{"no refresher", func(o *Options) { o.NewRefresher = nil }, "Options.NewRefresher"},
		{"negative refresh window", func(o *Options) { o.RefreshBefore = -time.Hour }, "Options.RefreshBefore"},
		{"negative alert window", func(o *Options) { o.AlertBefore = -time.Hour }, "Options.AlertBefore"},
		{"negative attempts", func(o *Options) { o.Retry.Attempts = -1 }, "Options.Retry.Attempts"},
		{"negative backoff", func(o *Options) { o.Retry.Base = -time.Second }, "Options.Retry.Base"},
		{"negative backoff cap", func(o *Options) { o.Retry.Max = -time.Second }, "Options.Retry.Max"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := valid()
			tc.mod(&opts)
			r, err := New(opts)
			if tc.wantField == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				o := r.o
				if o.RefreshBefore != 240*time.Hour || o.AlertBefore != DefaultAlertBefore || o.Retry.Attempts != DefaultRetry.Attempts ||
					o.Retry.Base != DefaultRetry.Base || o.Logger != slog.Default() || o.Connection != DefaultConnection {
					t.Errorf("zero options did not take the defaults: %+v", o)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantField) {
				t.Fatalf("New = %v, want an error naming %s", err, tc.wantField)
			}
		})
	}
}
