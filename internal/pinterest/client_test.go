package pinterest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
	"golang.org/x/time/rate"
)

const testAdAccount = "549755885175"

// opt is one setting of a test's client.
type opt = func(*Options)

// newTestClient builds a client for testAdAccount that logs nowhere, plus
// opts.
func newTestClient(opts ...opt) (*Client, error) {
	o := Options{AdAccountID: testAdAccount, Logger: slog.New(slog.DiscardHandler)}
	for _, f := range opts {
		f(&o)
	}
	return New(o)
}

func staticTokens(access string) opt {
	return withTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: access}))
}

func withTokenSource(ts oauth2.TokenSource) opt { return func(o *Options) { o.TokenSource = ts } }
func withBaseURL(u string) opt                  { return func(o *Options) { o.BaseURL = u } }
func withHTTPClient(hc *http.Client) opt        { return func(o *Options) { o.HTTPClient = hc } }
func withWriteRate(r rate.Limit) opt            { return func(o *Options) { o.WriteRate = r } }
func withRetry(p RetryPolicy) opt               { return func(o *Options) { o.Retry = p } }
func withLogger(l *slog.Logger) opt             { return func(o *Options) { o.Logger = l } }
func withClock(now func() time.Time) opt        { return func(o *Options) { o.Clock = now } }
func withSleep(s func(context.Context, time.Duration) error) opt {
	return func(o *Options) { o.Sleep = s }
}

func TestNewRejects(t *testing.T) {
	tokens := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "t"})
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"ad account not digits", Options{AdAccountID: "abc", TokenSource: tokens}, "AdAccountID"},
		{"ad account too long", Options{AdAccountID: strings.Repeat("1", 19), TokenSource: tokens}, "not 1 to 18 digits"},
		{"no ad account", Options{TokenSource: tokens}, "AdAccountID"},
		{"no token source", Options{AdAccountID: testAdAccount}, "TokenSource"},
		{"base URL without host", Options{AdAccountID: testAdAccount, TokenSource: tokens, BaseURL: "/v5"}, "want http(s)://host/path"},
		{"base URL with credentials", Options{AdAccountID: testAdAccount, TokenSource: tokens, BaseURL: "https://u:secret@h/v5"}, "must not carry credentials"},
		{"negative write rate", Options{AdAccountID: testAdAccount, TokenSource: tokens, WriteRate: -1}, "WriteRate"},
		{"negative attempts", Options{AdAccountID: testAdAccount, TokenSource: tokens, Retry: RetryPolicy{MaxAttempts: -1}}, "Retry.MaxAttempts"},
		{"negative base delay", Options{AdAccountID: testAdAccount, TokenSource: tokens, Retry: RetryPolicy{BaseDelay: -time.Second}}, "Retry.BaseDelay"},
		{"negative max delay", Options{AdAccountID: testAdAccount, TokenSource: tokens, Retry: RetryPolicy{MaxDelay: -time.Second}}, "Retry.MaxDelay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, %v; want an error containing %q", c, err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q quotes the base URL's password", err)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	c, err := New(Options{AdAccountID: testAdAccount, TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "t"})})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.baseURL.String(); got != DefaultBaseURL {
		t.Errorf("base URL %s, want %s", got, DefaultBaseURL)
	}
	if c.writes == nil || c.writes.rate != float64(DefaultWriteRate) || DefaultWriteRate != rate.Limit(400.0/60) {
		t.Errorf("write pace %+v, want %v a second (400 a minute)", c.writes, DefaultWriteRate)
	}
	if c.retry != (RetryPolicy{MaxAttempts: 5, BaseDelay: 200 * time.Millisecond, MaxDelay: 20 * time.Second}) {
		t.Errorf("retry defaults = %+v", c.retry)
	}
	if c.logger != slog.Default() {
		t.Errorf("a nil Logger is not slog.Default()")
	}
	off, err := newTestClient(staticTokens("t"), withWriteRate(rate.Inf))
	if err != nil {
		t.Fatal(err)
	}
	if off.writes != nil {
		t.Errorf("rate.Inf still paces writes")
	}
}

