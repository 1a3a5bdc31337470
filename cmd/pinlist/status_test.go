package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/local"
	"github.com/pinlist/pinlist/internal/pinterest"
	"github.com/pinlist/pinlist/internal/pinterestsim"
	"github.com/pinlist/pinlist/internal/queue"
	"github.com/pinlist/pinlist/internal/token"
)

// clearPinlistEnv keeps the machine's pinlist settings out of a test.
func clearPinlistEnv(t *testing.T) {
	for _, k := range []string{"PINTEREST_API_BASE_URL", "PINTEREST_AD_ACCOUNT_ID", "PINLIST_ADDR", "PINLIST_DATA_DIR",
		"PINLIST_INGEST_TOKEN", "PINLIST_REFRESH_BEFORE", "PINLIST_MAX_RECORDS_PER_REQUEST", "PINLIST_LOG_LEVEL",
		"PINLIST_QUEUE_URL", "PINLIST_TOKEN_SECRET_ID"} {
		t.Setenv(k, "")
	}
}

// TestServeThenStatus runs `pinlist serve` in-process until cancelled, and
// `pinlist status --json` beside it and after it.
func TestServeThenStatus(t *testing.T) {
	clearPinlistEnv(t)
	dir := filepath.Join(t.TempDir(), "data")
	simAddr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--sim-addr", simAddr, "--data-dir", dir}, stdout, stderr)
	}()
	waitUntil(t, "the serve banner", func() bool { return strings.Contains(stdout.String(), "status:") })
	for _, want := range []string{"ingest:", "ingest token:", "pinterest:     built-in simulator at http://" + simAddr + "/v5",
		"write limit:   400 calls a minute per ad account", "data dir:"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, stdout)
		}
	}

	var out strings.Builder
	if err := run(context.Background(), []string{"status", "--json", "--data-dir", dir, "--sim-addr", simAddr}, &out, io.Discard); err != nil {
		t.Fatalf("status: %v", err)
	}
	var st struct {
		Token *struct {
			AccountExpiresAt time.Time
			AccountDaysLeft  float64
		}
		Queue      *struct{ Depth, DeadLetters int }
		Lists      []json.RawMessage
		ListsError string
	}
	if err := json.Unmarshal([]byte(out.String()), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out.String())
	}
	if st.Token == nil || st.Token.AccountDaysLeft < 59 || st.Queue == nil || st.Lists == nil || st.ListsError != "" {
		t.Errorf("status beside serve = %s", out.String())
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop within 30s of cancel")
	}
	out.Reset()
	if err := run(context.Background(), []string{"status", "--data-dir", dir, "--sim-addr", simAddr}, &out, io.Discard); err != nil {
		t.Fatalf("status after serve: %v", err)
	}
	for _, want := range []string{"account expiration date:", "depth:", "Customer lists", "unavailable"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status text after serve lacks %q:\n%s", want, out.String())
		}
	}
}

func TestServeAndStatusFlags(t *testing.T) {
	clearPinlistEnv(t)
	tests := []struct {
		name string
		args []string
	}{
		{"serve negative write rate", []string{"serve", "--write-rate", "-2"}},
		{"serve negative simulator write limit", []string{"serve", "--sim-write-limit", "-1"}},
		{"serve extra argument", []string{"serve", "now"}},
		{"serve batch size zero", []string{"serve", "--batch-size", "0"}},
		{"serve batch size above the local limit", []string{"serve", "--batch-size", "1001"}},
		{"serve negative batch window", []string{"serve", "--batch-window", "-1s"}},
		{"status extra argument", []string{"status", "now"}},
		{"status warn days zero", []string{"status", "--warn-days", "0"}},
		{"status DLQ without queue", []string{"status", "--dlq-url", "http://127.0.0.1:1/123456789012/d.fifo"}},
		{"status bad store", []string{"status", "--store", "s3:bucket"}},
		{"status empty secret name", []string{"status", "--store", "secretsmanager:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, io.Discard, io.Discard)
			if !errors.Is(err, errUsage) {
				t.Errorf("err = %v, want a usage error", err)
			}
		})
	}
	t.Setenv("PINLIST_REFRESH_BEFORE", "soon")
	if err := run(context.Background(), []string{"serve"}, io.Discard, io.Discard); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "PINLIST_REFRESH_BEFORE") {
		t.Errorf("bad environment: err = %v, want a usage error naming the variable", err)
	}
}

