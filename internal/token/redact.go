package token

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// A Token prints and logs without its secrets: through fmt (every verb, %#v
// included), through log/slog (LogValue), and through String, a Token shows
// the ad account, the scope, the expiries and the refresh time, and for the
// client ID, client secret, access token and refresh token only a
// fingerprint: "sha256:" and the first 8 hex digits of the value's SHA-256,
// enough to tell two values apart in logs and useless for recovering them.
//
// Only encoding/json writes the secrets (the stored form). A Token held in an
// unexported struct field and printed with that struct is printed by fmt
// field by field, without these methods: log such values with LogValue.

var (
	_ fmt.Formatter  = Token{}
	_ fmt.Stringer   = Token{}
	_ fmt.GoStringer = Token{}
	_ slog.LogValuer = Token{}
)

// Fingerprint returns a short, non-reversible identifier of a secret value:
// "sha256:" and the first 8 hex digits of its SHA-256; "" for "".
func Fingerprint(secret string) string {
	if secret == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:4])
}

// redactedField is one field of the printed form.
type redactedField struct {
	json, gofield string
	value         string
	quoted        bool
}

func (t Token) redacted() []redactedField {
	ts := func(x time.Time) string {
		if x.IsZero() {
			return ""
		}
		return x.UTC().Format(time.RFC3339)
	}
	return []redactedField{
		{"ad_account_id", "AdAccountID", t.AdAccountID, true},
		{"scope", "Scope", t.Scope, true},
		{"access_token_expires_at", "AccessTokenExpiresAt", ts(t.AccessTokenExpiresAt), false},
		{"refresh_token_expires_at", "RefreshTokenExpiresAt", ts(t.RefreshTokenExpiresAt), false},
		{"refreshed_at", "RefreshedAt", ts(t.RefreshedAt), false},
		{"client_id", "ClientID", Fingerprint(t.ClientID), true},
		{"client_secret", "ClientSecret", Fingerprint(t.ClientSecret), true},
		{"access_token", "AccessToken", Fingerprint(t.AccessToken), true},
		{"refresh_token", "RefreshToken", Fingerprint(t.RefreshToken), true},
	}
}

// String is the redacted form: {ad_account_id=… scope=… …}.
func (t Token) String() string {
	var b strings.Builder
	b.WriteString("{")
	for i, f := range t.redacted() {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(f.json)
		b.WriteString("=")
		if f.quoted {
			b.WriteString(strconv.Quote(f.value))
		} else {
			b.WriteString(f.value)
		}
	}
	b.WriteString("}")
	return b.String()
}

// GoString is the redacted form for %#v: the Go field names, with
// fingerprints in place of the secrets.
func (t Token) GoString() string {
	var b strings.Builder
	b.WriteString("token.Token{")
	for i, f := range t.redacted() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(f.gofield)
		b.WriteString(":")
		b.WriteString(strconv.Quote(f.value))
	}
	b.WriteString("}")
	return b.String()
}

// Format prints the redacted form for every verb: GoString for %#v, String
// otherwise. Without it, %d or %x would print the fields themselves.
func (t Token) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		io.WriteString(f, t.GoString())
		return
	}
	io.WriteString(f, t.String())
}

// LogValue is the redacted form for log/slog: a group of the non-secret
// fields and the fingerprints.
func (t Token) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, 9)
	for _, f := range t.redacted() {
		if f.value != "" {
			attrs = append(attrs, slog.String(f.json, f.value))
		}
	}
	return slog.GroupValue(attrs...)
}
