package token

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"
)

func mustEncode(t *testing.T, tok Token) string {
	t.Helper()
	data, err := encode(tok, false)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return string(data)
}

func secretAt(t *testing.T, id, stage string) string {
	t.Helper()
	out, err := moto.SecretsManager().GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{
		SecretId: aws.String(id), VersionStage: aws.String(stage),
	})
	if err != nil {
		t.Fatalf("get %s of secret %s: %v", stage, id, err)
	}
	return aws.ToString(out.SecretString)
}

func TestSecretsManagerStoreRoundTripKeepsThePreviousVersion(t *testing.T) {
	first := sampleToken()
	id := moto.CreateSecret(t, "pinterest-token", mustEncode(t, first))
	s := NewSecretsManagerStore(moto.SecretsManager(), id)

	got, err := s.Load(t.Context())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if diff := cmp.Diff(first, got); diff != "" {
		t.Fatalf("Load of the created secret (-want +got):\n%s", diff)
	}

	next := first
	next.AccessToken, next.RefreshToken = "pina_ROTATED", "pinr_ROTATED"
	next.RefreshedAt = first.RefreshedAt.Add(29 * 24 * time.Hour)
	if err := s.Save(t.Context(), next); err != nil {
		t.Fatalf("Save: %v", err)
	}
	got, err = s.Load(t.Context())
	if err != nil {
		t.Fatalf("Load after Save: %v", err)
	}
	if diff := cmp.Diff(next, got); diff != "" {
		t.Fatalf("Load after Save (-want +got):\n%s", diff)
	}
	if prev, err := decode([]byte(secretAt(t, id, "AWSPREVIOUS"))); err != nil || prev.RefreshToken != first.RefreshToken {
		t.Fatalf("AWSPREVIOUS = %v, %v; want the first token", prev, err)
	}
}

func TestSecretsManagerStoreNotFound(t *testing.T) {
	noValue, err := moto.SecretsManager().CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{
		Name: aws.String(moto.UniqueName("no-value")),
	})
	if err != nil {
		t.Fatalf("create a secret without a value: %v", err)
	}
	tests := []struct {
		name string
		id   string
	}{
		{"no such secret", "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf"},
		{"no such name", moto.UniqueName("never-created")},
		{"a secret without a value", aws.ToString(noValue.ARN)},
		{"a placeholder value", moto.CreateSecret(t, "placeholder", "{}")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSecretsManagerStore(moto.SecretsManager(), tt.id).Load(t.Context())
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("Load = %v, want ErrNotFound", err)
			}
		})
	}
	err = NewSecretsManagerStore(moto.SecretsManager(), tests[0].id).Save(t.Context(), sampleToken())
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Save to a missing secret = %v, want ErrNotFound", err)
	}
}

func TestSecretsManagerStoreRefusesAnInvalidToken(t *testing.T) {
	first := sampleToken()
	id := moto.CreateSecret(t, "refuse", mustEncode(t, first))
	bad := first
	bad.AccessTokenExpiresAt = time.Time{}
	if err := NewSecretsManagerStore(moto.SecretsManager(), id).Save(t.Context(), bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Save of a token without an expiry = %v, want ErrInvalid", err)
	}
	if got := secretAt(t, id, "AWSCURRENT"); got != mustEncode(t, first) {
		t.Fatalf("secret after a refused Save = %s, want it unchanged", got)
	}
}

// lossySM performs each PutSecretValue on the real server, then answers the
// first ones with a network error, as when the answer is lost on the way back.
type lossySM struct {
	smAPI
	mu     sync.Mutex
	lose   int
	tokens []string
}

func (l *lossySM) PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tokens = append(l.tokens, aws.ToString(in.ClientRequestToken))
	out, err := l.smAPI.PutSecretValue(ctx, in, opts...)
	if err == nil && l.lose > 0 {
		l.lose--
		return nil, &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	}
	return out, err
}

