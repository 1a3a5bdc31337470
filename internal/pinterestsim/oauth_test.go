package pinterestsim

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

const testRedirect = "http://127.0.0.1:9999/callback"

// authorize runs the consent step and returns the code from the redirect.
func (f *fixture) authorize(t *testing.T, query url.Values) (*http.Response, url.Values) {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(f.srv.URL + "/oauth/?" + query.Encode())
	if err != nil {
		t.Fatalf("GET /oauth/: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		return resp, nil
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatalf("parse Location: %v", err)
	}
	return resp, loc.Query()
}

func authQuery() url.Values {
	return url.Values{
		"client_id":     {testClient},
		"redirect_uri":  {testRedirect},
		"response_type": {"code"},
		"scope":         {"ads:read,ads:write"},
		"state":         {"st-123"},
	}
}

func (f *fixture) oauthConfig() *oauth2.Config {
	return &oauth2.Config{
		ClientID:     testClient,
		ClientSecret: testSecret,
		Endpoint: oauth2.Endpoint{
			AuthURL:   f.srv.URL + "/oauth/",
			TokenURL:  f.srv.URL + "/v5/oauth/token",
			AuthStyle: oauth2.AuthStyleInHeader,
		},
		RedirectURL: testRedirect,
		Scopes:      []string{"ads:read,ads:write"},
	}
}

func (f *fixture) oauthCtx() context.Context {
	return context.WithValue(context.Background(), oauth2.HTTPClient, f.srv.Client())
}

func wantInvalidGrant(t *testing.T, err error) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("error = %v, want *oauth2.RetrieveError", err)
	}
	if re.ErrorCode != "invalid_grant" || re.Response.StatusCode != http.StatusBadRequest {
		t.Errorf("ErrorCode %q status %d, want invalid_grant 400", re.ErrorCode, re.Response.StatusCode)
	}
}

func TestOAuthAuthorizationCodeFlow(t *testing.T) {
	f := newFixture(t)
	cfg := f.oauthConfig()

	resp, q := f.authorize(t, authQuery())
	if resp.StatusCode != http.StatusFound || q.Get("code") == "" || q.Get("state") != "st-123" {
		t.Fatalf("authorize: status %d, redirect query %v", resp.StatusCode, q)
	}
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, testRedirect+"?") {
		t.Errorf("redirected to %q, want %s?...", loc, testRedirect)
	}

	tok, err := cfg.Exchange(f.oauthCtx(), q.Get("code"))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if tok.RefreshToken == "" || !strings.HasPrefix(tok.AccessToken, "pina") || !strings.HasPrefix(tok.RefreshToken, "pinr") {
		t.Errorf("token pair has the wrong shape (access prefix pina, refresh prefix pinr expected)")
	}
	if got, want := tok.Extra("expires_in"), DefaultAccessTokenTTL.Seconds(); got != want {
		t.Errorf("expires_in = %v, want %v", got, want)
	}
	if got := tok.Extra("scope"); got != "ads:read,ads:write" {
		t.Errorf("scope = %v", got)
	}
	if got, want := tok.Extra("refresh_token_expires_at"), float64(f.clock.Now().Add(DefaultRefreshTokenTTL).Unix()); got != want {
		t.Errorf("refresh_token_expires_at = %v, want %v", got, want)
	}
	if got, want := tok.Extra("refresh_token_expires_in"), DefaultRefreshTokenTTL.Seconds(); got != want {
		t.Errorf("refresh_token_expires_in = %v, want %v", got, want)
	}
	if resp := f.apiWith(tok.AccessToken, http.MethodGet, "/v5/ad_accounts/"+testAd+"/customer_lists", nil); resp.status != http.StatusOK {
		t.Errorf("API with the exchanged token: %d", resp.status)
	}

	t.Run("code is single use", func(t *testing.T) {
		_, err := cfg.Exchange(f.oauthCtx(), q.Get("code"))
		wantInvalidGrant(t, err)
	})
	t.Run("redirect_uri must match", func(t *testing.T) {
		_, q := f.authorize(t, authQuery())
		other := *cfg
		other.RedirectURL = "http://127.0.0.1:9999/other"
		_, err := other.Exchange(f.oauthCtx(), q.Get("code"))
		wantInvalidGrant(t, err)
	})
	t.Run("code expires", func(t *testing.T) {
		_, q := f.authorize(t, authQuery())
		f.clock.Advance(codeTTL)
		_, err := cfg.Exchange(f.oauthCtx(), q.Get("code"))
		wantInvalidGrant(t, err)
	})
	t.Run("code of another client", func(t *testing.T) {
		g := newFixture(t, func(o *Options) { o.Clients["other-app"] = "other-secret" })
		_, q := g.authorize(t, authQuery())
		other := g.oauthConfig()
		other.ClientID, other.ClientSecret = "other-app", "other-secret"
		_, err := other.Exchange(g.oauthCtx(), q.Get("code"))
		wantInvalidGrant(t, err)
	})
}

