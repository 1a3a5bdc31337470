package pinterest

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
)

func TestAuthCodeURL(t *testing.T) {
	tests := []struct {
		name    string
		cfg     OAuthConfig
		wantURL string
		want    url.Values
	}{
		{
			name:    "defaults",
			cfg:     OAuthConfig{ClientID: "cid", ClientSecret: "s3cret", RedirectURL: "http://127.0.0.1:8080/oauth/callback"},
			wantURL: "https://www.pinterest.com/oauth/",
			want: url.Values{
				"client_id": {"cid"}, "redirect_uri": {"http://127.0.0.1:8080/oauth/callback"},
				"response_type": {"code"}, "scope": {"ads:read,ads:write"}, "state": {"st4te"},
			},
		},
		{
			name:    "simulator auth URL and own scopes",
			cfg:     OAuthConfig{ClientID: "cid", RedirectURL: "http://r", AuthURL: "http://127.0.0.1:8081/oauth/", Scopes: []string{"ads:read"}},
			wantURL: "http://127.0.0.1:8081/oauth/",
			want: url.Values{
				"client_id": {"cid"}, "redirect_uri": {"http://r"},
				"response_type": {"code"}, "scope": {"ads:read"}, "state": {"st4te"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := NewOAuth(tt.cfg).AuthCodeURL("st4te")
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			if got := u.Scheme + "://" + u.Host + u.Path; got != tt.wantURL {
				t.Errorf("URL = %s, want %s", got, tt.wantURL)
			}
			if diff := cmp.Diff(tt.want, u.Query()); diff != "" {
				t.Errorf("query (-want +got):\n%s", diff)
			}
			if strings.Contains(raw, "s3cret") {
				t.Errorf("auth URL carries the client secret: %s", raw)
			}
		})
	}
}

func TestTokenFromResponse(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	o := NewOAuth(OAuthConfig{Now: func() time.Time { return now }})
	tests := []struct {
		name  string
		extra map[string]any
		want  Token
	}{
		{
			name:  "code response with expires_at",
			extra: map[string]any{"scope": "ads:read,ads:write", "expires_in": 2592000.0, "refresh_token_expires_in": 5184000.0, "refresh_token_expires_at": 1777777777.0},
			want: Token{AccessToken: "a", RefreshToken: "r", Scope: "ads:read,ads:write",
				AccessTokenExpiresAt: now.Add(30 * 24 * time.Hour), RefreshTokenExpiresAt: time.Unix(1777777777, 0)},
		},
		{
			name:  "only refresh_token_expires_in",
			extra: map[string]any{"expires_in": "60", "refresh_token_expires_in": 120.0},
			want:  Token{AccessToken: "a", RefreshToken: "r", AccessTokenExpiresAt: now.Add(time.Minute), RefreshTokenExpiresAt: now.Add(2 * time.Minute)},
		},
		{
			name:  "garbage expiries are ignored",
			extra: map[string]any{"expires_in": -5.0, "refresh_token_expires_in": "soon", "refresh_token_expires_at": 1e300},
			want:  Token{AccessToken: "a", RefreshToken: "r"},
		},
		{
			name:  "absurd lifetime is capped",
			extra: map[string]any{"expires_in": 1e11},
			want:  Token{AccessToken: "a", RefreshToken: "r", AccessTokenExpiresAt: now.Add(maxTokenLifetime)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := o.token((&oauth2.Token{AccessToken: "a", RefreshToken: "r"}).WithExtra(tt.extra))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&tt.want, got); diff != "" {
				t.Errorf("token (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTokenNeverPrintsSecrets covers every way a Token could reach a log
// line or an error string: fmt verbs, slog's text and JSON handlers.
func TestTokenNeverPrintsSecrets(t *testing.T) {
	tok := Token{AccessToken: "pina.ACCESS-SECRET", RefreshToken: "pinr.REFRESH-SECRET", Scope: "ads:read"}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		outs = append(outs, fmt.Sprintf(verb, tok), fmt.Sprintf(verb, &tok))
	}
	outs = append(outs, fmt.Sprint(tok), fmt.Sprintf("%v", []Token{tok}), fmt.Sprintf("%+v", struct{ T Token }{tok}))
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("token", "tok", tok, "ptr", &tok)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("token", "tok", tok)
	outs = append(outs, logs.String())
	for _, out := range outs {
		if strings.Contains(out, "SECRET") {
			t.Errorf("secret printed: %s", out)
		}
	}
	if !strings.Contains(logs.String(), `"scope":"ads:read"`) {
		t.Errorf("slog output lacks the scope: %s", logs.String())
	}
}
