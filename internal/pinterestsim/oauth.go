package pinterestsim

import (
	crand "crypto/rand"
	"crypto/subtle"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// codeTTL is how long an authorisation code from GET /oauth/ can be exchanged.
const codeTTL = 10 * time.Minute

// tokenStore holds the OAuth apps, the issued codes and tokens.
type tokenStore struct {
	clients map[string]string // client_id → client_secret; read-only after New

	mu      sync.Mutex
	access  map[string]grant
	refresh map[string]grant
	codes   map[string]authCode
}

// grant is what a token or code stands for.
type grant struct {
	clientID  string
	scopes    []string
	expiresAt time.Time
}

type authCode struct {
	grant
	redirectURI string
}

func newTokenStore(clients map[string]string) *tokenStore {
	if clients == nil {
		clients = map[string]string{}
	}
	return &tokenStore{
		clients: clients,
		access:  map[string]grant{},
		refresh: map[string]grant{},
		codes:   map[string]authCode{},
	}
}

// newSecret returns a random token string with Pinterest's prefix ("pina" for
// access tokens, "pinr" for refresh tokens).
func newSecret(prefix string) string {
	return prefix + "_" + crand.Text() + crand.Text()
}

// accessScopes returns the scopes of a live access token.
func (t *tokenStore) accessScopes(token string, now time.Time) (map[string]bool, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.access[token]
	if !ok || !now.Before(g.expiresAt) {
		return nil, false
	}
	scopes := make(map[string]bool, len(g.scopes))
	for _, s := range g.scopes {
		scopes[s] = true
	}
	return scopes, true
}

// checkClient reports whether r carries HTTP Basic credentials of a known app.
func (t *tokenStore) checkClient(r *http.Request) bool {
	id, secret, ok := r.BasicAuth()
	if !ok {
		return false
	}
	want, known := t.clients[id]
	return known && subtle.ConstantTimeCompare([]byte(secret), []byte(want)) == 1
}

// issue makes a new access/refresh pair for a client. The caller holds mu.
func (t *tokenStore) issue(clientID string, scopes []string, now time.Time, accessTTL, refreshTTL time.Duration) (access, refresh string, refreshExpiry time.Time) {
	access, refresh = newSecret("pina"), newSecret("pinr")
	scopes = slices.Clone(scopes)
	refreshExpiry = now.Add(refreshTTL)
	t.access[access] = grant{clientID: clientID, scopes: scopes, expiresAt: now.Add(accessTTL)}
	t.refresh[refresh] = grant{clientID: clientID, scopes: scopes, expiresAt: refreshExpiry}
	return access, refresh, refreshExpiry
}

// IssueToken makes a token pair for an OAuth app as if the user had just
// connected it, e.g. for `pinlist sim` to print a ready access token. The
// client need not be one of Options.Clients, but refreshing needs it to be.
func (s *Server) IssueToken(clientID string, scopes []string) (access, refresh string) {
	s.tokens.mu.Lock()
	defer s.tokens.mu.Unlock()
	access, refresh, _ = s.tokens.issue(clientID, scopes, s.opts.Clock(), s.opts.AccessTokenTTL, s.opts.RefreshTokenTTL)
	return access, refresh
}

// AddAccessToken makes the simulator accept token, with scopes, until
// expiresAt.
func (s *Server) AddAccessToken(token string, scopes []string, expiresAt time.Time) {
	s.tokens.mu.Lock()
	defer s.tokens.mu.Unlock()
	s.tokens.access[token] = grant{scopes: slices.Clone(scopes), expiresAt: expiresAt}
}

// ExpireAccessTokens makes every access token issued so far expire now;
// refresh tokens stay valid, so a refresh grant gets a working pair again.
func (s *Server) ExpireAccessTokens() {
	now := s.opts.Clock()
	s.tokens.mu.Lock()
	defer s.tokens.mu.Unlock()
	for tok, g := range s.tokens.access {
		if g.expiresAt.After(now) {
			g.expiresAt = now
			s.tokens.access[tok] = g
		}
	}
}

// parseScopes splits a scope parameter; Pinterest separates scopes with
// commas, OAuth libraries with spaces, so both are accepted.
func parseScopes(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}

// serveAuthorize is Pinterest's consent page, GET /oauth/: it approves at once
// and redirects to redirect_uri with code and state.
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	s.countCall(RouteOAuthAuthorize)
	if r.Method != http.MethodGet {
		writeError(w, http.StatusMethodNotAllowed, 405, "Method not allowed.")
		return
	}
	q := r.URL.Query()
	clientID := q.Get("client_id")
	if clientID == "" {
		clientID = q.Get("consumer_id") // the name Pinterest's quickstart uses
	}
	if _, ok := s.tokens.clients[clientID]; !ok {
		writeError(w, http.StatusBadRequest, 1, "Unknown client_id.")
		return
	}
	if q.Get("response_type") != "code" {
		writeError(w, http.StatusBadRequest, 1, "response_type must be code.")
		return
	}
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || !redirect.IsAbs() || (redirect.Scheme != "http" && redirect.Scheme != "https") {
		writeError(w, http.StatusBadRequest, 1, "redirect_uri must be an absolute http(s) URL.")
		return
	}
	scopes := parseScopes(q.Get("scope"))
	if len(scopes) == 0 {
		writeError(w, http.StatusBadRequest, 1, "scope is required.")
		return
	}

	code := crand.Text()
	s.tokens.mu.Lock()
	s.tokens.codes[code] = authCode{
		grant:       grant{clientID: clientID, scopes: scopes, expiresAt: s.opts.Clock().Add(codeTTL)},
		redirectURI: q.Get("redirect_uri"),
	}
	s.tokens.mu.Unlock()

	params := redirect.Query()
	params.Set("code", code)
	if state := q.Get("state"); state != "" {
		params.Set("state", state)
	}
	redirect.RawQuery = params.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// tokenResponse is Pinterest's OauthAccessTokenResponse (with the refresh
// fields of the authorization_code and refresh_token variants).
type tokenResponse struct {
	AccessToken           string `json:"access_token"`
	TokenType             string `json:"token_type"`
	ExpiresIn             int64  `json:"expires_in"`
	Scope                 string `json:"scope"`
	ResponseType          string `json:"response_type"`
	RefreshToken          string `json:"refresh_token,omitempty"`
	RefreshTokenExpiresIn int64  `json:"refresh_token_expires_in,omitempty"`
	RefreshTokenExpiresAt int64  `json:"refresh_token_expires_at,omitempty"`
}

// oauthError is the error body of the token endpoint: Pinterest's
// {code, message} together with RFC 6749's {error, error_description}, which
// OAuth client libraries read (golang.org/x/oauth2's RetrieveError.ErrorCode).
type oauthError struct {
	Code             int    `json:"code"`
	Message          string `json:"message"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

// writeOAuthError answers with an OAuth error: errCode is RFC 6749's error
// ("invalid_grant", ...), beside the Pinterest code that goes with it (283,
// "The authorization grant is invalid", for a bad grant; 2 for a bad client).
func writeOAuthError(w http.ResponseWriter, status int, errCode, description string) {
	code := 1
	switch errCode {
	case "invalid_grant":
		code = 283
	case "invalid_client":
		code = 2
	}
	writeJSON(w, status, oauthError{Code: code, Message: description, Error: errCode, ErrorDescription: description})
}

// token is POST /v5/oauth/token; the client is authenticated and the form
// validated before it runs.
func (s *Server) token(w http.ResponseWriter, r *http.Request, c *call) {
	form, err := url.ParseQuery(string(c.body))
	if err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "The form body could not be parsed.")
		return
	}
	clientID, _, _ := r.BasicAuth()
	now := s.opts.Clock()

	s.tokens.mu.Lock()
	defer s.tokens.mu.Unlock()
	var scopes []string
	resp := tokenResponse{TokenType: "bearer", ResponseType: form.Get("grant_type")}
	switch form.Get("grant_type") {
	case "authorization_code":
		code, ok := s.tokens.codes[form.Get("code")]
		delete(s.tokens.codes, form.Get("code")) // single use, even when the rest is wrong
		if !ok || code.clientID != clientID || !now.Before(code.expiresAt) {
			writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "The authorization code is invalid, expired or already used.")
			return
		}
		if code.redirectURI != form.Get("redirect_uri") {
			writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri does not match the one the code was issued for.")
			return
		}
		scopes = code.scopes
	case "refresh_token":
		old, ok := s.tokens.refresh[form.Get("refresh_token")]
		if !ok || old.clientID != clientID || !now.Before(old.expiresAt) {
			writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "The refresh token is invalid, expired or already used.")
			return
		}
		delete(s.tokens.refresh, form.Get("refresh_token")) // rotated: the old one dies
		scopes = old.scopes
	case "client_credentials":
		scopes = parseScopes(form.Get("scope"))
		access := newSecret("pina")
		s.tokens.access[access] = grant{clientID: clientID, scopes: scopes, expiresAt: now.Add(s.opts.AccessTokenTTL)}
		resp.AccessToken = access
		resp.ExpiresIn = int64(s.opts.AccessTokenTTL / time.Second)
		resp.Scope = strings.Join(scopes, ",")
		writeJSON(w, http.StatusOK, resp)
		return
	default: // validation admits only the three grants above
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "Unsupported grant_type.")
		return
	}
	access, refresh, refreshExpiry := s.tokens.issue(clientID, scopes, now, s.opts.AccessTokenTTL, s.opts.RefreshTokenTTL)
	resp.AccessToken = access
	resp.ExpiresIn = int64(s.opts.AccessTokenTTL / time.Second)
	resp.Scope = strings.Join(scopes, ",")
	resp.RefreshToken = refresh
	resp.RefreshTokenExpiresIn = int64(s.opts.RefreshTokenTTL / time.Second)
	resp.RefreshTokenExpiresAt = refreshExpiry.Unix()
	writeJSON(w, http.StatusOK, resp)
}
