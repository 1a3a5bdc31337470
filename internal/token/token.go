// Package token is pinlist's token seam: the Pinterest OAuth token model as it
// is stored (a Secrets Manager secret in AWS, a 0600 file locally) and the
// stores that keep it.
package token

import (
	"context"
	"time"
)

// Token is the stored Pinterest connection: the OAuth app credentials and the
// current token pair with their expiries. Its JSON form is the token secret's
// value (documented in docs/TOKEN.md).
type Token struct {
	ClientID              string    `json:"client_id"`
	ClientSecret          string    `json:"client_secret"`
	AccessToken           string    `json:"access_token"`
	RefreshToken          string    `json:"refresh_token"`
	AccessTokenExpiresAt  time.Time `json:"access_token_expires_at"`
	RefreshTokenExpiresAt time.Time `json:"refresh_token_expires_at"`
	Scope                 string    `json:"scope"`
	// AdAccountID is the connected ad account, when known (set by connect).
	AdAccountID string `json:"ad_account_id,omitempty"`
	// RefreshedAt is when the pair was last obtained (code exchange or refresh).
	RefreshedAt time.Time `json:"refreshed_at,omitzero"`
}

// Store loads and saves the token. Save replaces the whole value.
type Store interface {
	Load(ctx context.Context) (Token, error)
	Save(ctx context.Context, t Token) error
}
