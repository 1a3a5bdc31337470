package pinterest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
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

func staticTokens(access string) Option {
	return WithTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: access}))
}

func TestNewClientRejects(t *testing.T) {
	tests := []struct {
		name string
		ad   string
		opts []Option
		want string
	}{
		{"ad account not digits", "abc", []Option{staticTokens("t")}, "not 1 to 18 digits"},
		{"ad account too long", strings.Repeat("1", 19), []Option{staticTokens("t")}, "not 1 to 18 digits"},
		{"no token source", testAdAccount, nil, "no token source"},
		{"base URL without host", testAdAccount, []Option{staticTokens("t"), WithBaseURL("/v5")}, "want http(s)://host/path"},
		{"base URL with credentials", testAdAccount, []Option{staticTokens("t"), WithBaseURL("https://u:secret@h/v5")}, "must not carry credentials"},
		{"write limit that blocks everything", testAdAccount, []Option{staticTokens("t"), WithWriteLimit(0, 1)}, "would block every write"},
		{"nil HTTP client", testAdAccount, []Option{staticTokens("t"), WithHTTPClient(nil)}, "nil HTTP client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClient(tt.ad, tt.opts...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewClient = %v, %v; want an error containing %q", c, err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q quotes the base URL's password", err)
			}
		})
	}
}

func TestRetryPolicyBackoff(t *testing.T) {
	p := RetryPolicy{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}.withDefaults()
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second}
	for i, w := range want {
		if got := p.backoff(i + 1); got != w {
			t.Errorf("backoff(%d) = %s, want %s", i+1, got, w)
		}
	}
	if got := p.backoff(1000); got != time.Second {
		t.Errorf("backoff(1000) = %s, want the cap", got)
	}
	if d := (RetryPolicy{}).withDefaults(); d != (RetryPolicy{MaxAttempts: 5, BaseDelay: 200 * time.Millisecond, MaxDelay: 20 * time.Second}) {
		t.Errorf("defaults = %+v", d)
	}
}

func TestFullJitterStaysInRange(t *testing.T) {
	for range 1000 {
		if d := fullJitter(time.Second); d < 0 || d > time.Second {
			t.Fatalf("fullJitter(1s) = %s", d)
		}
	}
	if d := fullJitter(0); d != 0 {
		t.Errorf("fullJitter(0) = %s", d)
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

	c, err := NewClient(testAdAccount, WithBaseURL(api.URL+"/v5"), staticTokens("pina.SECRET"))
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
	c, err := NewClient(testAdAccount, WithBaseURL(srv.URL+"/v5"), staticTokens("t"))
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
	c, err := NewClient(testAdAccount, WithBaseURL("http://127.0.0.1:1/v5"), staticTokens("t"))
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
	c, err := NewClient(testAdAccount, WithBaseURL("http://127.0.0.1:1/v5"), staticTokens("t"),
		WithWriteLimit(rate.Every(time.Hour), 1),
		WithSleep(func(context.Context, time.Duration) error { slept++; return nil }))
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

	c, err := NewClient(testAdAccount, WithBaseURL(srv.URL+"/v5"), staticTokens(access))
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