// The stored secrets of the status tests: none may appear in what status
// prints.
const (
	statusClientSecret = "status-client-secret-7f3a0c"
	statusRefreshToken = "status-refresh-token-91c2d4"
	statusAccessToken  = "status-access-token-55e1b8" // when no simulator issues one
	statusAdAccount    = "549755885178"
)

// statusToken is a stored connection whose tokens expire accessLeft and
// refreshLeft after now; access is its access token.
func statusToken(now time.Time, access string, accessLeft, refreshLeft time.Duration) token.Token {
	return token.Token{
		ClientID: "status-app", ClientSecret: statusClientSecret,
		AccessToken: access, RefreshToken: statusRefreshToken,
		AccessTokenExpiresAt: now.Add(accessLeft), RefreshTokenExpiresAt: now.Add(refreshLeft),
		Scope: "ads:read,ads:write", AdAccountID: statusAdAccount, RefreshedAt: now.Add(-time.Hour),
	}
}

// statusDoc is the part of `pinlist status --json` the tests read.
type statusDoc struct {
	Healthy    bool     `json:"healthy"`
	Warnings   []string `json:"warnings"`
	DataDir    string   `json:"dataDir"`
	TokenStore string   `json:"tokenStore"`
	Token      *struct {
		AccessTokenExpiresAt time.Time `json:"accessTokenExpiresAt"`
		AccessTokenDaysLeft  float64   `json:"accessTokenDaysLeft"`
		AccountExpiresAt     time.Time `json:"accountExpiresAt"`
		AccountDaysLeft      float64   `json:"accountDaysLeft"`
		LastRefresh          time.Time `json:"lastRefresh"`
		AdAccountID          string    `json:"adAccountId"`
		WarnDays             float64   `json:"warnDays"`
		Warning              string    `json:"warning"`
		ReconnectCommand     string    `json:"reconnectCommand"`
	} `json:"token"`
	TokenError string `json:"tokenError"`
	Queue      *struct {
		Kind             string    `json:"kind"`
		URL              string    `json:"url"`
		DeadLetterURL    string    `json:"deadLetterUrl"`
		Depth            int       `json:"depth"`
		Waiting          int       `json:"waiting"`
		InFlight         int       `json:"inFlight"`
		Delayed          int       `json:"delayed"`
		DeadLetters      int       `json:"deadLetters"`
		OldestAgeSeconds *float64  `json:"oldestAgeSeconds"`
		OldestAgeAt      time.Time `json:"oldestAgeAt"`
		OldestAgeUnknown string    `json:"oldestAgeUnknown"`
	} `json:"queue"`
	QueueError   string `json:"queueError"`
	QueueSkipped string `json:"queueSkipped"`
	AdAccountID  string `json:"adAccountId"`
	Lists        []struct {
		Name    string `json:"name"`
		Members *int   `json:"members"`
	} `json:"lists"`
	ListsError   string `json:"listsError"`
	ListsSkipped string `json:"listsSkipped"`
}

// runStatusCmd runs `pinlist status ARGS...`. It fails the test when
// stdout or stderr holds one of the stored secrets.
func runStatusCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut strings.Builder
	err = run(t.Context(), append([]string{"status"}, args...), &out, &errOut)
	for _, secret := range []string{statusClientSecret, statusRefreshToken, statusAccessToken} {
		if strings.Contains(out.String(), secret) || strings.Contains(errOut.String(), secret) {
			t.Errorf("pinlist status %v printed the stored secret %q:\n%s\n%s", args, secret, out.String(), errOut.String())
		}
	}
	return out.String(), errOut.String(), err
}

// statusJSONOf runs `pinlist status --json ARGS...` and decodes its output.
func statusJSONOf(t *testing.T, args ...string) (statusDoc, error) {
	t.Helper()
	out, _, err := runStatusCmd(t, append([]string{"--json"}, args...)...)
	var doc statusDoc
	if derr := json.Unmarshal([]byte(out), &doc); derr != nil {
		t.Fatalf("pinlist status --json %v: %v\n%s", args, derr, out)
	}
	return doc, err
}