// TestRedirectDropsAuthorization checks that a redirect to another host
// (here another port of 127.0.0.1, which net/http alone would trust) does
// not receive the bearer token, while a redirect within the API host does.
func TestRedirectDropsAuthorization(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]string{}
	record := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen[name] = r.Header.Get("Authorization")
			mu.Unlock()
			_, _ = w.Write([]byte(`{"id":"1","name":"n"}`))
		}
	}
	other := httptest.NewServer(record("other host"))
	defer other.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("/v5/ad_accounts/"+testAdAccount+"/customer_lists/1", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/elsewhere", http.StatusFound)
	})
	mux.HandleFunc("/v5/ad_accounts/"+testAdAccount+"/customer_lists/2", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/v5/moved", http.StatusFound)
	})
	mux.HandleFunc("/v5/moved", record("same host"))
	api := httptest.NewServer(mux)
	defer api.Close()

	c, err := newTestClient(withBaseURL(api.URL+"/v5"), staticTokens("pina.SECRET"))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"1", "2"} {
		if _, err := c.GetCustomerList(t.Context(), id); err != nil {
			t.Fatalf("get %s: %v", id, err)
		}
	}
	want := map[string]string{"other host": "", "same host": "Bearer pina.SECRET"}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("Authorization seen (-want +got):\n%s", diff)
	}
}