func TestOAuthAuthorizeRejects(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name   string
		change func(url.Values)
	}{
		{name: "unknown client", change: func(q url.Values) { q.Set("client_id", "nope") }},
		{name: "no redirect_uri", change: func(q url.Values) { q.Del("redirect_uri") }},
		{name: "relative redirect_uri", change: func(q url.Values) { q.Set("redirect_uri", "/callback") }},
		{name: "implicit grant", change: func(q url.Values) { q.Set("response_type", "token") }},
		{name: "no scope", change: func(q url.Values) { q.Del("scope") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := authQuery()
			tt.change(q)
			if resp, _ := f.authorize(t, q); resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status = %d, want 400", resp.StatusCode)
			}
		})
	}
	t.Run("consumer_id and space-separated scopes", func(t *testing.T) {
		q := authQuery()
		q.Del("client_id")
		q.Set("consumer_id", testClient)
		q.Set("scope", "ads:read ads:write")
		resp, got := f.authorize(t, q)
		if resp.StatusCode != http.StatusFound || got.Get("code") == "" {
			t.Errorf("status = %d, want 302 with a code", resp.StatusCode)
		}
	})
}

// refresh posts a refresh grant and returns the reply.
func (f *fixture) refresh(refreshToken string) response {
	f.t.Helper()
	return f.form(testClient, testSecret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}.Encode())
}

func TestOAuthRefreshRotates(t *testing.T) {
	f := newFixture(t)
	_, refresh0 := f.sim.IssueToken(testClient, []string{"ads:read", "ads:write"})

	f.clock.Advance(24 * time.Hour)
	resp := f.refresh(refresh0)
	if resp.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", resp.status, resp.body)
	}
	var tok tokenResponse
	resp.decode(t, &tok)
	if tok.RefreshToken == "" || tok.RefreshToken == refresh0 {
		t.Fatal("refresh did not rotate the refresh token")
	}
	if tok.TokenType != "bearer" || tok.ResponseType != "refresh_token" || tok.Scope != "ads:read,ads:write" {
		t.Errorf("token_type %q response_type %q scope %q", tok.TokenType, tok.ResponseType, tok.Scope)
	}
	if want := f.clock.Now().Add(DefaultRefreshTokenTTL).Unix(); tok.RefreshTokenExpiresAt != want {
		t.Errorf("refresh_token_expires_at = %d, want a fresh 60 days: %d", tok.RefreshTokenExpiresAt, want)
	}
	if tok.ExpiresIn != int64(DefaultAccessTokenTTL.Seconds()) || tok.RefreshTokenExpiresIn != int64(DefaultRefreshTokenTTL.Seconds()) {
		t.Errorf("expires_in %d refresh_token_expires_in %d", tok.ExpiresIn, tok.RefreshTokenExpiresIn)
	}
	if r := f.apiWith(tok.AccessToken, http.MethodGet, "/v5/ad_accounts/"+testAd+"/customer_lists", nil); r.status != http.StatusOK {
		t.Errorf("API with the refreshed token: %d", r.status)
	}

	tests := []struct {
		name  string
		token func() string
	}{
		{name: "old refresh token is dead", token: func() string { return refresh0 }},
		{name: "unknown refresh token", token: func() string { return "pinr_nope" }},
		{name: "an access token is no refresh token", token: func() string { return tok.AccessToken }},
		{name: "expired refresh token", token: func() string {
			_, r := f.sim.IssueToken(testClient, []string{"ads:read"})
			f.clock.Advance(DefaultRefreshTokenTTL)
			return r
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := f.refresh(tt.token())
			if resp.status != http.StatusBadRequest {
				t.Fatalf("status = %d (%s), want 400", resp.status, resp.body)
			}
			var e oauthError
			resp.decode(t, &e)
			if e.Error != "invalid_grant" || e.Code == 0 || e.Message == "" {
				t.Errorf("body = %s, want an invalid_grant error with a Pinterest code and message", resp.body)
			}
		})
	}

	t.Run("x/oauth2 sees invalid_grant", func(t *testing.T) {
		ts := f.oauthConfig().TokenSource(f.oauthCtx(), &oauth2.Token{RefreshToken: refresh0, Expiry: f.clock.Now().Add(-time.Hour)})
		_, err := ts.Token()
		wantInvalidGrant(t, err)
	})
	t.Run("x/oauth2 refresh rotates", func(t *testing.T) {
		_, r := f.sim.IssueToken(testClient, []string{"ads:read", "ads:write"})
		ts := f.oauthConfig().TokenSource(f.oauthCtx(), &oauth2.Token{RefreshToken: r, Expiry: time.Now().Add(-time.Hour)})
		got, err := ts.Token()
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if got.RefreshToken == r || got.RefreshToken == "" {
			t.Error("x/oauth2 did not get a new refresh token")
		}
	})
}

