// Package refresh keeps the stored Pinterest token pair fresh: on a schedule
// it refreshes the access token ahead of its expiry, stores the rotated pair
// before anything else, reports how long both tokens have left as metrics,
// and raises an alert when the connection needs a person (a failed refresh,
// or a refresh token close to lapsing).
//
// The Lambda function (functions/refresh, an EventBridge schedule) and the
// local runner call the same Refresher.
package refresh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/pinlist/pinlist/internal/config"
	"github.com/pinlist/pinlist/internal/emf"
	"github.com/pinlist/pinlist/internal/pinterest"
	"github.com/pinlist/pinlist/internal/retry"
	"github.com/pinlist/pinlist/internal/token"
)

// DefaultAlertBefore is how long before the refresh token lapses a warning
// goes out: a lapsed refresh token means a new OAuth grant (reconnect).
const DefaultAlertBefore = 14 * 24 * time.Hour

// DefaultRetry is how a transient failure of the token endpoint is retried:
// 4 calls, jittered waits of at most 500 ms, 1 s and 2 s. Only the token
// endpoint call is retried here: the store write is retried by the store
// that owns it (token.SecretsManagerStore.Save), never again around it.
var DefaultRetry = retry.Policy{Attempts: 4, Base: 500 * time.Millisecond, Max: 4 * time.Second}

// DefaultConnection names the connection when Options.Connection is empty.
const DefaultConnection = config.DefaultConnectionName

// ErrReconnectNeeded marks failures only a new OAuth grant fixes: Pinterest
// answered invalid_grant, the refresh token has lapsed, or no token is stored.
var ErrReconnectNeeded = errors.New("reconnect needed")

// TokenRefresher trades a refresh token for a new pair
// (*pinterest.OAuth satisfies it).
type TokenRefresher interface {
	Refresh(ctx context.Context, refreshToken string) (*pinterest.Token, error)
}

var _ TokenRefresher = (*pinterest.OAuth)(nil)

// Options configure a Refresher. Store and NewRefresher are required.
type Options struct {
	// Store holds the token; the refreshed pair is saved there.
	Store token.Store
	// NewRefresher returns the OAuth client for the stored token's app.
	NewRefresher func(t token.Token) TokenRefresher
	// RefreshBefore: refresh when the access token expires within this
	// window. Default config.DefaultRefreshBefore (PINLIST_REFRESH_BEFORE).
	RefreshBefore time.Duration
	// AlertBefore: warn when the refresh token expires within this window.
	// Default DefaultAlertBefore.
	AlertBefore time.Duration
	// Alerts receives alerts; nil drops them (they are still logged).
	Alerts Alerter
	// Metrics receives one CloudWatch EMF line per run; nil drops it.
	Metrics *MetricsWriter
	// Connection names the connection in alerts and metrics. Default
	// DefaultConnection.
	Connection string
	// Probe, when set, checks a token that is not due yet against Pinterest
	// and a refused one is refreshed at once (see Prober).
	Probe Prober
	// ReconnectCommand is the exact command an operator runs to reconnect;
	// it is put into alerts.
	ReconnectCommand string
	// Retry shapes the retries of a transient token endpoint failure; zero
	// fields take DefaultRetry's (a nil Sleep waits for real).
	Retry retry.Policy
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Logger receives the run's log lines; nil means slog.Default().
	Logger *slog.Logger
}

// Refresher runs one refresh check at a time.
type Refresher struct{ o Options }

