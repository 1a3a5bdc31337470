package token

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// memStore is a Store in memory that counts loads.
type memStore struct {
	mu    sync.Mutex
	tok   Token
	err   error
	loads int
}

func (m *memStore) Load(context.Context) (Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.loads++
	return m.tok, m.err
}

func (m *memStore) Save(_ context.Context, t Token) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tok = t
	return nil
}

func (m *memStore) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.loads
}

func newTestSource(store Store, now time.Time) *AccessTokenSource {
	s := NewAccessTokenSource(store)
	s.now = func() time.Time { return now }
	return s
}

func TestSourceCachesUntilInvalidated(t *testing.T) {
	store := &memStore{tok: sampleToken()}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	s := newTestSource(store, now)

	for range 3 {
		got, err := s.Token()
		if err != nil {
			t.Fatalf("Token: %v", err)
		}
		if got.AccessToken != sampleToken().AccessToken || got.TokenType != "Bearer" || !got.Expiry.Equal(sampleToken().AccessTokenExpiresAt) {
			t.Fatalf("Token = %+v, want the stored access token, Bearer, its expiry", got)
		}
		if got.RefreshToken != "" {
			t.Fatal("Token hands out the refresh token")
		}
	}
	if store.count() != 1 {
		t.Fatalf("%d loads for 3 calls, want 1", store.count())
	}

	rotated := sampleToken()
	rotated.AccessToken = "pina_ROTATED"
	if err := store.Save(t.Context(), rotated); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Token(); got.AccessToken != sampleToken().AccessToken {
		t.Fatalf("before Invalidate Token = %q, want the cached token", got.AccessToken)
	}
	s.Invalidate() // the upload step got a 401
	got, err := s.TokenContext(t.Context())
	if err != nil || got.AccessToken != "pina_ROTATED" {
		t.Fatalf("after Invalidate Token = %+v, %v; want the rotated token", got, err)
	}
	if store.count() != 2 {
		t.Fatalf("%d loads, want 2", store.count())
	}
}

func TestSourceExpiry(t *testing.T) {
	exp := sampleToken().AccessTokenExpiresAt
	fresh := sampleToken()
	fresh.AccessToken = "pina_FRESH"
	fresh.AccessTokenExpiresAt = exp.Add(30 * 24 * time.Hour)
	noExpiry := sampleToken()
	noExpiry.AccessTokenExpiresAt = time.Time{}
	tests := []struct {
		name       string
		now        time.Time
		reloaded   Token // what the store holds by the second call
		want       string
		wantErr    error
		wantLoads  int
		firstStore Token
	}{
		{"well before expiry: cached", exp.Add(-time.Hour), fresh, sampleToken().AccessToken, nil, 1, sampleToken()},
		{"within a minute of expiry: reloaded", exp.Add(-30 * time.Second), fresh, "pina_FRESH", nil, 2, sampleToken()},
		{"expired and not refreshed", exp.Add(time.Second), sampleToken(), "", ErrExpired, 2, sampleToken()},
		{"unknown expiry: handed out", exp.Add(1000 * time.Hour), noExpiry, sampleToken().AccessToken, nil, 1, noExpiry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &memStore{tok: tt.firstStore}
			s := newTestSource(store, exp.Add(-24*time.Hour))
			if _, err := s.Token(); err != nil {
				t.Fatalf("first Token: %v", err)
			}
			store.tok = tt.reloaded
			s.now = func() time.Time { return tt.now }
			got, err := s.Token()
			if !errors.Is(err, tt.wantErr) || (err == nil && got.AccessToken != tt.want) || store.count() != tt.wantLoads {
				t.Fatalf("Token = %+v, %v after %d loads; want %q, %v after %d", got, err, store.count(), tt.want, tt.wantErr, tt.wantLoads)
			}
		})
	}
}

func TestSourceLoadErrors(t *testing.T) {
	noAccess := sampleToken()
	noAccess.AccessToken = ""
	tests := []struct {
		name    string
		store   *memStore
		wantErr error
	}{
		{"not connected", &memStore{err: ErrNotFound}, ErrNotFound},
		{"no access token", &memStore{tok: noAccess}, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSource(tt.store, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
			if _, err := s.Token(); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Token = %v, want %v", err, tt.wantErr)
			}
			// A failed load is not cached: the next call tries again.
			if _, err := s.Token(); !errors.Is(err, tt.wantErr) || tt.store.count() != 2 {
				t.Fatalf("second Token = %v after %d loads, want %v after 2", err, tt.store.count(), tt.wantErr)
			}
		})
	}
}

// TestSourceConcurrentUse is for the race detector: many callers, some of
// them invalidating, all get a token from the store.
func TestSourceConcurrentUse(t *testing.T) {
	store := &memStore{tok: sampleToken()}
	s := newTestSource(store, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			for range 50 {
				if i%4 == 0 {
					s.Invalidate()
				}
				got, err := s.TokenContext(t.Context())
				if err != nil || got.AccessToken != sampleToken().AccessToken {
					errs <- errors.New("bad token from concurrent use")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := store.count(); n < 1 || n > 1+4*50 {
		t.Fatalf("%d loads, want between 1 and %d", n, 1+4*50)
	}
}

// TestSourceOverSecretsManager: the upload step's path against real AWS APIs:
// the refresh step stores a new token; a 401 makes the upload step
// invalidate; the next Token is the new one.
func TestSourceOverSecretsManager(t *testing.T) {
	id := moto.CreateSecret(t, "source", mustEncode(t, sampleToken()))
	store := NewSecretsManagerStore(moto.SecretsManager(), id)
	s := newTestSource(store, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	if got, err := s.Token(); err != nil || got.AccessToken != sampleToken().AccessToken {
		t.Fatalf("Token = %+v, %v", got, err)
	}
	rotated := sampleToken()
	rotated.AccessToken = "pina_ROTATED"
	if err := store.Save(t.Context(), rotated); err != nil {
		t.Fatalf("Save: %v", err)
	}
	s.Invalidate()
	if got, err := s.Token(); err != nil || got.AccessToken != "pina_ROTATED" {
		t.Fatalf("Token after Invalidate = %+v, %v; want the rotated token", got, err)
	}
}