// wantExit fails unless err ends pinlist with code (0: no error), and
// returns what pinlist prints on stderr for it.
func wantExit(t *testing.T, err error, code int) string {
	t.Helper()
	var stderr strings.Builder
	if got := exitCode(err, &stderr); got != code {
		t.Errorf("exit code %d (err %v), want %d", got, err, code)
	}
	return stderr.String()
}

// statusDate is how the status text prints a time.
func statusDate(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") }

// TestStatusFileStore: the expiry dates and days left of a token file, and
// the warning (and exit code 3) below the threshold, not above it.
func TestStatusFileStore(t *testing.T) {
	tests := []struct {
		name        string
		refreshLeft time.Duration
		warnDays    []string // flags
		warning     string   // "" when healthy
	}{
		{"above the threshold", 10 * 24 * time.Hour, []string{"--warn-days", "7"}, ""},
		{"below the default threshold", 10 * 24 * time.Hour, nil, "within the 14-day warning threshold"},
		{"below a wider threshold", 20 * 24 * time.Hour, []string{"--warn-days", "30"}, "within the 30-day warning threshold"},
		{"expired", -time.Hour, nil, "the connection has expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearPinlistEnv(t)
			now := time.Now()
			dir := t.TempDir()
			path := filepath.Join(t.TempDir(), "token.json")
			tok := statusToken(now, statusAccessToken, 5*24*time.Hour, tc.refreshLeft)
			if err := (token.FileStore{Path: path}).Save(t.Context(), tok); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"--data-dir", dir, "--store", "file:" + path, "--no-lists"}, tc.warnDays...)
			code := 0
			if tc.warning != "" {
				code = exitNeedsAttention
			}

			doc, err := statusJSONOf(t, args...)
			msg := wantExit(t, err, code)
			if doc.Token == nil {
				t.Fatalf("no token in the status: %s", doc.TokenError)
			}
			if !doc.Token.AccountExpiresAt.Equal(tok.RefreshTokenExpiresAt) || !doc.Token.AccessTokenExpiresAt.Equal(tok.AccessTokenExpiresAt) {
				t.Errorf("expiry dates %v / %v, want the stored %v / %v", doc.Token.AccountExpiresAt, doc.Token.AccessTokenExpiresAt, tok.RefreshTokenExpiresAt, tok.AccessTokenExpiresAt)
			}
			if want := tc.refreshLeft.Hours() / 24; doc.Token.AccountDaysLeft > want || doc.Token.AccountDaysLeft < want-0.2 {
				t.Errorf("account days left %v, want just under %v", doc.Token.AccountDaysLeft, want)
			}
			if d := doc.Token.AccessTokenDaysLeft; d > 5 || d < 4.8 {
				t.Errorf("access token days left %v, want just under 5", d)
			}
			if !doc.Token.LastRefresh.Equal(tok.RefreshedAt) {
				t.Errorf("last refresh %v, want %v", doc.Token.LastRefresh, tok.RefreshedAt)
			}
			if doc.TokenStore != "file:"+path || doc.Token.ReconnectCommand != "pinlist connect --store file:"+path {
				t.Errorf("store %q, reconnect %q; want the file named", doc.TokenStore, doc.Token.ReconnectCommand)
			}
			if doc.Healthy != (tc.warning == "") || !strings.Contains(doc.Token.Warning, tc.warning) || (tc.warning == "") != (doc.Token.Warning == "") {
				t.Errorf("healthy %v, token warning %q; want warning %q", doc.Healthy, doc.Token.Warning, tc.warning)
			}
			if tc.warning != "" && (len(doc.Warnings) != 1 || !strings.Contains(doc.Warnings[0], tc.warning) || !strings.Contains(msg, tc.warning)) {
				t.Errorf("warnings %q, stderr %q; want one saying %q", doc.Warnings, msg, tc.warning)
			}
			if doc.Queue == nil || doc.Queue.Kind != "local" || doc.Queue.Depth != 0 || doc.DataDir != dir {
				t.Errorf("queue %+v (%s) of data dir %q, want the empty local queue of %s", doc.Queue, doc.QueueError, doc.DataDir, dir)
			}
			if doc.Lists != nil || doc.ListsSkipped != "--no-lists" {
				t.Errorf("lists %v, skipped %q; want none read (--no-lists)", doc.Lists, doc.ListsSkipped)
			}

			out, _, err := runStatusCmd(t, args...)
			wantExit(t, err, code)
			wantText := []string{
				"account expiration date:  " + statusDate(tok.RefreshTokenExpiresAt),
				"access token expires:     " + statusDate(tok.AccessTokenExpiresAt),
				"days left", "last refresh:             " + statusDate(tok.RefreshedAt),
				"not read: --no-lists",
			}
			if tc.warning == "" {
				wantText = append(wantText, "Health: OK")
			} else {
				wantText = append(wantText, "WARNING:", tc.warning, "Health: NEEDS ATTENTION")
			}
			for _, want := range wantText {
				if !strings.Contains(out, want) {
					t.Errorf("status text lacks %q:\n%s", want, out)
				}
			}
			if tc.warning == "" && strings.Contains(out, "WARNING") {
				t.Errorf("status text warns above the threshold:\n%s", out)
			}
		})
	}
}

