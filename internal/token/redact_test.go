package token

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// secretValues are the secret fields of sampleToken; no printed form may
// contain any of them.
var secretValues = []string{
	"fake-client-id-5f0c",
	"fake-client-secret-9a1e77",
	"pina_FAKEACCESSTOKEN0123456789",
	"pinr_FAKEREFRESHTOKEN9876543210",
}

func sampleToken() Token {
	return Token{
		ClientID:              secretValues[0],
		ClientSecret:          secretValues[1],
		AccessToken:           secretValues[2],
		RefreshToken:          secretValues[3],
		AccessTokenExpiresAt:  time.Date(2026, 12, 27, 10, 0, 0, 0, time.UTC),
		RefreshTokenExpiresAt: time.Date(2027, 11, 27, 10, 0, 0, 0, time.UTC),
		Scope:                 "ads:read,ads:write",
		AdAccountID:           "549755885175",
		RefreshedAt:           time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
	}
}

func TestTokenNeverPrintsItsSecrets(t *testing.T) {
	tok := sampleToken()
	type holder struct {
		Token Token
		Ptr   *Token
	}
	var slogJSON, slogText bytes.Buffer
	slog.New(slog.NewJSONHandler(&slogJSON, nil)).Info("refreshed", "token", tok, "ptr", &tok)
	slog.New(slog.NewTextHandler(&slogText, nil)).Info("refreshed", "token", tok, slog.Any("ptr", &tok))

	forms := map[string]string{
		"String":        tok.String(),
		"GoString":      tok.GoString(),
		"slog JSON":     slogJSON.String(),
		"slog text":     slogText.String(),
		"Sprint":        fmt.Sprint(tok),
		"Sprintln ptr":  fmt.Sprintln(&tok),
		"in a struct":   fmt.Sprintf("%+v", holder{tok, &tok}),
		"in a struct #": fmt.Sprintf("%#v", holder{tok, &tok}),
		"in a slice":    fmt.Sprintf("%v", []Token{tok}),
		"in a map":      fmt.Sprintf("%v", map[string]Token{"k": tok}),
		"wrapped error": fmt.Errorf("refresh %v: %w", tok, fmt.Errorf("boom")).Error(),
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3v", "%T %v"} {
		forms["value "+verb] = fmt.Sprintf(verb, tok)
		forms["pointer "+verb] = fmt.Sprintf(verb, &tok)
	}
	forms["value %T %v"] = fmt.Sprintf("%T %v", tok, tok)
	forms["pointer %T %v"] = fmt.Sprintf("%T %v", &tok, &tok)

	for name, got := range forms {
		t.Run(name, func(t *testing.T) {
			for _, secret := range secretValues {
				if strings.Contains(got, secret) {
					t.Fatalf("%s shows secret %q: %s", name, secret, got)
				}
			}
		})
	}
	// What the redacted forms are for: telling tokens apart and their dates.
	for _, name := range []string{"String", "GoString", "slog JSON", "slog text", "value %v", "pointer %#v"} {
		got := forms[name]
		for _, want := range []string{"549755885175", "2026-12-27T10:00:00Z", "2027-11-27T10:00:00Z", "ads:read,ads:write", Fingerprint(tok.AccessToken)} {
			if !strings.Contains(got, want) {
				t.Errorf("%s lacks %q: %s", name, want, got)
			}
		}
	}
}

func TestFingerprint(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"a value", "pina_FAKEACCESSTOKEN0123456789", Fingerprint("pina_FAKEACCESSTOKEN0123456789")},
		{"known sha256", "abc", "sha256:ba7816bf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Fingerprint(tt.in); got != tt.want {
				t.Fatalf("Fingerprint(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	if Fingerprint("a") == Fingerprint("b") {
		t.Fatal("different values share a fingerprint")
	}
}

func TestLogValueLeavesOutEmptyFields(t *testing.T) {
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "token", Token{Scope: "ads:read"})
	if got := buf.String(); !strings.Contains(got, `"token":{"scope":"ads:read"}`) {
		t.Fatalf("log line %s: want only the scope in the token group", got)
	}
}