func TestExpireAccessTokens(t *testing.T) {
	f := newFixture(t)
	access, refresh := f.sim.IssueToken(testClient, []string{"ads:read"})
	lists := "/v5/ad_accounts/" + testAd + "/customer_lists"
	f.sim.ExpireAccessTokens()
	for _, token := range []string{access, f.token} {
		if resp := f.apiWith(token, http.MethodGet, lists, nil); resp.status != http.StatusUnauthorized {
			t.Errorf("after ExpireAccessTokens: status %d, want 401", resp.status)
		}
	}
	resp := f.refresh(refresh)
	if resp.status != http.StatusOK {
		t.Fatalf("refresh after expiry: %d %s", resp.status, resp.body)
	}
	var tok tokenResponse
	resp.decode(t, &tok)
	if r := f.apiWith(tok.AccessToken, http.MethodGet, lists, nil); r.status != http.StatusOK {
		t.Errorf("new access token: status %d, want 200", r.status)
	}
}

func TestTokenEndpointRejects(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name          string
		client        string
		secret        string
		contentType   string
		body          string
		wantStatus    int
		wantErrorCode string
	}{
		{name: "no form body", client: testClient, secret: testSecret, wantStatus: 400, wantErrorCode: "invalid_request"},
		{name: "JSON body", client: testClient, secret: testSecret, contentType: "application/json",
			body: `{"grant_type":"refresh_token","refresh_token":"x"}`, wantStatus: 400, wantErrorCode: "invalid_request"},
		{name: "refresh without refresh_token", client: testClient, secret: testSecret,
			body: "grant_type=refresh_token", wantStatus: 400, wantErrorCode: "invalid_request"},
		{name: "code without redirect_uri", client: testClient, secret: testSecret,
			body: "grant_type=authorization_code&code=abc", wantStatus: 400, wantErrorCode: "invalid_request"},
		{name: "unknown grant", client: testClient, secret: testSecret,
			body: "grant_type=password&username=a", wantStatus: 400, wantErrorCode: "invalid_request"},
		{name: "wrong secret", client: testClient, secret: "nope",
			body: "grant_type=refresh_token&refresh_token=x", wantStatus: 401, wantErrorCode: "invalid_client"},
		{name: "unknown client", client: "nope", secret: testSecret,
			body: "grant_type=refresh_token&refresh_token=x", wantStatus: 401, wantErrorCode: "invalid_client"},
		{name: "no client auth", body: "grant_type=refresh_token&refresh_token=x", wantStatus: 401, wantErrorCode: "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/v5/oauth/token", strings.NewReader(tt.body))
			ct := tt.contentType
			if ct == "" && tt.body != "" {
				ct = "application/x-www-form-urlencoded"
			}
			if ct != "" {
				req.Header.Set("Content-Type", ct)
			}
			if tt.client != "" {
				req.SetBasicAuth(tt.client, tt.secret)
			}
			resp := f.send(req)
			if resp.status != tt.wantStatus {
				t.Fatalf("status = %d (%s), want %d", resp.status, resp.body, tt.wantStatus)
			}
			var e oauthError
			resp.decode(t, &e)
			if e.Error != tt.wantErrorCode || e.Message == "" || e.Code == 0 {
				t.Errorf("body = %s, want error %q with a Pinterest code and message", resp.body, tt.wantErrorCode)
			}
			if strings.Contains(string(resp.body), testSecret) {
				t.Error("error body echoes the client secret")
			}
		})
	}
}

func TestClientCredentialsGrant(t *testing.T) {
	f := newFixture(t)
	resp := f.form(testClient, testSecret, "grant_type=client_credentials&scope=ads:read")
	if resp.status != http.StatusOK {
		t.Fatalf("status %d %s", resp.status, resp.body)
	}
	var tok tokenResponse
	resp.decode(t, &tok)
	if tok.RefreshToken != "" || tok.Scope != "ads:read" {
		t.Errorf("client credentials reply: refresh token set %v, scope %q", tok.RefreshToken != "", tok.Scope)
	}
	if r := f.apiWith(tok.AccessToken, http.MethodGet, "/v5/ad_accounts/"+testAd+"/customer_lists", nil); r.status != http.StatusOK {
		t.Errorf("API with the client token: %d", r.status)
	}
}
