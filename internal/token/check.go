package token

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

var (
	// ErrNotFound means no token is stored: the file or secret does not
	// exist, has no value, or holds an empty JSON object (a placeholder).
	// `pinlist connect` stores a Pinterest token.
	ErrNotFound = errors.New("token not found")
	// ErrInvalid means a token lacks a field it needs (see Token.Validate) or
	// its stored form is not the token JSON.
	ErrInvalid = errors.New("invalid Pinterest token")
)

// maxStored bounds the stored form read back (the real one is under 2 KiB;
// Secrets Manager allows 64 KiB).
const maxStored = 64 << 10

// Validate reports the fields a usable token lacks: the client ID and
// secret, both tokens and both expiries. The error wraps ErrInvalid and names
// the fields, never their values.
func (t Token) Validate() error {
	var missing []string
	for _, f := range []struct {
		name    string
		missing bool
	}{
		{"client_id", t.ClientID == ""},
		{"client_secret", t.ClientSecret == ""},
		{"access_token", t.AccessToken == ""},
		{"refresh_token", t.RefreshToken == ""},
		{"access_token_expires_at", t.AccessTokenExpiresAt.IsZero()},
		{"refresh_token_expires_at", t.RefreshTokenExpiresAt.IsZero()},
	} {
		if f.missing {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing %s", ErrInvalid, strings.Join(missing, ", "))
	}
	return nil
}

// AccessTokenExpiresIn is how long the access token is valid after now
// (negative once expired).
func (t Token) AccessTokenExpiresIn(now time.Time) time.Duration {
	return t.AccessTokenExpiresAt.Sub(now)
}

// DaysToAccessTokenExpiry is AccessTokenExpiresIn in days (the metric
// DaysToAccessTokenExpiry).
func (t Token) DaysToAccessTokenExpiry(now time.Time) float64 {
	return days(t.AccessTokenExpiresAt.Sub(now))
}

// DaysToRefreshTokenExpiry is how many days the refresh token is valid after
// now (the metric DaysToRefreshTokenExpiry; negative once expired).
func (t Token) DaysToRefreshTokenExpiry(now time.Time) float64 {
	return days(t.RefreshTokenExpiresAt.Sub(now))
}

func days(d time.Duration) float64 { return d.Hours() / 24 }

// encode is the stored form: the token JSON with times in UTC.
func encode(t Token, indent bool) ([]byte, error) {
	t.AccessTokenExpiresAt = t.AccessTokenExpiresAt.UTC()
	t.RefreshTokenExpiresAt = t.RefreshTokenExpiresAt.UTC()
	if !t.RefreshedAt.IsZero() {
		t.RefreshedAt = t.RefreshedAt.UTC()
	}
	if indent {
		b, err := json.MarshalIndent(t, "", "  ")
		return append(b, '\n'), err
	}
	return json.Marshal(t)
}

// timeFields are the token JSON's RFC 3339 fields.
var timeFields = []string{"access_token_expires_at", "refresh_token_expires_at", "refreshed_at"}

// decode reads the stored form. Empty input or an empty JSON object is
// ErrNotFound. Errors describe what is wrong by position or field name and
// never quote the input, which holds secrets.
func decode(data []byte) (Token, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return Token{}, ErrNotFound
	}
	var t Token
	if err := json.Unmarshal(data, &t); err != nil {
		return Token{}, fmt.Errorf("%w: %s", ErrInvalid, describeJSONError(data, err))
	}
	if t == (Token{}) {
		return Token{}, ErrNotFound
	}
	return t, nil
}

func describeJSONError(data []byte, err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("malformed JSON at byte %d", syntax.Offset)
	case errors.As(err, &typ) && typ.Field != "":
		return fmt.Sprintf("field %s is a JSON %s, want %s", typ.Field, typ.Value, typ.Type)
	case errors.As(err, &typ):
		return fmt.Sprintf("a JSON %s, want a JSON object", typ.Value)
	}
	// The rest come from time.Time: find the field without quoting it.
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) == nil {
		for _, name := range timeFields {
			var x time.Time
			if raw, ok := fields[name]; ok && json.Unmarshal(raw, &x) != nil {
				return fmt.Sprintf("field %s is not an RFC 3339 time", name)
			}
		}
	}
	return "not the token JSON"
}
