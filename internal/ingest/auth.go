package ingest

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/pinlist/pinlist/internal/token"
)

// IngestTokenSource fetches the current ingest bearer token: the shared
// secret callers present as "Authorization: Bearer <token>" (not the
// Pinterest OAuth access token). The handler caches what it
// returns (Options.TokenTTL) and asks again early when a caller presents a
// token that does not match, so a rotated secret is picked up.
type IngestTokenSource interface {
	IngestToken(ctx context.Context) (string, error)
}

// StaticIngestToken is an IngestTokenSource with a fixed token
// (PINLIST_INGEST_TOKEN).
type StaticIngestToken string

// IngestToken returns the token; an empty one is an error so that no request
// is ever accepted with an empty bearer token.
func (t StaticIngestToken) IngestToken(context.Context) (string, error) {
	if t == "" {
		return "", errors.New("ingest token is empty")
	}
	return string(t), nil
}

// secretGetter is the part of the Secrets Manager client SecretIngestToken
// uses.
type secretGetter interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

var _ secretGetter = (*secretsmanager.Client)(nil)

// SecretIngestToken is an IngestTokenSource reading the ingest token from a
// Secrets Manager secret whose value is the token itself
// (PINLIST_INGEST_TOKEN_SECRET_ID).
type SecretIngestToken struct {
	client   secretGetter
	secretID string
}

// NewSecretIngestToken returns a SecretIngestToken reading secretID (a name
// or ARN) with client (a *secretsmanager.Client in production).
func NewSecretIngestToken(client secretGetter, secretID string) *SecretIngestToken {
	return &SecretIngestToken{client: client, secretID: secretID}
}

// IngestToken fetches the secret's current value, white space trimmed; an
// empty or missing secret is an error. The error never holds the value.
func (s *SecretIngestToken) IngestToken(ctx context.Context) (string, error) {
	return token.IngestTokenFromSecret(ctx, s.client, s.secretID)
}

// authResult is what checking a request's credentials found.
type authResult int

const (
	authOK          authResult = iota
	authMissing                // no bearer token presented
	authWrong                  // a token that does not match
	authUnavailable            // the expected token could not be fetched
)

// authenticator checks bearer tokens against a cached copy of the expected
// token. The cached value lives for ttl; on a mismatch it is fetched again, at
// most once per refreshEvery, so a rotated secret is picked up quickly while a
// caller with a wrong token cannot make it hammer Secrets Manager.
type authenticator struct {
	source       IngestTokenSource
	ttl          time.Duration
	refreshEvery time.Duration
	now          func() time.Time

	mu        sync.Mutex
	sum       [sha256.Size]byte // SHA-256 of the expected token; never the token itself
	have      bool
	fetchedAt time.Time
}

// check compares the presented Authorization header value in constant time.
// Both sides are hashed first so the comparison does not depend on, or leak,
// the token's length.
func (a *authenticator) check(ctx context.Context, header string) (authResult, error) {
	presented, ok := bearerToken(header)
	if !ok {
		return authMissing, nil
	}
	got := sha256.Sum256([]byte(presented))

	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if !a.have || now.Sub(a.fetchedAt) >= a.ttl {
		if err := a.refresh(ctx, now); err != nil {
			return authUnavailable, err
		}
	}
	if subtle.ConstantTimeCompare(got[:], a.sum[:]) == 1 {
		return authOK, nil
	}
	if now.Sub(a.fetchedAt) < a.refreshEvery {
		return authWrong, nil
	}
	// The secret may have been rotated since it was cached: look once more.
	if err := a.refresh(ctx, now); err != nil {
		return authUnavailable, err
	}
	if subtle.ConstantTimeCompare(got[:], a.sum[:]) == 1 {
		return authOK, nil
	}
	return authWrong, nil
}

// refresh fetches the expected token; a.mu is held.
func (a *authenticator) refresh(ctx context.Context, now time.Time) error {
	tok, err := a.source.IngestToken(ctx)
	if err != nil {
		return fmt.Errorf("fetch ingest token: %w", err)
	}
	if tok == "" {
		return errors.New("fetch ingest token: the token is empty")
	}
	a.sum = sha256.Sum256([]byte(tok))
	a.have = true
	a.fetchedAt = now
	return nil
}

// bearerToken extracts the token of an "Authorization: Bearer <token>" value.
// The scheme is matched case-insensitively (RFC 9110); an empty token is no
// token.
func bearerToken(header string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
