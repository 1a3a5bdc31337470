package pinterest

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// DefaultAuthURL is Pinterest's OAuth consent page.
const DefaultAuthURL = "https://www.pinterest.com/oauth/"

// defaultScopes are the scopes pinlist needs: read and write ads data
// (customer lists and audiences).
func defaultScopes() []string { return []string{"ads:read", "ads:write"} }

// OAuthConfig describes a Pinterest OAuth app.
type OAuthConfig struct {
	ClientID     string
	ClientSecret string
	// RedirectURL is the app's registered redirect URI.
	RedirectURL string
	// BaseURL is the API v5 base URL; the token URL is BaseURL + "/oauth/token".
	// Default DefaultBaseURL.
	BaseURL string
	// AuthURL is the consent page. Default DefaultAuthURL.
	AuthURL string
	// Scopes default to ads:read and ads:write.
	Scopes []string
	// HTTPClient is used for the token endpoint (copied, with the same
	// redirect guard as Client). Default http.DefaultClient.
	HTTPClient *http.Client
	// Now is the clock for expiry times. Default time.Now.
	Now func() time.Time
}

// OAuth runs Pinterest's OAuth 2.0 authorisation-code flow and refreshes
// tokens, with HTTP Basic client authentication at the token endpoint.
// Calls are not retried: a code is single-use and a refresh token rotates,
// so the caller decides (IsRetryable tells it which failures are transient).
type OAuth struct {
	cfg     oauth2.Config
	authURL string
	scopes  []string
	hc      *http.Client
	now     func() time.Time
}

// NewOAuth returns an OAuth flow for cfg, with defaults filled in.
func NewOAuth(cfg OAuthConfig) *OAuth {
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	authURL := cfg.AuthURL
	if authURL == "" {
		authURL = DefaultAuthURL
	}
	scopes := cfg.Scopes
	if len(scopes) == 0 {
		scopes = defaultScopes()
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &OAuth{
		cfg: oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			RedirectURL:  cfg.RedirectURL,
			Endpoint: oauth2.Endpoint{
				AuthURL:   authURL,
				TokenURL:  base + "/oauth/token",
				AuthStyle: oauth2.AuthStyleInHeader,
			},
			Scopes: append([]string(nil), scopes...),
		},
		authURL: authURL,
		scopes:  append([]string(nil), scopes...),
		hc:      guardRedirects(hc),
		now:     now,
	}
}

// AuthCodeURL is the consent page URL to send a person to; Pinterest
// redirects back to the redirect URL with code and state. Scopes are
// comma-separated, as Pinterest wants (oauth2.Config would use spaces).
func (o *OAuth) AuthCodeURL(state string) string {
	q := url.Values{
		"client_id":     {o.cfg.ClientID},
		"redirect_uri":  {o.cfg.RedirectURL},
		"response_type": {"code"},
		"scope":         {strings.Join(o.scopes, ",")},
		"state":         {state},
	}
	sep := "?"
	if strings.Contains(o.authURL, "?") {
		sep = "&"
	}
	return o.authURL + sep + q.Encode()
}

// Exchange trades an authorisation code for a token pair.
func (o *OAuth) Exchange(ctx context.Context, code string) (*Token, error) {
	if code == "" {
		return nil, errors.New("exchange authorization code: empty code")
	}
	t, err := o.cfg.Exchange(o.context(ctx), code)
	if err != nil {
		return nil, fmt.Errorf("exchange authorization code: %w", scrubSecrets(o.tokenError(err), o.secrets(code)...))
	}
	tok, err := o.token(t)
	if err != nil {
		return nil, fmt.Errorf("exchange authorization code: %w", err)
	}
	return tok, nil
}

// Refresh trades a refresh token for a new token pair. Pinterest rotates the
// refresh token on every refresh: store the returned RefreshToken (it is the
// old one only if Pinterest sent none). An invalid_grant reply is an
// *InvalidGrantError: errors.Is(err, ErrReconnectNeeded).
func (o *OAuth) Refresh(ctx context.Context, refreshToken string) (*Token, error) {
	if refreshToken == "" {
		return nil, errors.New("refresh token: empty refresh token")
	}
	// A token without an access token is never valid, so the source
	// refreshes at once; it keeps the old refresh token if none comes back.
	t, err := o.cfg.TokenSource(o.context(ctx), &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err != nil {
		return nil, fmt.Errorf("refresh token: %w", scrubSecrets(o.tokenError(err), o.secrets(refreshToken)...))
	}
	tok, err := o.token(t)
	if err != nil {
		return nil, fmt.Errorf("refresh token: %w", err)
	}
	return tok, nil
}

// secrets are the strings a token request carries that must not reach an
// error: the grant, the client secret and the Basic credentials as sent.
func (o *OAuth) secrets(grant string) []string {
	basic := url.QueryEscape(o.cfg.ClientID) + ":" + url.QueryEscape(o.cfg.ClientSecret)
	return []string{grant, o.cfg.ClientSecret, base64.StdEncoding.EncodeToString([]byte(basic))}
}

// context hands o's HTTP client to golang.org/x/oauth2.
func (o *OAuth) context(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, o.hc)
}