// TestSecretsManagerStoreRetryAfterALostAnswerAddsNoVersion: Save retries
// with the same ClientRequestToken, so Secrets Manager keeps one new version.
func TestSecretsManagerStoreRetryAfterALostAnswerAddsNoVersion(t *testing.T) {
	first := sampleToken()
	id := moto.CreateSecret(t, "lossy", mustEncode(t, first))
	client := &lossySM{smAPI: moto.SecretsManager(), lose: 2}
	s := NewSecretsManagerStore(client, id)
	var waits []time.Duration
	s.Retry.Sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }

	next := first
	next.RefreshToken = "pinr_ROTATED"
	if err := s.Save(t.Context(), next); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if len(client.tokens) != 3 || client.tokens[0] != client.tokens[1] || client.tokens[1] != client.tokens[2] || len(client.tokens[0]) < 32 {
		t.Fatalf("ClientRequestTokens sent = %q, want one token of 32+ characters on all 3 attempts", client.tokens)
	}
	if len(waits) != 2 || waits[0] > SavePolicy.Ceiling(1) || waits[1] > SavePolicy.Ceiling(2) {
		t.Fatalf("waits = %v, want 2 within SavePolicy's ceilings %s and %s", waits, SavePolicy.Ceiling(1), SavePolicy.Ceiling(2))
	}
	versions, err := moto.SecretsManager().ListSecretVersionIds(t.Context(), &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(id)})
	if err != nil {
		t.Fatalf("list versions: %v", err)
	}
	if len(versions.Versions) != 2 {
		t.Fatalf("secret has %d versions, want 2 (created + one Save)", len(versions.Versions))
	}
	if got := secretAt(t, id, "AWSPREVIOUS"); got != mustEncode(t, first) {
		t.Fatalf("AWSPREVIOUS = %s, want the first token", got)
	}
	if got, err := s.Load(t.Context()); err != nil || got.RefreshToken != "pinr_ROTATED" {
		t.Fatalf("Load = %v, %v; want the rotated token", got, err)
	}
	// A second Save is a new write with a new request token.
	if err := s.Save(t.Context(), first); err != nil {
		t.Fatalf("second Save: %v", err)
	}
	if client.tokens[3] == client.tokens[0] {
		t.Fatal("a second Save reused the first Save's ClientRequestToken")
	}
}

// scriptedSM answers PutSecretValue with the given errors in turn, then nil.
type scriptedSM struct {
	secretGetter
	errs  []error
	calls int
}

func (s *scriptedSM) PutSecretValue(context.Context, *secretsmanager.PutSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error) {
	s.calls++
	if len(s.errs) > 0 {
		err := s.errs[0]
		s.errs = s.errs[1:]
		return nil, err
	}
	return &secretsmanager.PutSecretValueOutput{}, nil
}

func TestSecretsManagerStoreSaveRetries(t *testing.T) {
	throttled := &smithy.GenericAPIError{Code: "ThrottlingException", Message: "rate exceeded", Fault: smithy.FaultClient}
	internal := &types.InternalServiceError{Message: aws.String("oops")}
	denied := &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "no", Fault: smithy.FaultClient}
	invalid := &types.InvalidRequestException{Message: aws.String("marked for deletion")}
	network := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	tests := []struct {
		name      string
		errs      []error
		wantCalls int
		wantErr   bool
	}{
		{"first try", nil, 1, false},
		{"throttled, then through", []error{throttled, throttled}, 3, false},
		{"server fault, then through", []error{internal}, 2, false},
		{"network, then through", []error{network, network, network}, 4, false},
		{"transient every time", []error{internal, internal, internal, internal, internal, internal}, 5, true},
		{"access denied is not retried", []error{denied}, 1, true},
		{"invalid request is not retried", []error{invalid}, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := &scriptedSM{errs: tt.errs}
			s := NewSecretsManagerStore(client, "pinlist/token")
			s.Retry.Sleep = func(context.Context, time.Duration) error { return nil }
			err := s.Save(t.Context(), sampleToken())
			if (err != nil) != tt.wantErr || client.calls != tt.wantCalls {
				t.Fatalf("Save = %v after %d calls; want error %v after %d", err, client.calls, tt.wantErr, tt.wantCalls)
			}
			if err != nil {
				for _, secret := range secretValues {
					if strings.Contains(err.Error(), secret) {
						t.Fatalf("Save error shows a secret: %v", err)
					}
				}
			}
		})
	}
}

func TestSecretsManagerStoreSaveStopsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	client := &scriptedSM{errs: []error{&types.InternalServiceError{}, &types.InternalServiceError{}}}
	s := NewSecretsManagerStore(client, "pinlist/token")
	s.Retry.Sleep = func(ctx context.Context, _ time.Duration) error { cancel(); return ctx.Err() }
	if err := s.Save(ctx, sampleToken()); !errors.Is(err, context.Canceled) || client.calls != 1 {
		t.Fatalf("Save = %v after %d calls; want context.Canceled after 1", err, client.calls)
	}
}

func TestIngestTokenFromSecret(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		want    string
		wantErr error
	}{
		{"raw value", moto.CreateSecret(t, "ingest", "fake-ingest-token-123"), "fake-ingest-token-123", nil},
		{"trailing newline", moto.CreateSecret(t, "ingest", "fake-ingest-token-456\n"), "fake-ingest-token-456", nil},
		{"blank", moto.CreateSecret(t, "ingest", "  \n"), "", ErrNotFound},
		{"missing", moto.UniqueName("ingest-never-created"), "", ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := IngestTokenFromSecret(t.Context(), moto.SecretsManager(), tt.id)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("IngestTokenFromSecret = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "fake-ingest") {
				t.Fatalf("error shows the token: %v", err)
			}
		})
	}
}
