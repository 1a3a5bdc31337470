// Package connect is `pinlist connect`: it connects pinlist to a Pinterest ad
// account with Pinterest's OAuth authorisation-code flow, receiving the
// browser's redirect on a 127.0.0.1 listener, checks the new token against
// the ad account and writes it to a token store (a 0600 file or a Secrets
// Manager secret). Output, browser, clock, HTTP client and store are
// injected, so tests play the browser.
package connect

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/oauth2"

	"github.com/pinlist/pinlist/internal/pinterest"
	"github.com/pinlist/pinlist/internal/token"
)

// Defaults of the zero Options fields (RedirectPort has none: 0 picks a free
// port; the command's default is DefaultRedirectPort).
const (
	DefaultRedirectPort = 8085
	DefaultRedirectHost = "127.0.0.1"
	DefaultTimeout      = 5 * time.Minute
)

const (
	// CallbackPath is the redirect URI's path.
	CallbackPath = "/callback"
	// finishTimeout bounds the code exchange, the check and the write that
	// follow the approval; the wait for the approval is Options.Timeout.
	finishTimeout = 2 * time.Minute
	// shutdownTimeout bounds how long the callback server waits for the
	// browser's page to be written.
	shutdownTimeout = 5 * time.Second
)

// Scopes are the OAuth scopes pinlist asks for and needs.
var Scopes = []string{"ads:read", "ads:write"}

var adAccountPattern = regexp.MustCompile(`^[0-9]{1,18}$`)

var (
	// ErrStateMismatch is a callback whose state is not the one this run
	// sent: a stale tab or a forged request. Nothing is written.
	ErrStateMismatch = errors.New("the callback's state does not match the one pinlist sent (a stale browser tab or a forged request)")
	// ErrDenied is a callback that reports that the authorisation was not
	// granted (the user declined, or Pinterest refused the request).
	ErrDenied = errors.New("Pinterest did not authorise pinlist")
	// ErrTimeout is no callback within Options.Timeout.
	ErrTimeout = errors.New("no approval arrived in time")
)

// Options configure Run.
type Options struct {
	// ClientID and ClientSecret are the Pinterest app's. When empty they are
	// taken from the token already in the store (the secret only if it
	// belongs to the same client ID), so reconnecting needs only the store.
	ClientID     string
	ClientSecret string
	// ReadSecret asks for the client secret when it is still missing (the
	// command prompts on a terminal without echo). nil: a missing secret is
	// an error.
	ReadSecret func(clientID string) (string, error)
	// AdAccountID is the ad account to connect; when empty, the stored
	// token's.
	AdAccountID string
	// APIBaseURL is the Pinterest API v5 base URL (the token endpoint is
	// APIBaseURL/oauth/token). Default pinterest.DefaultBaseURL.
	APIBaseURL string
	// AuthURL is the consent page. Default pinterest.DefaultAuthURL.
	AuthURL string
	// RedirectPort is the callback's port on 127.0.0.1; the redirect URI is
	// http://REDIRECTHOST:PORT/callback and must be registered for the app.
	// 0 picks a free port (tests).
	RedirectPort int
	// RedirectHost is the redirect URI's host: "127.0.0.1" (the default) or
	// "localhost", for an app whose registered URI names localhost. The
	// listener is on 127.0.0.1 either way.
	RedirectHost string
	// Timeout is how long to wait for the approval. Default DefaultTimeout.
	Timeout time.Duration
	// Target is where the token is written. Required.
	Target Target
	// Out receives the instructions and the result; nil discards them.
	// Secrets never reach it.
	Out io.Writer
	// OpenBrowser, when set, is asked to open the authorisation URL; a
	// failure only prints a note (the URL is printed anyway).
	OpenBrowser func(ctx context.Context, url string) error
	// Now is the clock for the expiries and the refresh time. Default
	// time.Now.
	Now func() time.Time
	// HTTPClient makes the Pinterest calls. Default http.DefaultClient.
	HTTPClient *http.Client
}

// Result is what Run stored.
type Result struct {
	AdAccountID string
	// Token is the stored token; it prints and logs without its secrets.
	Token token.Token
	// Store is Target.Name.
	Store string
}