func TestResponseBodyCap(t *testing.T) {
	big := `{"id":"1","name":"` + strings.Repeat("x", maxBodyBytes) + `"}`
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v5/ad_accounts/{ad}/customer_lists/1", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(big))
	})
	mux.HandleFunc("GET /v5/ad_accounts/{ad}/customer_lists/2", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(big))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c, err := newTestClient(withBaseURL(srv.URL+"/v5"), staticTokens("t"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetCustomerList(t.Context(), "1"); !errors.Is(err, errBodyTooLarge) {
		t.Errorf("oversized success body: err = %v, want errBodyTooLarge", err)
	}
	_, err = c.GetCustomerList(t.Context(), "2")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest {
		t.Errorf("oversized error body: err = %v, want a 400 *APIError", err)
	}
}

func TestInputValidation(t *testing.T) {
	c, err := newTestClient(withBaseURL("http://127.0.0.1:1/v5"), staticTokens("t"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"create without name", func() error {
			_, err := c.CreateCustomerList(ctx, CustomerListCreate{Records: []string{"a"}})
			return err
		}, "empty name"},
		{"update without records", func() error {
			_, err := c.UpdateCustomerList(ctx, "1", OpRemove, nil)
			return err
		}, "no records"},
		{"record with a comma", func() error {
			_, err := c.UpdateCustomerList(ctx, "1", OpAdd, []string{"a,b"})
			return err
		}, "contains a comma"},
		{"empty record", func() error {
			_, err := c.UpdateCustomerList(ctx, "1", OpAdd, []string{"a", ""})
			return err
		}, "record 1 is empty"},
		{"unknown operation", func() error {
			_, err := c.UpdateCustomerList(ctx, "1", "UPSERT", []string{"a"})
			return err
		}, "neither ADD nor REMOVE"},
		{"list ID with a slash", func() error {
			_, err := c.GetCustomerList(ctx, "1/../2")
			return err
		}, "not 1 to 18 digits"},
		{"audience for a bad list ID", func() error {
			_, err := c.CreateAudience(ctx, AudienceCreate{Name: "n", CustomerListID: "x"})
			return err
		}, "not 1 to 18 digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if got := c.Stats().Calls; got != 0 {
		t.Errorf("invalid input sent %d requests", got)
	}
}

func TestWriteLimiterRespectsDeadline(t *testing.T) {
	slept := 0
	c, err := newTestClient(withBaseURL("http://127.0.0.1:1/v5"), staticTokens("t"),
		withWriteRate(rate.Every(time.Hour)),
		withSleep(func(context.Context, time.Duration) error { slept++; return nil }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := c.waitWriteSlot(ctx); err != nil {
		t.Fatalf("first write slot: %v", err)
	}
	err = c.waitWriteSlot(ctx)
	if !errors.Is(err, ErrDeadlineWouldPass) || !IsRetryable(err) {
		t.Errorf("second write slot within the minute: err = %v, want ErrDeadlineWouldPass", err)
	}
	if slept != 0 {
		t.Errorf("slept %d times, want none", slept)
	}
}

func TestCustomerListJSON(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want CustomerList
	}{
		{
			name: "integers",
			in:   `{"id":"643","ad_account_id":"1","name":"n","list_type":"EMAIL","status":"READY","num_batches":2,"num_uploaded_user_records":10,"num_removed_user_records":1,"created_time":1452208622,"updated_time":1452208623,"type":"customerlist","exceptions":{}}`,
			want: CustomerList{ID: "643", AdAccountID: "1", Name: "n", ListType: "EMAIL", Status: "READY", NumBatches: 2, NumUploadedUserRecords: 10, NumRemovedUserRecords: 1, CreatedTime: 1452208622, UpdatedTime: 1452208623},
		},
		{
			name: "numbers as floats and nulls",
			in:   `{"id":"7","num_batches":2.0,"num_uploaded_user_records":1e2,"num_removed_user_records":null,"created_time":1452208622.0}`,
			want: CustomerList{ID: "7", NumBatches: 2, NumUploadedUserRecords: 100, CreatedTime: 1452208622},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got CustomerList
			if err := json.Unmarshal([]byte(tt.in), &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decoded (-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{`{"num_batches":2.5}`, `{"num_batches":"x"}`, `{"num_batches":1e300}`, `{"id":5}`} {
		var l CustomerList
		if err := json.Unmarshal([]byte(bad), &l); err == nil {
			t.Errorf("decoding %s: want an error, got %+v", bad, l)
		}
	}
}

func TestAudienceJSON(t *testing.T) {
	var got Audience
	in := `{"id":"1","ad_account_id":"2","name":"a","description":null,"audience_type":"CUSTOMER_LIST","status":"TOO_SMALL","rule":{"customer_list_id":"643"},"size":null,"created_timestamp":1451431341,"type":"audience"}`
	if err := json.Unmarshal([]byte(in), &got); err != nil {
		t.Fatal(err)
	}
	want := Audience{ID: "1", AdAccountID: "2", Name: "a", AudienceType: "CUSTOMER_LIST", Status: "TOO_SMALL", Rule: AudienceRule{CustomerListID: "643"}, CreatedTimestamp: 1451431341}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
	if err := json.Unmarshal([]byte(`{"size":1200}`), &got); err != nil || got.Size == nil || *got.Size != 1200 {
		t.Errorf("size: %v, %v", got.Size, err)
	}
}

// FuzzCustomerListJSON: decoding whatever a server sends never panics.
func FuzzCustomerListJSON(f *testing.F) {
	f.Add(`{"id":"643","num_batches":2,"created_time":1452208622.0}`)
	f.Add(`{"num_batches":-1e19}`)
	f.Add(`{"items":[{"id":"1"}],"bookmark":null}`)
	f.Fuzz(func(t *testing.T, in string) {
		var l CustomerList
		_ = json.Unmarshal([]byte(in), &l)
		var a Audience
		_ = json.Unmarshal([]byte(in), &a)
		var p page[CustomerList]
		_ = json.Unmarshal([]byte(in), &p)
	})
}

// TestServerEchoedSecretsAreScrubbed: a server that quotes the credentials
// it was sent in its error message does not get them into error strings.
func TestServerEchoedSecretsAreScrubbed(t *testing.T) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		user, pass, _ := r.BasicAuth()
		msg := "you sent " + r.Header.Get("Authorization") + " and " + user + ":" + pass + " " + r.Form.Encode()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("x-pinterest-rid", r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]any{"code": 1, "message": msg})
	})
	srv := httptest.NewServer(echo)
	defer srv.Close()
	const access, refresh, secret, code = "pina_ECHOED_ACCESS", "pinr_ECHOED_REFRESH", "ECHOED_CLIENT_SECRET", "ECHOED_CODE"

	c, err := newTestClient(withBaseURL(srv.URL+"/v5"), staticTokens(access))
	if err != nil {
		t.Fatal(err)
	}
	_, apiErr := c.GetCustomerList(t.Context(), "1")
	o := NewOAuth(OAuthConfig{ClientID: "cid", ClientSecret: secret, BaseURL: srv.URL + "/v5"})
	_, refreshErr := o.Refresh(t.Context(), refresh)
	_, exchangeErr := o.Exchange(t.Context(), code)
	for _, err := range []error{apiErr, refreshErr, exchangeErr} {
		if err == nil || !strings.Contains(err.Error(), "you sent") {
			t.Fatalf("err = %v, want the echoing 400", err)
		}
		basic := base64.StdEncoding.EncodeToString([]byte("cid:" + secret))
		for _, s := range []string{"ECHOED_ACCESS", "ECHOED_REFRESH", "ECHOED_CLIENT_SECRET", "ECHOED_CODE", basic} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("error shows %s: %v", s, err)
			}
		}
	}
}
