package local

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pinlist/pinlist/internal/token"
)

// TestStatusOfARunningStack: the token's expiry dates, the queue and the
// managed lists with their exact sizes from the simulator.
func TestStatusOfARunningStack(t *testing.T) {
	s := newStack(t, nil)
	var g gen
	p := profile{ids: []ident{g.email(), g.email(), g.gaid()}, events: []membershipEvent{{audA, "realized", t0}}}
	s.mustAccept(t, body(t, p))
	m := newModel()
	m.add(p)
	waitMembership(t, s.SimulatorURL(), s.AdAccountID(), m.membership())

	st := ReadStatus(t.Context(), StatusOptions{DataDir: s.cfg.DataDir, SimAddr: strings.TrimPrefix(s.SimulatorURL(), "http://")})
	if st.Token == nil {
		t.Fatalf("no token status: %s", st.TokenError)
	}
	if d := st.Token.AccountDaysLeft; d < 59 || d > 60 {
		t.Errorf("account days left = %v, want the simulator's 60-day refresh token", d)
	}
	if d := st.Token.AccessTokenDaysLeft; d < 29 || d > 30 {
		t.Errorf("access token days left = %v, want about 30", d)
	}
	if st.Token.Warning != "" || st.Token.LastRefresh.IsZero() {
		t.Errorf("token status = %+v, want no warning and a last refresh", st.Token)
	}
	if !st.Healthy || len(st.Warnings) != 0 {
		t.Errorf("healthy %v, warnings %q; want a healthy stack", st.Healthy, st.Warnings)
	}
	if st.Queue == nil || st.Queue.Depth != 0 || st.Queue.DeadLetters != 0 {
		t.Errorf("queue = %+v (%s), want empty", st.Queue, st.QueueError)
	}
	sizes := map[string]int{}
	for _, l := range st.Lists {
		if l.Members == nil {
			t.Fatalf("list %s has no member count from the simulator", l.Name)
		}
		key, _ := stableListName(l.Name)
		sizes[key] = *l.Members
	}
	want := map[string]int{"ups:" + audA + " EMAIL": 2, "ups:" + audA + " MAID": 1}
	if len(sizes) != len(want) || sizes["ups:"+audA+" EMAIL"] != 2 || sizes["ups:"+audA+" MAID"] != 1 {
		t.Errorf("list sizes = %v, want %v (%s)", sizes, want, st.ListsError)
	}

	var text strings.Builder
	if err := st.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"account expiration date:", "days left", "last refresh:", "dead letters:", "ups:" + audA + " EMAIL"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("status text lacks %q:\n%s", want, text.String())
		}
	}
	enc, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"access_token\"", SimClientSecret, s.IngestToken()} {
		if strings.Contains(string(enc), secret) {
			t.Errorf("status JSON holds %q: %s", secret, enc)
		}
	}
}

// TestStatusOfAnEmptyDataDir says what is missing and creates nothing.
func TestStatusOfAnEmptyDataDir(t *testing.T) {
	dir := t.TempDir()
	st := ReadStatus(t.Context(), StatusOptions{DataDir: dir, SimAddr: "127.0.0.1:1"})
	if st.Token != nil || !strings.Contains(st.TokenError, "pinlist serve") {
		t.Errorf("token = %+v, error %q; want one saying serve provisions it", st.Token, st.TokenError)
	}
	if st.Queue == nil || st.Queue.Depth != 0 {
		t.Errorf("queue = %+v (%s), want empty", st.Queue, st.QueueError)
	}
	if st.ListsError == "" {
		t.Error("no lists error without a token")
	}
	if st.Healthy || len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "pinlist serve provisions") {
		t.Errorf("healthy %v, warnings %q; want the missing token as the one warning", st.Healthy, st.Warnings)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("status created files: %v", entries)
	}
	st = ReadStatus(t.Context(), StatusOptions{DataDir: dir, PinterestURL: "https://api.pinterest.com/v5"})
	if want := "pinlist connect --store file:" + filepath.Join(dir, TokenFile); !strings.Contains(st.TokenError, want) {
		t.Errorf("token error %q does not say %q", st.TokenError, want)
	}
}

// TestStatusWarnsBeforeTheConnectionLapses: the warning threshold of the
// refresh token's expiry (the account expiration date): a warning below it,
// none above it.
func TestStatusWarnsBeforeTheConnectionLapses(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	tests := []struct {
		name        string
		alertBefore time.Duration // 0: the default, 14 days
		accessLeft  time.Duration
		refreshLeft time.Duration
		warning     string
		daysLeft    float64
	}{
		{"healthy", 0, 20 * day, 50 * day, "", 50},
		{"just outside the window", 0, 20 * day, 14*day + time.Minute, "", 14},
		{"inside the window", 0, 5 * day, 13 * day, "expires in 13.0 days, within the 14-day warning threshold", 13},
		{"outside a narrower window", 7 * day, 5 * day, 13 * day, "", 13},
		{"inside a wider window", 30 * day, 20 * day, 29*day + 23*time.Hour, "expires in 29.9 days, within the 30-day", 29.9},
		{"lapsed", 0, -time.Hour, -time.Hour, "has expired", -0.1},
		{"access token expired only", 0, -time.Hour, 30 * day, "access token has expired", 30},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tok := token.Token{
				ClientID: "c", ClientSecret: "s", AccessToken: "a", RefreshToken: "r",
				AccessTokenExpiresAt: now.Add(tc.accessLeft), RefreshTokenExpiresAt: now.Add(tc.refreshLeft),
			}
			if err := (token.FileStore{Path: TokenPath(dir)}).Save(context.Background(), tok); err != nil {
				t.Fatal(err)
			}
			st := ReadStatus(t.Context(), StatusOptions{DataDir: dir, SimAddr: "127.0.0.1:1", AlertBefore: tc.alertBefore, Now: func() time.Time { return now }})
			if st.Token == nil {
				t.Fatalf("no token: %s", st.TokenError)
			}
			if (tc.warning == "") != (st.Token.Warning == "") || !strings.Contains(st.Token.Warning, tc.warning) {
				t.Errorf("warning %q, want %q", st.Token.Warning, tc.warning)
			}
			if st.Healthy != (tc.warning == "") || len(st.Warnings) > 1 || tc.warning != "" && !strings.Contains(strings.Join(st.Warnings, ""), tc.warning) {
				t.Errorf("healthy %v, warnings %q; want warning %q", st.Healthy, st.Warnings, tc.warning)
			}
			if !st.Token.AccountExpiresAt.Equal(tok.RefreshTokenExpiresAt) {
				t.Errorf("account expires %v, want %v", st.Token.AccountExpiresAt, tok.RefreshTokenExpiresAt)
			}
			if st.Token.AccountDaysLeft != tc.daysLeft {
				t.Errorf("account days left %v, want %v", st.Token.AccountDaysLeft, tc.daysLeft)
			}
			var text strings.Builder
			if err := st.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(text.String(), "WARNING:"); got != (tc.warning != "") {
				t.Errorf("text has a WARNING line: %v, want %v:\n%s", got, tc.warning != "", text.String())
			}
		})
	}
}