// Run connects: it prints the authorisation URL, waits for the browser's
// redirect to the callback, checks its state, exchanges the code, checks the
// token by listing the ad account's customer lists, and writes the token to
// the target. The store is written only when all of that succeeded: a
// timeout, a cancelled ctx (Ctrl-C), a wrong state or any failure leaves it
// as it was.
func Run(ctx context.Context, o Options) (Result, error) {
	o = o.withDefaults()
	if o.Target.Store == nil {
		return Result{}, errors.New("connect: no token store")
	}
	if o.RedirectHost != "127.0.0.1" && o.RedirectHost != "localhost" {
		return Result{}, fmt.Errorf("redirect host %q: want 127.0.0.1 or localhost (the callback listens on 127.0.0.1)", o.RedirectHost)
	}
	if o.Target.Check != nil {
		if err := o.Target.Check(ctx); err != nil {
			return Result{}, err
		}
	}
	if err := o.complete(ctx); err != nil {
		return Result{}, err
	}

	ln, port, err := listen(o.RedirectPort)
	if err != nil {
		return Result{}, err
	}
	defer ln.Close()
	redirectURI := "http://" + net.JoinHostPort(o.RedirectHost, strconv.Itoa(port)) + CallbackPath
	flow := pinterest.NewOAuth(pinterest.OAuthConfig{
		ClientID:     o.ClientID,
		ClientSecret: o.ClientSecret,
		RedirectURL:  redirectURI,
		BaseURL:      o.APIBaseURL,
		AuthURL:      o.AuthURL,
		Scopes:       Scopes,
		HTTPClient:   o.HTTPClient,
		Now:          o.Now,
	})
	state := rand.Text()
	authURL := flow.AuthCodeURL(state)

	cb := newCallback(state)
	srv := &http.Server{Handler: cb, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln) // returns http.ErrServerClosed at shutdown
	}()
	defer func() {
		// Let the browser's page be written, then stop.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
		<-served
	}()
	defer cb.stop() // runs before the shutdown: a waiting browser gets its page

	fmt.Fprintf(o.Out, "Connecting pinlist to Pinterest ad account %s with app %s.\n\n", o.AdAccountID, o.ClientID)
	fmt.Fprintf(o.Out, "Your Pinterest app must list this redirect URI (developers.pinterest.com, My apps, your app):\n  %s\n\n", redirectURI)
	fmt.Fprintf(o.Out, "Open this URL in a browser where you are logged in to Pinterest, and approve:\n  %s\n\n", authURL)
	if o.OpenBrowser != nil {
		if err := o.OpenBrowser(ctx, authURL); err != nil {
			fmt.Fprintf(o.Out, "(Could not open a browser: %v. Open the URL yourself.)\n", err)
		}
	}
	fmt.Fprintf(o.Out, "Waiting up to %s for the approval (Ctrl-C stops; nothing is written until it succeeds)...\n", o.Timeout)

	a, err := cb.wait(ctx, o.Timeout)
	if err != nil {
		return Result{}, err
	}
	if a.err != nil {
		return Result{}, a.err
	}
	res, err := o.finish(ctx, flow, a.code)
	a.reply(res, err)
	if err != nil {
		return Result{}, err
	}
	o.printResult(res)
	return res, nil
}

