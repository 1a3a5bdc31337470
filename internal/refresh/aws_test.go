package refresh

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
	"golang.org/x/oauth2"

	"github.com/pinlist/pinlist/internal/awstest"
	"github.com/pinlist/pinlist/internal/pinterest"
	"github.com/pinlist/pinlist/internal/pinterestsim"
	"github.com/pinlist/pinlist/internal/retry"
	"github.com/pinlist/pinlist/internal/token"
)

var moto *awstest.Moto

func TestMain(m *testing.M) { os.Exit(awstest.Main(m, &moto)) }

const (
	simAdAccount = "549755885175"
	simClientID  = "1484012"
	simSecret    = "sim-app-secret-value"
)

// awsStack is the refresh function's real surroundings: a Pinterest token
// secret in Secrets Manager, an SNS alert topic (read back through a
// subscribed SQS queue) and the Pinterest simulator's token endpoint.
type awsStack struct {
	sim       *pinterestsim.Server
	apiURL    string
	secretARN string
	topicARN  string
	alertsURL string
	r         *Refresher
}

func newAWSStack(t *testing.T, tok func(access, refresh string) token.Token) *awsStack {
	t.Helper()
	return newAWSStackWith(t, tok, nil)
}

// faultySM is the Secrets Manager client with PutSecretValue failing with
// err before it reaches moto; it counts the calls.
type faultySM struct {
	*secretsmanager.Client
	err   error
	calls int
}

func (f *faultySM) PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	return f.Client.PutSecretValue(ctx, in, opts...)
}