// statusSim is a Pinterest simulator with one pinlist customer list of two
// members in statusAdAccount; it returns the API base URL and an access
// token it issued.
func statusSim(t *testing.T) (apiURL, access string) {
	t.Helper()
	sim, err := pinterestsim.New(pinterestsim.Options{AdAccounts: []string{statusAdAccount}, Seed: 2})
	if err != nil {
		t.Fatalf("new simulator: %v", err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	access, _ = sim.IssueToken("status-app", []string{"ads:read", "ads:write"})
	client, err := pinterest.New(pinterest.Options{AdAccountID: statusAdAccount, BaseURL: srv.URL + "/v5", HTTPClient: srv.Client(),
		TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: access})})
	if err != nil {
		t.Fatalf("new pinterest client: %v", err)
	}
	_, err = client.CreateCustomerList(t.Context(), pinterest.CustomerListCreate{
		Name: "pinlist ups:aud-status EMAIL", ListType: "EMAIL", Records: []string{redriveHash("a"), redriveHash("b")},
	})
	if err != nil {
		t.Fatalf("create customer list: %v", err)
	}
	return srv.URL + "/v5", access
}

// TestStatusAWS: a token in a moto secret, a moto FIFO queue with messages
// waiting and in flight, and a dead letter in its DLQ; the lists read from
// a simulator with the secret's token.
func TestStatusAWS(t *testing.T) {
	clearPinlistEnv(t)
	useMoto(t)
	now := time.Now()
	apiURL, access := statusSim(t)
	tok := statusToken(now, access, 20*24*time.Hour, 50*24*time.Hour)
	value, err := json.Marshal(tok)
	if err != nil {
		t.Fatal(err)
	}
	secretARN := moto.CreateSecret(t, "status-token", string(value))

	queueURL, dlqURL := moto.CreateFIFOQueueWithDLQ(t, "status", 1, 30*time.Second)
	killSQSMessages(t, queueURL, dlqURL, redriveMessages(t)[:1])
	live := []queue.Outgoing{{GroupID: "ups:live-1", DedupID: "live-1", Body: []byte("{}")}, {GroupID: "ups:live-2", DedupID: "live-2", Body: []byte("{}")}}
	if failed, err := queue.NewSQS(moto.SQS(), queueURL).SendBatch(t.Context(), live); err != nil || len(failed) > 0 {
		t.Fatalf("send: %v, %v", failed, err)
	}
	if ev := moto.ReceiveEvent(t, queueURL, 1); len(ev.Records) != 1 { // stays in flight for 30 s
		t.Fatalf("received %d messages, want 1 to hold in flight", len(ev.Records))
	}

	// The ledger holds the list's two members and one who left.
	const table = "status-ledger"
	if err := ledger.CreateDynamoTable(t.Context(), moto.DynamoDB(), table); err != nil {
		t.Fatal(err)
	}
	store, err := ledger.NewDynamo(ledger.DynamoOptions{Client: moto.DynamoDB(), Table: table})
	if err != nil {
		t.Fatal(err)
	}
	aud := audience.Ref{Namespace: "ups", ID: "aud-status"}
	var changes []audience.Change
	for i, who := range []string{"a", "b", "c"} {
		changes = append(changes, audience.Change{Audience: aud, List: audience.ListEmail, Hash: redriveHash(who), Op: audience.OpAdd, EventTime: now.Add(time.Duration(i) * time.Second)})
	}
	changes = append(changes, audience.Change{Audience: aud, List: audience.ListEmail, Hash: redriveHash("c"), Op: audience.OpRemove, EventTime: now.Add(time.Minute)})
	if _, err := store.Apply(t.Context(), changes); err != nil {
		t.Fatal(err)
	}

	args := []string{"--store", "secretsmanager:" + secretARN, "--queue-url", queueURL, "--pinterest-url", apiURL, "--ledger-table", table}
	doc, err := statusJSONOf(t, args...)
	msg := wantExit(t, err, exitNeedsAttention)
	if doc.Token == nil || !doc.Token.AccountExpiresAt.Equal(tok.RefreshTokenExpiresAt) || doc.Token.Warning != "" {
		t.Fatalf("token %+v (%s), want the secret's, no warning", doc.Token, doc.TokenError)
	}
	if d := doc.Token.AccountDaysLeft; d > 50 || d < 49.8 {
		t.Errorf("account days left %v, want just under 50", d)
	}
	if want := "pinlist connect --store secretsmanager:" + secretARN; doc.Token.ReconnectCommand != want || doc.TokenStore != "secretsmanager:"+secretARN {
		t.Errorf("reconnect %q, store %q; want %q", doc.Token.ReconnectCommand, doc.TokenStore, want)
	}
	q := doc.Queue
	if q == nil {
		t.Fatalf("no queue: %s", doc.QueueError)
	}
	if q.Kind != "sqs" || q.URL != queueURL || q.DeadLetterURL != dlqURL {
		t.Errorf("queue %s at %q, DLQ %q; want sqs at %q, DLQ %q", q.Kind, q.URL, q.DeadLetterURL, queueURL, dlqURL)
	}
	if q.Waiting != 1 || q.InFlight != 1 || q.Delayed != 0 || q.Depth != 2 || q.DeadLetters != 1 {
		t.Errorf("queue depth %d (%d waiting, %d in flight, %d delayed), %d dead letters; want 2 (1, 1, 0), 1",
			q.Depth, q.Waiting, q.InFlight, q.Delayed, q.DeadLetters)
	}
	if q.OldestAgeSeconds != nil || q.OldestAgeUnknown != local.AgeUnknownNoData {
		t.Errorf("oldest message age %v (%q), want unknown: moto has no CloudWatch datapoint", q.OldestAgeSeconds, q.OldestAgeUnknown)
	}
	if doc.Healthy || len(doc.Warnings) != 1 || !strings.Contains(doc.Warnings[0], "1 dead letter") || !strings.Contains(msg, "pinlist redrive") {
		t.Errorf("healthy %v, warnings %q, stderr %q; want the dead letter and pinlist redrive", doc.Healthy, doc.Warnings, msg)
	}
	if doc.DataDir != "" || doc.AdAccountID != statusAdAccount || doc.ListsError != "" || len(doc.Lists) != 1 ||
		doc.Lists[0].Members == nil || *doc.Lists[0].Members != 2 {
		t.Errorf("data dir %q, lists of %s: %+v (%s); want no data dir, the simulator's one list with the ledger's 2 members", doc.DataDir, doc.AdAccountID, doc.Lists, doc.ListsError)
	}

	out, _, err := runStatusCmd(t, args...)
	wantExit(t, err, exitNeedsAttention)
	t.Logf("pinlist status:\n%s", out)
	for _, want := range []string{
		"token store:  secretsmanager:" + secretARN,
		"account expiration date:  " + statusDate(tok.RefreshTokenExpiresAt),
		"Queue (SQS)", "2 messages (1 waiting, 1 in flight, 0 delayed)", "dead letters:    1", dlqURL,
		"oldest message:  " + local.AgeUnknownNoData,
		"pinlist ups:aud-status EMAIL",
		"Health: NEEDS ATTENTION", "1 dead letter: fix its cause, then run pinlist redrive",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status text lacks %q:\n%s", want, out)
		}
	}

	// The dead letter redriven and the DLQ given: healthy, exit 0.
	if _, err := runRedriveCmd(t, "--queue-url", queueURL); err != nil {
		t.Fatalf("redrive: %v", err)
	}
	doc, err = statusJSONOf(t, "--store", "secretsmanager:"+secretARN, "--queue-url", queueURL, "--dlq-url", dlqURL, "--no-lists")
	wantExit(t, err, 0)
	if !doc.Healthy || doc.Queue == nil || doc.Queue.DeadLetters != 0 || doc.Queue.Depth != 3 || doc.ListsSkipped != "--no-lists" {
		t.Errorf("after the redrive: healthy %v, queue %+v (%s), lists skipped %q; want healthy, 3 live, no dead letters",
			doc.Healthy, doc.Queue, doc.QueueError, doc.ListsSkipped)
	}
}