func (o Options) withDefaults() Options {
	if o.APIBaseURL == "" {
		o.APIBaseURL = pinterest.DefaultBaseURL
	}
	o.APIBaseURL = strings.TrimRight(o.APIBaseURL, "/")
	if o.AuthURL == "" {
		o.AuthURL = pinterest.DefaultAuthURL
	}
	if o.RedirectHost == "" {
		o.RedirectHost = DefaultRedirectHost
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	return o
}

// complete fills the client ID, secret and ad account from the stored token
// when they were not given, asks for a missing secret, and checks them.
func (o *Options) complete(ctx context.Context) error {
	var loadErr error
	if o.ClientID == "" || o.ClientSecret == "" || o.AdAccountID == "" {
		stored, err := o.Target.Store.Load(ctx)
		switch {
		case err == nil:
			used := false
			if o.ClientID == "" && stored.ClientID != "" {
				o.ClientID, used = stored.ClientID, true
			}
			if o.ClientSecret == "" && stored.ClientSecret != "" && stored.ClientID == o.ClientID {
				o.ClientSecret, used = stored.ClientSecret, true
			}
			if o.AdAccountID == "" && stored.AdAccountID != "" {
				o.AdAccountID, used = stored.AdAccountID, true
			}
			if used {
				fmt.Fprintf(o.Out, "Reconnecting: using the app and ad account stored in %s where none was given.\n", o.Target.Name)
			}
		case errors.Is(err, token.ErrNotFound):
		default:
			loadErr = err
		}
	}
	missing := func(what string) error {
		if loadErr != nil {
			return fmt.Errorf("%s (and the stored token could not be read: %w)", what, loadErr)
		}
		return errors.New(what)
	}
	if o.ClientID == "" {
		return missing("no Pinterest app client ID: pass --client-id or set PINTEREST_CLIENT_ID (developers.pinterest.com, My apps, your app's App ID)")
	}
	if o.ClientSecret == "" && o.ReadSecret != nil {
		secret, err := o.ReadSecret(o.ClientID)
		if err != nil {
			return fmt.Errorf("read the app secret: %w", err)
		}
		o.ClientSecret = strings.TrimSpace(secret)
	}
	if o.ClientSecret == "" {
		return missing("no Pinterest app secret: set PINTEREST_CLIENT_SECRET, pass --client-secret, or run on a terminal to be asked for it")
	}
	if o.AdAccountID == "" {
		return missing("no ad account: pass --ad-account or set PINTEREST_AD_ACCOUNT_ID (the digits in Ads Manager's URL)")
	}
	if !adAccountPattern.MatchString(o.AdAccountID) {
		return fmt.Errorf("ad account %q: want 1 to 18 digits (the number in Ads Manager's URL)", o.AdAccountID)
	}
	return nil
}

// listen opens the callback listener on 127.0.0.1:port.
func listen(port int) (net.Listener, int, error) {
	if port < 0 || port > 65535 {
		return nil, 0, fmt.Errorf("redirect port %d: want 1 to 65535", port)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, 0, fmt.Errorf("listen for the callback on %s: the port is in use (another pinlist connect?): stop that, or use --redirect-port with another port that is registered as a redirect URI of your app", addr)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("listen for the callback on %s: %w", addr, err)
	}
	return ln, ln.Addr().(*net.TCPAddr).Port, nil
}

// finish exchanges the code, checks the token and writes it.
func (o Options) finish(ctx context.Context, flow *pinterest.OAuth, code string) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, finishTimeout)
	defer cancel()
	fmt.Fprintln(o.Out, "Approved. Exchanging the code for a token...")
	pt, err := flow.Exchange(ctx, code)
	if err != nil {
		return Result{}, exchangeError(err)
	}
	if missing := missingScopes(pt.Scope); len(missing) > 0 {
		return Result{}, fmt.Errorf("Pinterest granted the scopes %q, but pinlist needs %s too: check that the app has access to the Ads API (developers.pinterest.com), then run pinlist connect again", pt.Scope, strings.Join(missing, " and "))
	}
	fmt.Fprintf(o.Out, "Checking the token against ad account %s...\n", o.AdAccountID)
	if err := o.verify(ctx, pt.AccessToken); err != nil {
		return Result{}, err
	}
	t := token.Token{
		ClientID:              o.ClientID,
		ClientSecret:          o.ClientSecret,
		AccessToken:           pt.AccessToken,
		RefreshToken:          pt.RefreshToken,
		AccessTokenExpiresAt:  pt.AccessTokenExpiresAt,
		RefreshTokenExpiresAt: pt.RefreshTokenExpiresAt,
		Scope:                 pt.Scope,
		AdAccountID:           o.AdAccountID,
		RefreshedAt:           o.Now(),
	}
	if err := t.Validate(); err != nil {
		return Result{}, fmt.Errorf("Pinterest's token reply is incomplete, nothing was written: %w", err)
	}
	// A Ctrl-C that arrived during the check still means "do not write".
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("stopped before writing the token, nothing was written: %w", err)
	}
	if err := o.Target.Store.Save(ctx, t); err != nil {
		return Result{}, fmt.Errorf("the token works but could not be written to %s (fix that and run pinlist connect again): %w", o.Target.Name, err)
	}
	return Result{AdAccountID: o.AdAccountID, Token: t, Store: o.Target.Name}, nil
}

