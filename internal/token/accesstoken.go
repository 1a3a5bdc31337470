package token

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// ErrExpired is returned by AccessTokenSource when the stored access token
// has expired: the refresh step has not stored a new one (or the connection needs
// `pinlist connect`).
var ErrExpired = errors.New("Pinterest access token expired")

const (
	// reloadBefore: a cached access token this close to its expiry is
	// reloaded from the store, which the refresh step has usually updated
	// days before.
	reloadBefore = time.Minute
	// loadTimeout bounds a load started by Token, which has no context.
	loadTimeout = 10 * time.Second
)

// AccessTokenSource hands out the stored Pinterest OAuth access token as an
// oauth2.TokenSource over a Store (not the ingest bearer token, which is
// ingest.IngestTokenSource's): it loads the token once, hands out its access
// token, and loads again after Invalidate (the upload
// step calls it on a 401, when the refresh step may have stored a new token)
// or when the cached access token is about to expire. It hands out only the
// access token, never the refresh token or the client secret. It is safe for
// concurrent use; concurrent callers share one load.
type AccessTokenSource struct {
	store Store
	now   func() time.Time

	mu     sync.Mutex
	cached *Token // nil: load on next use
}

var _ oauth2.TokenSource = (*AccessTokenSource)(nil)

// NewAccessTokenSource returns an AccessTokenSource that loads from store.
func NewAccessTokenSource(store Store) *AccessTokenSource {
	return &AccessTokenSource{store: store, now: time.Now}
}

// Token returns the access token as an oauth2.Token (TokenType Bearer, with
// its expiry), loading from the store when needed with a 10-second bound.
// Prefer TokenContext where a context is at hand.
func (s *AccessTokenSource) Token() (*oauth2.Token, error) {
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	return s.TokenContext(ctx)
}

// TokenContext is Token with the caller's context for the load.
func (s *AccessTokenSource) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.cached == nil || expiresWithin(*s.cached, now, reloadBefore) {
		t, err := s.store.Load(ctx)
		if err != nil {
			return nil, fmt.Errorf("load Pinterest access token: %w", err)
		}
		if t.AccessToken == "" {
			return nil, fmt.Errorf("load Pinterest access token: %w: missing access_token", ErrInvalid)
		}
		s.cached = &t
	}
	t := *s.cached
	if expiresWithin(t, now, 0) {
		return nil, fmt.Errorf("%w at %s", ErrExpired, t.AccessTokenExpiresAt.UTC().Format(time.RFC3339))
	}
	return &oauth2.Token{AccessToken: t.AccessToken, TokenType: "Bearer", Expiry: t.AccessTokenExpiresAt}, nil
}

// Invalidate drops the cached token: the next Token loads from the store.
func (s *AccessTokenSource) Invalidate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cached = nil
}

// expiresWithin reports whether t's access token expires within d of now. An
// unknown (zero) expiry never does: the API's answer decides.
func expiresWithin(t Token, now time.Time, d time.Duration) bool {
	return !t.AccessTokenExpiresAt.IsZero() && !now.Add(d).Before(t.AccessTokenExpiresAt)
}