// TestStatusAWSFromTheEnvironment: PINLIST_TOKEN_SECRET_ID and
// PINLIST_QUEUE_URL choose the secret and the queue; a connection inside
// the threshold warns, one outside does not.
func TestStatusAWSFromTheEnvironment(t *testing.T) {
	tests := []struct {
		name        string
		refreshLeft time.Duration
		code        int
	}{
		{"outside the threshold", 15 * 24 * time.Hour, 0},
		{"inside the threshold", 13 * 24 * time.Hour, exitNeedsAttention},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearPinlistEnv(t)
			useMoto(t)
			tok := statusToken(time.Now(), statusAccessToken, 5*24*time.Hour, tc.refreshLeft)
			value, err := json.Marshal(tok)
			if err != nil {
				t.Fatal(err)
			}
			queueURL, _ := moto.CreateFIFOQueueWithDLQ(t, "status-env", 3, 30*time.Second)
			t.Setenv("PINLIST_TOKEN_SECRET_ID", moto.CreateSecret(t, "status-env", string(value)))
			t.Setenv("PINLIST_QUEUE_URL", queueURL)

			doc, err := statusJSONOf(t, "--no-lists")
			wantExit(t, err, tc.code)
			if doc.Token == nil || !strings.HasPrefix(doc.TokenStore, "secretsmanager:") || doc.Queue == nil || doc.Queue.URL != queueURL {
				t.Fatalf("status from the environment: store %q, token %+v (%s), queue %+v (%s)", doc.TokenStore, doc.Token, doc.TokenError, doc.Queue, doc.QueueError)
			}
			if (tc.code == 0) != (doc.Token.Warning == "") || doc.Token.WarnDays != 14 {
				t.Errorf("warning %q at %v days of %v left; want one only inside the threshold", doc.Token.Warning, doc.Token.WarnDays, doc.Token.AccountDaysLeft)
			}
		})
	}
}