// New checks opts and fills in defaults: a zero field takes its default, a
// negative one is an error naming it.
func New(opts Options) (*Refresher, error) {
	switch {
	case opts.Store == nil:
		return nil, errors.New("new refresher: Options.Store is required")
	case opts.NewRefresher == nil:
		return nil, errors.New("new refresher: Options.NewRefresher is required")
	case opts.RefreshBefore < 0:
		return nil, fmt.Errorf("new refresher: Options.RefreshBefore %s is negative", opts.RefreshBefore)
	case opts.AlertBefore < 0:
		return nil, fmt.Errorf("new refresher: Options.AlertBefore %s is negative", opts.AlertBefore)
	case opts.Retry.Attempts < 0:
		return nil, fmt.Errorf("new refresher: Options.Retry.Attempts %d is negative", opts.Retry.Attempts)
	case opts.Retry.Base < 0:
		return nil, fmt.Errorf("new refresher: Options.Retry.Base %s is negative", opts.Retry.Base)
	case opts.Retry.Max < 0:
		return nil, fmt.Errorf("new refresher: Options.Retry.Max %s is negative", opts.Retry.Max)
	}
	if opts.RefreshBefore == 0 {
		opts.RefreshBefore = config.DefaultRefreshBefore
	}
	if opts.AlertBefore == 0 {
		opts.AlertBefore = DefaultAlertBefore
	}
	if opts.Retry.Attempts == 0 {
		opts.Retry.Attempts = DefaultRetry.Attempts
	}
	if opts.Retry.Base == 0 {
		opts.Retry.Base = DefaultRetry.Base
	}
	if opts.Retry.Max == 0 {
		opts.Retry.Max = max(DefaultRetry.Max, opts.Retry.Base)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Connection == "" {
		opts.Connection = DefaultConnection
	}
	return &Refresher{o: opts}, nil
}

// Result is what one run found and did. It holds no secrets.
type Result struct {
	Refreshed bool `json:"refreshed"`
	// Refused is set when Pinterest refused the access token before its
	// stored expiry (the probe), which made the run refresh it.
	Refused               bool      `json:"refused,omitempty"`
	AccessTokenExpiresAt  time.Time `json:"accessTokenExpiresAt"`
	RefreshTokenExpiresAt time.Time `json:"refreshTokenExpiresAt,omitzero"`
	DaysToAccessExpiry    float64   `json:"daysToAccessTokenExpiry"`
	DaysToRefreshExpiry   float64   `json:"daysToRefreshTokenExpiry,omitempty"`
	Alerts                int       `json:"alerts"`
}

// Event is the detail a scheduled or hand-made invocation may carry:
// {"force": true} refreshes even when the token is not due.
type Event struct {
	Force bool `json:"force"`
}

// HandleEvent is the Lambda entry point for the EventBridge schedule.
func (r *Refresher) HandleEvent(ctx context.Context, ev events.EventBridgeEvent) (Result, error) {
	var detail Event
	if len(ev.Detail) > 0 && string(ev.Detail) != "null" {
		if err := json.Unmarshal(ev.Detail, &detail); err != nil {
			return Result{}, fmt.Errorf("refresh: read event detail: %w", err)
		}
	}
	return r.Run(ctx, detail.Force)
}

// Run refreshes the token when it is due (or when force is set), stores the
// new pair, emits metrics and raises alerts. A failure that only a new OAuth
// grant fixes wraps ErrReconnectNeeded.
func (r *Refresher) Run(ctx context.Context, force bool) (Result, error) {
	log := r.o.Logger
	now := r.o.Now()
	t, err := r.o.Store.Load(ctx)
	if err != nil {
		if errors.Is(err, token.ErrNotFound) {
			err = fmt.Errorf("refresh: no Pinterest token is stored: %w", ErrReconnectNeeded)
		} else {
			err = fmt.Errorf("refresh: load token: %w", err)
		}
		return r.fail(ctx, Result{}, err)
	}
	res := r.result(t, now)

	due := force || !t.AccessTokenExpiresAt.After(now.Add(r.o.RefreshBefore))
	if !due && r.o.Probe != nil {
		switch err := r.o.Probe(ctx, t); {
		case refused(err):
			log.WarnContext(ctx, "Pinterest refused the access token before its expiry; refreshing it now",
				"access_token_expires_at", t.AccessTokenExpiresAt)
			due, res.Refused = true, true
		case err != nil:
			log.WarnContext(ctx, "could not check the access token with Pinterest", "error", err.Error())
		}
	}
	if !due {
		log.InfoContext(ctx, "token not due for refresh", "token", t, "refresh_before", r.o.RefreshBefore.String())
		r.emit(res, false)
		res.Alerts += r.warnRefreshExpiry(ctx, res, now)
		return res, nil
	}
	if !t.RefreshTokenExpiresAt.IsZero() && !t.RefreshTokenExpiresAt.After(now) {
		return r.fail(ctx, res, fmt.Errorf("refresh: the refresh token expired at %s: %w",
			t.RefreshTokenExpiresAt.UTC().Format(time.RFC3339), ErrReconnectNeeded))
	}

	fresh, err := r.refresh(ctx, t)
	if err != nil {
		return r.fail(ctx, res, err)
	}
	next := t
	next.AccessToken = fresh.AccessToken
	next.RefreshToken = fresh.RefreshToken
	next.AccessTokenExpiresAt = fresh.AccessTokenExpiresAt
	if !fresh.RefreshTokenExpiresAt.IsZero() {
		next.RefreshTokenExpiresAt = fresh.RefreshTokenExpiresAt
	}
	if fresh.Scope != "" {
		next.Scope = fresh.Scope
	}
	next.RefreshedAt = now

	// The old refresh token may be dead now: storing the new pair comes first.
	// The store retries its own transient failures (SecretsManagerStore.Save
	// does): one call here, so a refused write is tried once, not once per
	// layer.
	if err := r.o.Store.Save(ctx, next); err != nil {
		log.ErrorContext(ctx, "refreshed token could not be stored; the previous refresh token may no longer work",
			"token", next, "error", err.Error())
		return r.fail(ctx, r.result(next, now), fmt.Errorf("refresh: store the refreshed token: %w", err))
	}
	refusedBefore := res.Refused
	res = r.result(next, now)
	res.Refreshed, res.Refused = true, refusedBefore
	log.InfoContext(ctx, "token refreshed", "token", next)
	r.emit(res, false)
	res.Alerts += r.warnRefreshExpiry(ctx, res, now)
	return res, nil
}

// refresh calls the token endpoint, retrying transient failures. A refresh
// that reached Pinterest but whose reply was lost has rotated the refresh
// token; the retry then gets invalid_grant, which is reported as such.
func (r *Refresher) refresh(ctx context.Context, t token.Token) (*pinterest.Token, error) {
	if t.RefreshToken == "" {
		return nil, fmt.Errorf("refresh: the stored token has no refresh token: %w", ErrReconnectNeeded)
	}
	client := r.o.NewRefresher(t)
	var fresh *pinterest.Token
	attempts := 0
	err := retry.Do(ctx, r.o.Retry, func(err error) bool {
		return !errors.Is(err, pinterest.ErrReconnectNeeded) && pinterest.IsRetryable(err)
	}, func(ctx context.Context) error {
		attempts++
		var err error
		fresh, err = client.Refresh(ctx, t.RefreshToken)
		return err
	}, func(attempt int, wait time.Duration, err error) {
		r.o.Logger.WarnContext(ctx, "token refresh failed, retrying", "attempt", attempt, "wait", wait.String(), "error", err.Error())
	})
	switch {
	case err == nil:
		if fresh.RefreshToken == "" {
			fresh.RefreshToken = t.RefreshToken
		}
		return fresh, nil
	case errors.Is(err, pinterest.ErrReconnectNeeded):
		return nil, fmt.Errorf("refresh: Pinterest refused the refresh token: %w: %w", ErrReconnectNeeded, err)
	default:
		return nil, fmt.Errorf("refresh: after %d attempts: %w", attempts, err)
	}
}

// fail logs, counts and alerts a failed run, then returns err.
func (r *Refresher) fail(ctx context.Context, res Result, err error) (Result, error) {
	r.o.Logger.ErrorContext(ctx, "token refresh failed", "error", err.Error(),
		"reconnect_needed", errors.Is(err, ErrReconnectNeeded))
	r.emit(res, true)
	what := "The scheduled refresh of the Pinterest access token failed: " + err.Error()
	if errors.Is(err, ErrReconnectNeeded) {
		what = "The Pinterest connection must be reconnected (a new OAuth grant): " + err.Error()
	}
	if r.alert(ctx, Alert{Subject: "token refresh failed", Problem: what}) {
		res.Alerts++
	}
	return res, err
}

// warnRefreshExpiry alerts when the refresh token lapses within AlertBefore.
func (r *Refresher) warnRefreshExpiry(ctx context.Context, res Result, now time.Time) int {
	if res.RefreshTokenExpiresAt.IsZero() || res.RefreshTokenExpiresAt.After(now.Add(r.o.AlertBefore)) {
		return 0
	}
	problem := fmt.Sprintf("The Pinterest refresh token expires at %s (%.1f days left). After that, exports stop until the connection is reconnected.",
		res.RefreshTokenExpiresAt.UTC().Format(time.RFC3339), res.DaysToRefreshExpiry)
	r.o.Logger.ErrorContext(ctx, "refresh token expires soon", "refresh_token_expires_at", res.RefreshTokenExpiresAt,
		"days_left", res.DaysToRefreshExpiry)
	if r.alert(ctx, Alert{Subject: "refresh token expires soon", Problem: problem}) {
		return 1
	}
	return 0
}

func (r *Refresher) alert(ctx context.Context, a Alert) bool {
	if r.o.Alerts == nil {
		return false
	}
	a.Connection = r.o.Connection
	a.ReconnectCommand = r.o.ReconnectCommand
	if err := r.o.Alerts.Publish(ctx, a); err != nil {
		r.o.Logger.ErrorContext(ctx, "alert could not be sent", "subject", a.Subject, "error", err.Error())
		return false
	}
	return true
}

func (r *Refresher) result(t token.Token, now time.Time) Result {
	res := Result{
		AccessTokenExpiresAt:  t.AccessTokenExpiresAt,
		RefreshTokenExpiresAt: t.RefreshTokenExpiresAt,
		DaysToAccessExpiry:    t.DaysToAccessTokenExpiry(now),
	}
	if !t.RefreshTokenExpiresAt.IsZero() {
		res.DaysToRefreshExpiry = t.DaysToRefreshTokenExpiry(now)
	}
	return res
}

func (r *Refresher) emit(res Result, failed bool) {
	if r.o.Metrics == nil {
		return
	}
	failures := 0.0
	if failed {
		failures = 1
	}
	m := []emf.Metric{{Name: "RefreshFailures", Unit: "Count", Value: failures}}
	if !res.AccessTokenExpiresAt.IsZero() {
		m = append(m, emf.Metric{Name: "DaysToAccessTokenExpiry", Unit: "None", Value: res.DaysToAccessExpiry})
	}
	if !res.RefreshTokenExpiresAt.IsZero() {
		m = append(m, emf.Metric{Name: "DaysToRefreshTokenExpiry", Unit: "None", Value: res.DaysToRefreshExpiry})
	}
	if err := r.o.Metrics.Write(r.o.Connection, m); err != nil {
		r.o.Logger.Warn("could not write the refresh metrics", "error", err.Error())
	}
}