// token converts x/oauth2's token, reading Pinterest's expiry fields
// relative to o's clock.
func (o *OAuth) token(t *oauth2.Token) (*Token, error) {
	if t.AccessToken == "" {
		return nil, errors.New("token response has no access_token")
	}
	now := o.now()
	tok := &Token{
		AccessToken:  t.AccessToken,
		RefreshToken: t.RefreshToken,
	}
	if s, ok := t.Extra("scope").(string); ok {
		tok.Scope = s
	}
	if secs := extraSeconds(t, "expires_in"); secs > 0 {
		tok.AccessTokenExpiresAt = now.Add(secondsDuration(secs))
	}
	if at := extraSeconds(t, "refresh_token_expires_at"); at > 0 {
		tok.RefreshTokenExpiresAt = time.Unix(at, 0)
	} else if secs := extraSeconds(t, "refresh_token_expires_in"); secs > 0 {
		tok.RefreshTokenExpiresAt = now.Add(secondsDuration(secs))
	}
	return tok, nil
}

// maxTokenLifetime bounds expiry durations (100 years), so a garbage value
// cannot overflow a time.Duration.
const maxTokenLifetime = 100 * 365 * 24 * time.Hour

func secondsDuration(secs int64) time.Duration {
	return min(time.Duration(secs)*time.Second, maxTokenLifetime)
}

// extraSeconds reads a whole number of seconds (a lifetime or a Unix time)
// from the token response; 0 when absent, malformed or beyond 1e12.
// JSON numbers arrive as float64, form-encoded values as strings.
func extraSeconds(t *oauth2.Token, key string) int64 {
	var f float64
	switch v := t.Extra(key).(type) {
	case float64:
		f = v
	case string:
		var err error
		if f, err = strconv.ParseFloat(v, 64); err != nil {
			return 0
		}
	default:
		return 0
	}
	if !(f > 0) || f > 1e12 {
		return 0
	}
	return int64(f)
}

// tokenError turns x/oauth2's errors into this package's typed errors. The
// oauth2 error text (which quotes the reply body) is not kept.
func (o *OAuth) tokenError(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response == nil {
		return err // transport errors: net/url errors, never the form body
	}
	if apiErr := checkResponse(re.Response, re.Body, http.MethodPost, "/oauth/token", o.now()); apiErr != nil {
		return apiErr
	}
	// A 2xx reply that carries an OAuth error field.
	e := APIError{
		StatusCode: re.Response.StatusCode,
		Message:    cleanMessage(re.ErrorCode + " " + re.ErrorDescription),
		RequestID:  cleanHeader(re.Response.Header.Get("x-pinterest-rid")),
		Method:     http.MethodPost,
		Path:       "/oauth/token",
	}
	if re.ErrorCode == "invalid_grant" {
		return &InvalidGrantError{APIError: e}
	}
	return &e
}

// Token is a Pinterest OAuth token pair with expiries. It never prints its
// secrets: fmt and slog show only whether each token is set.
type Token struct {
	AccessToken           string
	RefreshToken          string
	Scope                 string
	AccessTokenExpiresAt  time.Time
	RefreshTokenExpiresAt time.Time
}

func redacted(s string) string {
	if s == "" {
		return "<none>"
	}
	return "<redacted>"
}

// String describes the token without its secrets.
func (t Token) String() string {
	return fmt.Sprintf("Token{AccessToken:%s RefreshToken:%s Scope:%q AccessTokenExpiresAt:%s RefreshTokenExpiresAt:%s}",
		redacted(t.AccessToken), redacted(t.RefreshToken), t.Scope,
		t.AccessTokenExpiresAt.Format(time.RFC3339), t.RefreshTokenExpiresAt.Format(time.RFC3339))
}

// GoString is String, for %#v.
func (t Token) GoString() string { return t.String() }

// Format prints String for every verb, so %v, %+v, %#v, %s and %q never
// show a secret.
func (t Token) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", t.String())
		return
	}
	_, _ = f.Write([]byte(t.String()))
}

// LogValue describes the token to slog without its secrets.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("access_token", redacted(t.AccessToken)),
		slog.String("refresh_token", redacted(t.RefreshToken)),
		slog.String("scope", t.Scope),
		slog.Time("access_token_expires_at", t.AccessTokenExpiresAt),
		slog.Time("refresh_token_expires_at", t.RefreshTokenExpiresAt),
	)
}