// exchangeError says what a failed code exchange means for the user.
func exchangeError(err error) error {
	var apiErr *pinterest.APIError
	switch {
	case errors.Is(err, pinterest.ErrReconnectNeeded):
		return fmt.Errorf("Pinterest refused the authorisation code (it expired, was used already, or the redirect URI differs from the app's): run pinlist connect again: %w", err)
	case errors.As(err, &apiErr) && (apiErr.StatusCode == http.StatusUnauthorized || apiErr.StatusCode == http.StatusForbidden):
		return fmt.Errorf("Pinterest refused the app's client ID or secret: check them (--client-id, PINTEREST_CLIENT_SECRET) and run pinlist connect again: %w", err)
	}
	return err
}

// missingScopes returns the needed scopes a granted scope list lacks; none
// when Pinterest did not say what it granted.
func missingScopes(granted string) []string {
	if strings.TrimSpace(granted) == "" {
		return nil
	}
	have := strings.FieldsFunc(granted, func(r rune) bool { return r == ',' || r == ' ' })
	var missing []string
	for _, s := range Scopes {
		if !slices.Contains(have, s) {
			missing = append(missing, s)
		}
	}
	return missing
}

// verify lists the ad account's customer lists with the new access token;
// the first page is proof enough.
func (o Options) verify(ctx context.Context, accessToken string) error {
	client, err := pinterest.New(pinterest.Options{
		AdAccountID: o.AdAccountID,
		BaseURL:     o.APIBaseURL,
		HTTPClient:  o.HTTPClient,
		TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: accessToken, TokenType: "Bearer"}),
		Retry:       pinterest.RetryPolicy{MaxAttempts: 3},
		Logger:      slog.New(slog.DiscardHandler), // the command reports the outcome itself
	})
	if err != nil {
		return fmt.Errorf("check the token: %w", err)
	}
	for _, err := range client.CustomerLists(ctx) {
		if err != nil {
			return verifyError(o.AdAccountID, err)
		}
		break
	}
	return nil
}

// verifyError says what a failed check means for the user.
func verifyError(adAccountID string, err error) error {
	var apiErr *pinterest.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.StatusCode {
		case http.StatusNotFound:
			return fmt.Errorf("ad account %s was not found, nothing was written: check --ad-account (the digits in Ads Manager's URL): %w", adAccountID, err)
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("the Pinterest user who approved cannot read ad account %s's customer lists, nothing was written: approve as a user with access to that ad account, or check --ad-account: %w", adAccountID, err)
		}
	}
	return fmt.Errorf("check the token by listing ad account %s's customer lists, nothing was written: %w", adAccountID, err)
}

// printResult tells the user what is connected and when it expires.
func (o Options) printResult(r Result) {
	now := o.Now()
	fmt.Fprintf(o.Out, "\nConnected Pinterest ad account %s.\n", r.AdAccountID)
	fmt.Fprintf(o.Out, "  access token expires:  %s (pinlist refreshes it before then)\n", expiry(r.Token.AccessTokenExpiresAt, now))
	fmt.Fprintf(o.Out, "  refresh token expires: %s (each refresh renews it; if it lapses, run pinlist connect again)\n", expiry(r.Token.RefreshTokenExpiresAt, now))
	fmt.Fprintf(o.Out, "  scope:                 %s\n", r.Token.Scope)
	fmt.Fprintf(o.Out, "  stored in:             %s\n", r.Store)
}

// expiry is "2026-12-27 09:30 UTC, in 30 days".
func expiry(at, now time.Time) string {
	days := int(math.Round(at.Sub(now).Hours() / 24))
	unit := "days"
	if days == 1 || days == -1 {
		unit = "day"
	}
	when := fmt.Sprintf("in %d %s", days, unit)
	if days < 0 {
		when = fmt.Sprintf("%d %s ago", -days, unit)
	}
	return at.UTC().Format("2006-01-02 15:04 UTC") + ", " + when
}