// newAWSStackWith is newAWSStack with the token store's client swapped for
// faulty when it is not nil.
func newAWSStackWith(t *testing.T, tok func(access, refresh string) token.Token, faulty *faultySM) *awsStack {
	t.Helper()
	sim, err := pinterestsim.New(pinterestsim.Options{
		AdAccounts: []string{simAdAccount},
		Clients:    map[string]string{simClientID: simSecret},
		Clock:      func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	s := &awsStack{sim: sim, apiURL: srv.URL + "/v5"}

	access, refresh := sim.IssueToken(simClientID, []string{"ads:read", "ads:write"})
	value, err := json.Marshal(tok(access, refresh))
	if err != nil {
		t.Fatal(err)
	}
	s.secretARN = moto.CreateSecret(t, "pinterest-token", string(value))
	s.topicARN, s.alertsURL = moto.CreateTopicWithQueue(t, "alerts")

	var store *token.SecretsManagerStore
	if faulty != nil {
		faulty.Client = moto.SecretsManager()
		store = token.NewSecretsManagerStore(faulty, s.secretARN)
	} else {
		store = token.NewSecretsManagerStore(moto.SecretsManager(), s.secretARN)
	}
	store.Retry.Sleep = func(context.Context, time.Duration) error { return nil }
	s.r, err = New(Options{
		Store: store,
		NewRefresher: func(t token.Token) TokenRefresher {
			return pinterest.NewOAuth(pinterest.OAuthConfig{ClientID: t.ClientID, ClientSecret: t.ClientSecret,
				BaseURL: s.apiURL, Now: func() time.Time { return now }})
		},
		Alerts:           NewSNSAlerter(moto.SNS(), s.topicARN),
		Connection:       "acme-prod",
		ReconnectCommand: "pinlist connect --store secretsmanager:" + s.secretARN,
		Now:              func() time.Time { return now },
		Retry:            retry.Policy{Sleep: func(context.Context, time.Duration) error { return nil }},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tokenLeft(accessLeft, refreshLeft time.Duration) func(access, refresh string) token.Token {
	return func(access, refresh string) token.Token {
		return token.Token{
			ClientID: simClientID, ClientSecret: simSecret,
			AccessToken: access, RefreshToken: refresh,
			AccessTokenExpiresAt:  now.Add(accessLeft),
			RefreshTokenExpiresAt: now.Add(refreshLeft),
			Scope:                 "ads:read,ads:write", AdAccountID: simAdAccount,
		}
	}
}

func (s *awsStack) secret(t *testing.T, stage string) token.Token {
	t.Helper()
	out, err := moto.SecretsManager().GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{
		SecretId: aws.String(s.secretARN), VersionStage: aws.String(stage)})
	if err != nil {
		t.Fatalf("get secret %s: %v", stage, err)
	}
	var tok token.Token
	if err := json.Unmarshal([]byte(aws.ToString(out.SecretString)), &tok); err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestRefreshAgainstSecretsManagerAndTheSimulator(t *testing.T) {
	s := newAWSStack(t, tokenLeft(5*24*time.Hour, 50*24*time.Hour))
	before := s.secret(t, "AWSCURRENT")

	res, err := s.r.Run(t.Context(), false)
	if err != nil || !res.Refreshed {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	after := s.secret(t, "AWSCURRENT")
	if after.AccessToken == before.AccessToken || after.RefreshToken == before.RefreshToken {
		t.Fatal("the secret does not hold a new token pair")
	}
	if !after.AccessTokenExpiresAt.Equal(now.Add(30*24*time.Hour)) || after.ClientSecret != simSecret {
		t.Errorf("stored token: expiry %v, app credentials kept %v", after.AccessTokenExpiresAt, after.ClientSecret == simSecret)
	}
	if prev := s.secret(t, "AWSPREVIOUS"); prev.RefreshToken != before.RefreshToken {
		t.Error("AWSPREVIOUS does not keep the old version")
	}
	// The stored access token works against Pinterest, the old refresh token does not.
	client, err := pinterest.New(pinterest.Options{AdAccountID: simAdAccount, BaseURL: s.apiURL,
		TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: after.AccessToken})})
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range client.CustomerLists(t.Context()) {
		if err != nil {
			t.Fatalf("list customer lists with the refreshed token: %v", err)
		}
	}
	_, err = pinterest.NewOAuth(pinterest.OAuthConfig{ClientID: simClientID, ClientSecret: simSecret, BaseURL: s.apiURL}).
		Refresh(t.Context(), before.RefreshToken)
	if !errors.Is(err, pinterest.ErrReconnectNeeded) {
		t.Errorf("old refresh token after rotation: %v, want invalid grant", err)
	}
	if n := moto.ReceiveNotifications(t, s.alertsURL); len(n) != 0 {
		t.Errorf("a healthy refresh alerted: %+v", n)
	}
}

// TestStoreWriteIsRetriedAtOneLayer: the refresher and the Secrets Manager
// store together try a refused write once and a throttled one exactly the
// store's SavePolicy.Attempts times, never attempts × attempts.
func TestStoreWriteIsRetriedAtOneLayer(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantCalls int
	}{
		{"access denied is tried once", &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not allowed", Fault: smithy.FaultClient}, 1},
		{"throttling is retried by the store only", &smithy.GenericAPIError{Code: "ThrottlingException", Message: "rate exceeded", Fault: smithy.FaultClient}, token.SavePolicy.Attempts},
		{"server fault is retried by the store only", &smithy.GenericAPIError{Code: "InternalServiceError", Message: "oops", Fault: smithy.FaultServer}, token.SavePolicy.Attempts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			faulty := &faultySM{err: tt.err}
			s := newAWSStackWith(t, tokenLeft(5*24*time.Hour, 50*24*time.Hour), faulty)
			before := s.secret(t, "AWSCURRENT")
			_, err := s.r.Run(t.Context(), false)
			if err == nil || !strings.Contains(err.Error(), "store the refreshed token") {
				t.Fatalf("Run error = %v, want a failed store write", err)
			}
			if faulty.calls != tt.wantCalls {
				t.Errorf("PutSecretValue called %d times, want %d", faulty.calls, tt.wantCalls)
			}
			if n := s.sim.Calls()[pinterestsim.RouteOAuthToken]; n != 1 {
				t.Errorf("token endpoint called %d times, want 1", n)
			}
			if after := s.secret(t, "AWSCURRENT"); after.RefreshToken != before.RefreshToken {
				t.Error("the secret changed although every write failed")
			}
		})
	}
}

func TestNotDueMakesNoTokenCall(t *testing.T) {
	s := newAWSStack(t, tokenLeft(20*24*time.Hour, 50*24*time.Hour))
	before := s.secret(t, "AWSCURRENT")
	res, err := s.r.Run(t.Context(), false)
	if err != nil || res.Refreshed {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	if n := s.sim.Calls()[pinterestsim.RouteOAuthToken]; n != 0 {
		t.Errorf("token endpoint called %d times for a token not due", n)
	}
	if after := s.secret(t, "AWSCURRENT"); after.AccessToken != before.AccessToken {
		t.Error("the secret changed")
	}
}

func TestInvalidGrantAlertsAndLeavesTheSecretUntouched(t *testing.T) {
	s := newAWSStack(t, func(access, _ string) token.Token {
		return tokenLeft(time.Hour, 50*24*time.Hour)(access, "pinr.revoked-or-unknown")
	})
	versions := func() int {
		out, err := moto.SecretsManager().ListSecretVersionIds(t.Context(), &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(s.secretARN)})
		if err != nil {
			t.Fatal(err)
		}
		return len(out.Versions)
	}
	before := versions()

	_, err := s.r.Run(t.Context(), false)
	if !errors.Is(err, ErrReconnectNeeded) {
		t.Fatalf("err = %v, want ErrReconnectNeeded", err)
	}
	if versions() != before || s.secret(t, "AWSCURRENT").RefreshToken != "pinr.revoked-or-unknown" {
		t.Error("the secret was written after an invalid grant")
	}
	n := moto.ReceiveNotifications(t, s.alertsURL)
	if len(n) != 1 {
		t.Fatalf("notifications = %d, want exactly 1", len(n))
	}
	if !strings.Contains(n[0].Message, "pinlist connect --store secretsmanager:"+s.secretARN) ||
		!strings.Contains(n[0].Message, "acme-prod") || !strings.Contains(n[0].Subject, "acme-prod") {
		t.Errorf("alert lacks the connection or the reconnect command: %+v", n[0])
	}
	if strings.Contains(n[0].Message, simSecret) || strings.Contains(n[0].Message, "pinr.") {
		t.Error("the alert carries a secret")
	}
}

func TestRefreshTokenNearExpiryPublishesOneAlert(t *testing.T) {
	s := newAWSStack(t, tokenLeft(20*24*time.Hour, 5*24*time.Hour))
	if _, err := s.r.Run(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	n := moto.ReceiveNotifications(t, s.alertsURL)
	if len(n) != 1 || !strings.Contains(n[0].Message, "expires at") || !strings.Contains(n[0].Message, "pinlist connect") {
		t.Fatalf("notifications = %+v, want one near-expiry alert with the reconnect command", n)
	}
}

func TestRefusedAccessTokenIsRefreshedBeforeItsExpiry(t *testing.T) {
	s := newAWSStack(t, tokenLeft(20*24*time.Hour, 50*24*time.Hour))
	s.r.o.Probe = PinterestProbe(s.apiURL, "", nil)

	// A token Pinterest still accepts is left alone: one probe, no refresh.
	res, err := s.r.Run(t.Context(), false)
	if err != nil || res.Refreshed || res.Refused {
		t.Fatalf("healthy token: Run = %+v, %v; want neither refreshed nor refused", res, err)
	}
	if n := s.sim.Calls()[pinterestsim.RouteOAuthToken]; n != 0 {
		t.Fatalf("token endpoint called %d times for a healthy token", n)
	}

	// Pinterest expires every access token, long before the stored expiry.
	s.sim.ExpireAccessTokens()
	before := s.secret(t, "AWSCURRENT")
	res, err = s.r.Run(t.Context(), false)
	if err != nil || !res.Refreshed || !res.Refused {
		t.Fatalf("refused token: Run = %+v, %v; want refreshed because refused", res, err)
	}
	after := s.secret(t, "AWSCURRENT")
	if after.AccessToken == before.AccessToken {
		t.Fatal("the secret still holds the refused access token")
	}
	// The new token works.
	if err := PinterestProbe(s.apiURL, "", nil)(t.Context(), after); err != nil {
		t.Errorf("the refreshed token is refused too: %v", err)
	}
}

func TestProbeFailureOtherThanRefusalChangesNothing(t *testing.T) {
	s := newAWSStack(t, tokenLeft(20*24*time.Hour, 50*24*time.Hour))
	s.r.o.Probe = PinterestProbe(s.apiURL, "", nil)
	s.sim.SetFault(pinterestsim.RouteCustomerListsList, pinterestsim.Fault{FailNext: 1, FailStatus: 503})
	res, err := s.r.Run(t.Context(), false)
	if err != nil || res.Refreshed || res.Refused {
		t.Fatalf("Run = %+v, %v; a 503 from the probe must not refresh", res, err)
	}
}