// TestStatusUnreadableParts: a missing secret and no queue URL: the token
// error names the reconnect command, the queue is not read, and the status
// needs attention.
func TestStatusUnreadableParts(t *testing.T) {
	clearPinlistEnv(t)
	useMoto(t)
	doc, err := statusJSONOf(t, "--store", "secretsmanager:"+moto.UniqueName("missing"), "--no-lists")
	msg := wantExit(t, err, exitNeedsAttention)
	if doc.Token != nil || !strings.Contains(doc.TokenError, "run pinlist connect --store secretsmanager:") {
		t.Errorf("token %+v, error %q; want none, with the connect command", doc.Token, doc.TokenError)
	}
	if doc.Queue != nil || !strings.Contains(doc.QueueSkipped, "--queue-url") {
		t.Errorf("queue %+v, skipped %q; want not read, saying --queue-url", doc.Queue, doc.QueueSkipped)
	}
	if doc.Healthy || !strings.Contains(msg, "Pinterest connection: no Pinterest token in secretsmanager:") {
		t.Errorf("healthy %v, stderr %q; want the unreadable token reported", doc.Healthy, msg)
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		code   int
		stderr string
	}{
		{"success", nil, 0, ""},
		{"help", flag.ErrHelp, 0, ""},
		{"usage, already printed", errUsage, 2, ""},
		{"usage with a reason", fmt.Errorf("%w: --max -1", errUsage), 2, "pinlist: usage: --max -1\n"},
		{"needs attention", &exitError{code: exitNeedsAttention, msg: "status needs attention: 1 dead letter"}, 3, "pinlist: status needs attention: 1 dead letter\n"},
		{"own code, nothing to say", &exitError{code: 4}, 4, ""},
		{"failure", errors.New("load AWS configuration: boom"), 1, "pinlist: load AWS configuration: boom\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr strings.Builder
			if got := exitCode(tc.err, &stderr); got != tc.code || stderr.String() != tc.stderr {
				t.Errorf("exitCode(%v) = %d, stderr %q; want %d, %q", tc.err, got, stderr.String(), tc.code, tc.stderr)
			}
		})
	}
}
