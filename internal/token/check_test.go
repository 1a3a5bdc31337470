package token

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Token)
		missing string // "" when valid
	}{
		{"complete", func(*Token) {}, ""},
		{"without ad account and refresh time", func(t *Token) { t.AdAccountID, t.RefreshedAt, t.Scope = "", time.Time{}, "" }, ""},
		{"no client secret", func(t *Token) { t.ClientSecret = "" }, "client_secret"},
		{"no tokens", func(t *Token) { t.AccessToken, t.RefreshToken = "", "" }, "access_token, refresh_token"},
		{"no expiries", func(t *Token) { t.AccessTokenExpiresAt, t.RefreshTokenExpiresAt = time.Time{}, time.Time{} }, "access_token_expires_at, refresh_token_expires_at"},
		{"empty", func(t *Token) { *t = Token{} }, "client_id, client_secret, access_token, refresh_token, access_token_expires_at, refresh_token_expires_at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := sampleToken()
			tt.edit(&tok)
			err := tok.Validate()
			if tt.missing == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.HasSuffix(err.Error(), "missing "+tt.missing) {
				t.Fatalf("Validate = %v, want ErrInvalid naming %s", err, tt.missing)
			}
			for _, secret := range secretValues {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("Validate error shows a secret: %v", err)
				}
			}
		})
	}
}

func TestExpiryHelpers(t *testing.T) {
	tok := sampleToken() // access 2026-12-27T10:00Z, refresh 2027-11-27T10:00Z
	tests := []struct {
		name                  string
		now                   time.Time
		in                    time.Duration
		accessDays, refreshDs float64
	}{
		{"30 days before", time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), 30 * 24 * time.Hour, 30, 365},
		{"12 hours before", time.Date(2026, 12, 26, 22, 0, 0, 0, time.UTC), 12 * time.Hour, 0.5, 335.5},
		{"a day after, other zone", time.Date(2026, 12, 28, 11, 0, 0, 0, time.FixedZone("CET", 3600)), -24 * time.Hour, -1, 334},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tok.AccessTokenExpiresIn(tt.now); got != tt.in {
				t.Errorf("AccessTokenExpiresIn = %v, want %v", got, tt.in)
			}
			if got := tok.DaysToAccessTokenExpiry(tt.now); math.Abs(got-tt.accessDays) > 1e-9 {
				t.Errorf("DaysToAccessTokenExpiry = %v, want %v", got, tt.accessDays)
			}
			if got := tok.DaysToRefreshTokenExpiry(tt.now); math.Abs(got-tt.refreshDs) > 1e-9 {
				t.Errorf("DaysToRefreshTokenExpiry = %v, want %v", got, tt.refreshDs)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	example := readExample(t)
	tests := []struct {
		name    string
		in      string
		want    Token
		wantErr error
		errHas  string
	}{
		{"the documented example", example, exampleToken(), nil, ""},
		{"empty", "", Token{}, ErrNotFound, ""},
		{"white space", " \n", Token{}, ErrNotFound, ""},
		{"placeholder object", "{}", Token{}, ErrNotFound, ""},
		{"unknown fields only", `{"note":"fill me in"}`, Token{}, ErrNotFound, ""},
		{"malformed", `{"access_token": "pina_FAKEACCESSTOKEN0123456789"`, Token{}, ErrInvalid, "malformed JSON"},
		{"wrong type", `{"access_token": 42, "refresh_token": "pinr_FAKEREFRESHTOKEN9876543210"}`, Token{}, ErrInvalid, "field access_token is a JSON number"},
		{"not an object", `"pina_FAKEACCESSTOKEN0123456789"`, Token{}, ErrInvalid, "want a JSON object"},
		{"a secret in a time field", `{"refresh_token_expires_at": "pinr_FAKEREFRESHTOKEN9876543210"}`, Token{}, ErrInvalid, "field refresh_token_expires_at is not an RFC 3339 time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decode([]byte(tt.in))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Fatalf("decode (-want +got):\n%s", diff)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("decode error = %v, want %v containing %q", err, tt.wantErr, tt.errHas)
			}
			for _, secret := range secretValues {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("decode error shows a secret: %v", err)
				}
			}
		})
	}
}

// readExample is the token JSON example of docs/TOKEN.md, kept in testdata so
// the documentation and the code cannot drift apart.
func readExample(t *testing.T) string {
	t.Helper()
	doc := readFile(t, "../../docs/TOKEN.md")
	_, rest, ok := strings.Cut(doc, "```json\n")
	if !ok {
		t.Fatal("docs/TOKEN.md has no ```json example")
	}
	example, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("docs/TOKEN.md: the json example is not closed")
	}
	return example
}

func exampleToken() Token {
	return Token{
		ClientID:              "1234567",
		ClientSecret:          "fake-client-secret-0000000000000000",
		AccessToken:           "pina_FAKE-ACCESS-TOKEN-NOT-REAL",
		RefreshToken:          "pinr_FAKE-REFRESH-TOKEN-NOT-REAL",
		AccessTokenExpiresAt:  time.Date(2026, 12, 27, 9, 30, 0, 0, time.UTC),
		RefreshTokenExpiresAt: time.Date(2027, 11, 27, 9, 30, 0, 0, time.UTC),
		Scope:                 "ads:read,ads:write",
		AdAccountID:           "549755885175",
		RefreshedAt:           time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC),
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	zoned := sampleToken()
	zoned.AccessTokenExpiresAt = zoned.AccessTokenExpiresAt.In(time.FixedZone("PST", -8*3600))
	for _, indent := range []bool{false, true} {
		data, err := encode(zoned, indent)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		if !strings.Contains(string(data), `"access_token_expires_at":`) || !strings.Contains(string(data), `27T10:00:00Z"`) {
			t.Fatalf("encode(indent %v) = %s: want the field names of docs/TOKEN.md and UTC times", indent, data)
		}
		got, err := decode(data)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if diff := cmp.Diff(zoned, got); diff != "" {
			t.Fatalf("round trip (-want +got):\n%s", diff)
		}
	}
}

// FuzzDecode: the stored form is outside input (an operator may edit the
// secret). decode never panics, a token it accepts survives encode/decode,
// and its errors quote no input.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"client_id":"1","access_token":"a","access_token_expires_at":"2026-12-27T09:30:00Z"}`))
	f.Add([]byte(`{"refresh_token_expires_at":"SECRETSECRETSECRET"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[1,2]`))
	f.Add([]byte(`{"scope":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := decode(data)
		if err != nil {
			if !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("decode error %v wraps neither ErrNotFound nor ErrInvalid", err)
			}
			// Quoting input would show as a quote character in the message.
			if strings.ContainsAny(err.Error(), `"'`) {
				t.Fatalf("decode error quotes its input: %v", err)
			}
			return
		}
		again, err := encode(tok, false)
		if err != nil {
			// time.Time cannot encode years outside 0..9999 that it parsed.
			var je *json.MarshalerError
			if errors.As(err, &je) {
				return
			}
			t.Fatalf("encode a decoded token: %v", err)
		}
		back, err := decode(again)
		if err != nil {
			t.Fatalf("decode(encode(decode(x))): %v", err)
		}
		if !back.AccessTokenExpiresAt.Equal(tok.AccessTokenExpiresAt) || back.AccessToken != tok.AccessToken || back.RefreshToken != tok.RefreshToken {
			t.Fatalf("round trip changed the token: %v -> %v", tok, back)
		}
	})
}
