package ingest

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

func TestAuthTokenCache(t *testing.T) {
	const ttl, refresh = 5 * time.Minute, 30 * time.Second
	type step struct {
		advance     time.Duration
		rotate      string // new secret value, when set
		token       string
		wantStatus  int
		wantFetches int // total so far
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "cached within the TTL", steps: []step{
			{token: testToken, wantStatus: 202, wantFetches: 1},
			{advance: ttl - time.Second, token: testToken, wantStatus: 202, wantFetches: 1},
			{advance: time.Second, token: testToken, wantStatus: 202, wantFetches: 2},
		}},
		{name: "wrong tokens fetch at most once per interval", steps: []step{
			{token: testToken, wantStatus: 202, wantFetches: 1},
			{token: "wrong", wantStatus: 401, wantFetches: 1},
			{advance: refresh - time.Second, token: "wrong", wantStatus: 401, wantFetches: 1},
			{advance: time.Second, token: "wrong", wantStatus: 401, wantFetches: 2},
			{token: "wrong", wantStatus: 401, wantFetches: 2},
			{advance: refresh, token: "wrong", wantStatus: 401, wantFetches: 3},
		}},
		{name: "rotated secret picked up on mismatch", steps: []step{
			{token: testToken, wantStatus: 202, wantFetches: 1},
			{advance: refresh, rotate: "rotated-token", token: "rotated-token", wantStatus: 202, wantFetches: 2},
			{token: testToken, wantStatus: 401, wantFetches: 2},
			{token: "rotated-token", wantStatus: 202, wantFetches: 2},
		}},
		{name: "rotation right after a fetch waits for the interval", steps: []step{
			{token: testToken, wantStatus: 202, wantFetches: 1},
			{rotate: "rotated-token", token: "rotated-token", wantStatus: 401, wantFetches: 1},
			{advance: refresh, token: "rotated-token", wantStatus: 202, wantFetches: 2},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hs := newHarness(t, func(o *Options) { o.TokenTTL, o.TokenRefresh = ttl, refresh })
			for i, s := range tc.steps {
				hs.clock.Advance(s.advance)
				if s.rotate != "" {
					hs.tokens.set(s.rotate, nil)
				}
				rec := hs.do(t, http.MethodPost, PathProfiles, map[string]string{"Authorization": "Bearer " + s.token}, goodProfile)
				if rec.Code != s.wantStatus {
					t.Errorf("step %d: status %d, want %d", i, rec.Code, s.wantStatus)
				}
				if got := hs.tokens.count(); got != s.wantFetches {
					t.Errorf("step %d: %d token fetches, want %d", i, got, s.wantFetches)
				}
			}
		})
	}
}

func TestAuthFetchFailure(t *testing.T) {
	hs := newHarness(t, nil)
	hs.tokens.set("", errBoom)
	if rec := hs.post(t, PathProfiles, goodProfile); rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d (Retry-After %q), want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	// A failed fetch is not cached: the next request fetches again.
	hs.tokens.set(testToken, nil)
	if rec := hs.post(t, PathProfiles, goodProfile); rec.Code != http.StatusAccepted {
		t.Fatalf("status %d after the token store recovered, want 202", rec.Code)
	}
	// An empty expected token never lets an empty or any other token in.
	hs2 := newHarness(t, func(o *Options) { o.IngestToken = StaticIngestToken("") })
	rec := hs2.do(t, http.MethodPost, PathProfiles, map[string]string{"Authorization": "Bearer x"}, goodProfile)
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("empty static token: status %d, want 503", rec.Code)
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		header string
		want   string
		ok     bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"BEARER  abc ", "abc", true},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Basic abc", "", false},
		{"abc", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		got, ok := bearerToken(tc.header)
		if got != tc.want || ok != tc.ok {
			t.Errorf("bearerToken(%q) = %q, %v; want %q, %v", tc.header, got, ok, tc.want, tc.ok)
		}
	}
}

// fakeSecrets is a secretGetter answering from a value.
type fakeSecrets struct {
	value *string
	err   error
	asked []string
}

func (f *fakeSecrets) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	f.asked = append(f.asked, aws.ToString(in.SecretId))
	if f.err != nil {
		return nil, f.err
	}
	return &secretsmanager.GetSecretValueOutput{SecretString: f.value}, nil
}

func TestSecretIngestToken(t *testing.T) {
	tests := []struct {
		name    string
		value   *string
		err     error
		want    string
		wantErr string
	}{
		{name: "value", value: aws.String("tok-123"), want: "tok-123"},
		{name: "trimmed", value: aws.String(" tok-123\n"), want: "tok-123"},
		{name: "empty", value: aws.String("  "), wantErr: "not found"},
		{name: "no value", wantErr: "not found"},
		{name: "fetch fails", err: errBoom, wantErr: "boom"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sm := &fakeSecrets{value: tc.value, err: tc.err}
			got, err := NewSecretIngestToken(sm, "ingest-token").IngestToken(t.Context())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "ingest-token") {
					t.Fatalf("err = %v, want one naming the secret and %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
			if len(sm.asked) != 1 || sm.asked[0] != "ingest-token" {
				t.Errorf("asked for %v, want [ingest-token]", sm.asked)
			}
		})
	}
}
