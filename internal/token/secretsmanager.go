package token

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"

	"github.com/pinlist/pinlist/internal/retry"
)

// secretGetter is the part of the Secrets Manager client that reads.
type secretGetter interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// smAPI is the part of the Secrets Manager client SecretsManagerStore uses.
type smAPI interface {
	secretGetter
	PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error)
}

var _ smAPI = (*secretsmanager.Client)(nil)

// SavePolicy is how Save retries a transient failure (the SDK's own retries
// are turned off for the write, so this is the only layer): 5 calls, with jittered waits of at most
// 250 ms, 500 ms, 1 s and 2 s, at most about 4 s in all, which fits a refresh
// Lambda's timeout. Save is the one layer that retries the write: callers
// (the refresh step) call it once.
var SavePolicy = retry.Policy{Attempts: 5, Base: 250 * time.Millisecond, Max: 2 * time.Second}

// SecretsManagerStore keeps the token as the JSON value of one Secrets
// Manager secret (documented in docs/TOKEN.md). The secret must exist (the
// SAM template creates it); Save adds a version that becomes AWSCURRENT, and
// the one before stays readable as AWSPREVIOUS.
type SecretsManagerStore struct {
	client   smAPI
	secretID string

	// Retry is how Save retries a transient failure: SavePolicy unless
	// replaced after construction (tests replace its Sleep).
	Retry retry.Policy
}

var _ Store = (*SecretsManagerStore)(nil)

// NewSecretsManagerStore returns the store for secretID (a name or an ARN).
// client is usually a *secretsmanager.Client.
func NewSecretsManagerStore(client smAPI, secretID string) *SecretsManagerStore {
	return &SecretsManagerStore{client: client, secretID: secretID, Retry: SavePolicy}
}

// Load reads the secret's current value; ErrNotFound when the secret does not
// exist, has no value yet, or holds an empty JSON object.
func (s *SecretsManagerStore) Load(ctx context.Context) (Token, error) {
	value, err := secretString(ctx, s.client, s.secretID)
	if err != nil {
		return Token{}, fmt.Errorf("load token: %w", err)
	}
	t, err := decode([]byte(value))
	if err != nil {
		return Token{}, fmt.Errorf("load token from secret %s: %w", s.secretID, err)
	}
	return t, nil
}

// Save validates t and writes it as the secret's new current version. Every
// attempt of one Save sends the same ClientRequestToken, so when an attempt
// succeeded but its answer was lost, the retry is a no-op in Secrets Manager
// rather than a second version. Throttling, server errors and network
// failures are retried with backoff (a refresh must not lose a freshly
// rotated refresh token to a blip); other errors, such as a missing secret
// (ErrNotFound) or access denied, are returned at once.
func (s *SecretsManagerStore) Save(ctx context.Context, t Token) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("save token to secret %s: %w", s.secretID, err)
	}
	data, err := encode(t, false)
	if err != nil {
		return fmt.Errorf("save token to secret %s: encode: %w", s.secretID, err)
	}
	in := &secretsmanager.PutSecretValueInput{
		SecretId:           aws.String(s.secretID),
		SecretString:       aws.String(string(data)),
		ClientRequestToken: aws.String(newRequestToken()),
	}
	attempts := 0
	err = retry.Do(ctx, s.Retry, transient, func(ctx context.Context) error {
		attempts++
		// The SDK's own retries are off for this call: Save's policy is
		// the one layer that retries it.
		_, err := s.client.PutSecretValue(ctx, in, func(o *secretsmanager.Options) { o.RetryMaxAttempts = 1 })
		return err
	}, nil)
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*types.ResourceNotFoundException](err); ok {
		return fmt.Errorf("save token to secret %s: %w: %w", s.secretID, ErrNotFound, err)
	}
	return fmt.Errorf("save token to secret %s (attempt %d of %d): %w", s.secretID, attempts, max(s.Retry.Attempts, 1), err)
}

// transient reports whether a failed call may succeed when repeated: a
// throttle, a server fault, a network failure, or the SDK giving up after its
// own retries of one of those. A client fault (bad request, access denied,
// missing secret) and a done context are not.
func transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded":
			return true
		}
		return api.ErrorFault() != smithy.FaultClient
	}
	return true
}

// newRequestToken is a ClientRequestToken: 32 random hex digits (Secrets
// Manager wants 32 to 64 characters).
func newRequestToken() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b)
}

// IngestTokenFromSecret reads the ingest token: the current value of the
// secret secretID (PINLIST_INGEST_TOKEN_SECRET_ID), which is the token itself,
// surrounding white space removed. ErrNotFound when the secret does not exist
// or its value is empty. Callers cache the result (one read per Lambda cold
// start).
func IngestTokenFromSecret(ctx context.Context, client secretGetter, secretID string) (string, error) {
	value, err := secretString(ctx, client, secretID)
	if err != nil {
		return "", fmt.Errorf("load ingest token: %w", err)
	}
	value = strings.TrimSpace(value)
	if value == "" {
		return "", fmt.Errorf("load ingest token from secret %s: %w", secretID, ErrNotFound)
	}
	return value, nil
}

// secretString returns the current value of a secret (its SecretString, or
// its SecretBinary as text). A secret that does not exist, or has no current
// value, is ErrNotFound. Errors never contain the value.
func secretString(ctx context.Context, client secretGetter, secretID string) (string, error) {
	out, err := client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(secretID)})
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) {
		return "", fmt.Errorf("get secret %s: %w: %w", secretID, ErrNotFound, err)
	}
	if err != nil {
		return "", fmt.Errorf("get secret %s: %w", secretID, err)
	}
	if out.SecretString != nil {
		return *out.SecretString, nil
	}
	return string(out.SecretBinary), nil
}
