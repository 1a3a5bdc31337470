package pinterest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
	"golang.org/x/time/rate"

	"github.com/pinlist/pinlist/internal/fake"
	"github.com/pinlist/pinlist/internal/pinterestsim"
)

const (
	testClientID     = "cid"
	testClientSecret = "sim-client-secret"
	testRedirectURL  = "http://127.0.0.1:1/oauth/callback"
)

// fakeClock is a clock the test moves by hand.
type fakeClock = fake.Clock

// sleepRecorder stands in for time.Sleep: it records every wait and returns
// at once (or with ctx.Err() when ctx has ended).
type sleepRecorder struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *sleepRecorder) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleepRecorder) Waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.waits)
}

// simEnv is a simulator on httptest with a token for it.
type simEnv struct {
	sim    *pinterestsim.Server
	srv    *httptest.Server
	clock  *fakeClock
	access string
	sleeps *sleepRecorder
}

func newSimEnv(t testing.TB) *simEnv {
	t.Helper()
	clk := fake.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	sim, err := pinterestsim.New(pinterestsim.Options{
		AdAccounts: []string{testAdAccount},
		Clients:    map[string]string{testClientID: testClientSecret},
		Clock:      clk.Now,
		Seed:       1,
	})
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	access, _ := sim.IssueToken(testClientID, []string{"ads:read", "ads:write"})
	return &simEnv{sim: sim, srv: srv, clock: clk, access: access, sleeps: &sleepRecorder{}}
}

func (e *simEnv) baseURL() string { return e.srv.URL + "/v5" }

// client builds a client against the simulator: no write limit, sleeps
// recorded instead of taken, plus opts.
func (e *simEnv) client(t testing.TB, opts ...opt) *Client {
	t.Helper()
	all := append([]opt{
		withBaseURL(e.baseURL()),
		staticTokens(e.access),
		withWriteRate(rate.Inf),
		withSleep(e.sleeps.Sleep),
	}, opts...)
	c, err := newTestClient(all...)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	return c
}

func (e *simEnv) oauth() *OAuth {
	return NewOAuth(OAuthConfig{
		ClientID:     testClientID,
		ClientSecret: testClientSecret,
		RedirectURL:  testRedirectURL,
		BaseURL:      e.baseURL(),
		AuthURL:      e.srv.URL + "/oauth/",
		Now:          e.clock.Now,
	})
}

// hashes returns n distinct SHA-256 hex records, as pinlist sends them.
func hashes(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		sum := sha256.Sum256(fmt.Appendf(nil, "%s-%d@example.com", prefix, i))
		out[i] = hex.EncodeToString(sum[:])
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestCustomerListLifecycle(t *testing.T) {
	env := newSimEnv(t)
	c := env.client(t)
	ctx := t.Context()
	recs := hashes("a", 5)

	created, err := c.CreateCustomerList(ctx, CustomerListCreate{Name: "ups:seg-1 EMAIL", ListType: "EMAIL", Records: recs[:3]})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if created.ID == "" || created.Name != "ups:seg-1 EMAIL" || created.ListType != "EMAIL" || created.AdAccountID != testAdAccount || created.NumBatches != 1 || created.NumUploadedUserRecords != 3 {
		t.Errorf("created = %+v", created)
	}
	if got := env.sim.Records(testAdAccount, created.ID); !cmp.Equal(got, sorted(recs[:3])) {
		t.Errorf("members after create = %v", got)
	}

	got, err := c.GetCustomerList(ctx, created.ID)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if diff := cmp.Diff(created, got, cmpIgnore(".UpdatedTime", ".ListType")); diff != "" {
		t.Errorf("get (-created +got):\n%s", diff)
	}

	added, err := c.UpdateCustomerList(ctx, created.ID, OpAdd, recs[2:])
	if err != nil {
		t.Fatalf("add: %v", err)
	}
	if added.NumBatches != 2 || added.NumUploadedUserRecords != 6 {
		t.Errorf("after add: batches %d, uploaded %d; want 2, 6", added.NumBatches, added.NumUploadedUserRecords)
	}
	removed, err := c.UpdateCustomerList(ctx, created.ID, OpRemove, []string{recs[0], hashes("never", 1)[0]})
	if err != nil {
		t.Fatalf("remove: %v", err)
	}
	if removed.NumBatches != 3 || removed.NumRemovedUserRecords != 2 {
		t.Errorf("after remove: batches %d, removed %d; want 3, 2", removed.NumBatches, removed.NumRemovedUserRecords)
	}
	if got := env.sim.Records(testAdAccount, created.ID); !cmp.Equal(got, sorted(recs[1:])) {
		t.Errorf("members = %v, want %v", got, sorted(recs[1:]))
	}

	found, err := c.FindCustomerList(ctx, "ups:seg-1 EMAIL")
	if err != nil || found == nil || found.ID != created.ID {
		t.Errorf("find existing = %+v, %v; want ID %s", found, err, created.ID)
	}
	missing, err := c.FindCustomerList(ctx, "ups:seg-2 EMAIL")
	if missing != nil || err != nil {
		t.Errorf("find missing = %+v, %v; want nil, nil", missing, err)
	}

	_, err = c.GetCustomerList(ctx, "999999")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.RequestID == "" {
		t.Errorf("get unknown list: %v; want a 404 *APIError with a request ID", err)
	}
	if s := c.Stats(); s.Errors != 1 || s.Retries != 0 {
		t.Errorf("stats = %+v, want 1 error and no retries", s)
	}
}

// cmpIgnore ignores struct fields by name (".Field"): ListType because
// Pinterest's replies do not carry it, times because they move.
func cmpIgnore(fields ...string) cmp.Option {
	return cmp.FilterPath(func(p cmp.Path) bool {
		return slices.Contains(fields, p.Last().String())
	}, cmp.Ignore())
}

func TestAudiences(t *testing.T) {
	env := newSimEnv(t)
	c := env.client(t)
	ctx := t.Context()
	list, err := c.CreateCustomerList(ctx, CustomerListCreate{Name: "l", ListType: "MAID", Records: hashes("m", 2)})
	if err != nil {
		t.Fatal(err)
	}
	aud, err := c.CreateAudience(ctx, AudienceCreate{Name: "Audience-l", Description: "managed by pinlist", CustomerListID: list.ID})
	if err != nil {
		t.Fatalf("create audience: %v", err)
	}
	if aud.ID == "" || aud.AudienceType != "CUSTOMER_LIST" || aud.Rule.CustomerListID != list.ID || aud.Name != "Audience-l" || aud.Description != "managed by pinlist" {
		t.Errorf("audience = %+v", aud)
	}
	var all []*Audience
	for a, err := range c.Audiences(ctx) {
		if err != nil {
			t.Fatalf("list audiences: %v", err)
		}
		all = append(all, a)
	}
	if len(all) != 1 || all[0].ID != aud.ID {
		t.Errorf("audiences = %+v, want just %s", all, aud.ID)
	}
	found, err := c.FindAudienceForList(ctx, list.ID)
	if err != nil || found == nil || found.ID != aud.ID {
		t.Errorf("find audience for list = %+v, %v", found, err)
	}
	if none, err := c.FindAudienceForList(ctx, "12345"); none != nil || err != nil {
		t.Errorf("find audience for another list = %+v, %v; want nil, nil", none, err)
	}
}

// TestPointAudience: PointAudience points an audience at another customer
// list (the simulator validates the PATCH against the API description),
// retries a 503 (sending it again is harmless), returns a refusal as a 400
// *APIError without retrying it, and checks IDs before any call.
func TestPointAudience(t *testing.T) {
	env := newSimEnv(t)
	c := env.client(t)
	ctx := t.Context()
	old, err := c.CreateCustomerList(ctx, CustomerListCreate{Name: "l", ListType: "EMAIL", Records: hashes("o", 2)})
	if err != nil {
		t.Fatal(err)
	}
	repl, err := c.CreateCustomerList(ctx, CustomerListCreate{Name: "l again", ListType: "EMAIL", Records: hashes("r", 3)})
	if err != nil {
		t.Fatal(err)
	}
	aud, err := c.CreateAudience(ctx, AudienceCreate{Name: "Audience-l", CustomerListID: old.ID})
	if err != nil {
		t.Fatal(err)
	}
	target := func() string {
		t.Helper()
		got, err := c.FindAudienceForList(ctx, repl.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got != nil {
			return got.ID
		}
		return ""
	}

	env.sim.SetRefuseAudienceRuleChanges(true)
	_, err = c.PointAudience(ctx, aud.ID, repl.ID)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || IsRetryable(err) || !strings.Contains(err.Error(), aud.ID) {
		t.Fatalf("refused: %v, want a 400 *APIError naming the audience", err)
	}
	if calls := env.sim.Calls()[pinterestsim.RouteAudiencesUpdate]; calls != 1 || target() != "" {
		t.Fatalf("after the refusal: %d calls, audience of the new list %q; want 1 call, none", calls, target())
	}

	env.sim.SetRefuseAudienceRuleChanges(false)
	env.sim.SetFault(pinterestsim.RouteAudiencesUpdate, pinterestsim.Fault{FailNext: 1, FailStatus: 503})
	got, err := c.PointAudience(ctx, aud.ID, repl.ID)
	if err != nil {
		t.Fatalf("point audience: %v", err)
	}
	if got.ID != aud.ID || got.Rule.CustomerListID != repl.ID || got.Name != "Audience-l" || got.Size == nil || *got.Size != 3 {
		t.Errorf("pointed audience = %+v, want %s targeting %s (3 members) under its name", got, aud.ID, repl.ID)
	}
	if calls := env.sim.Calls()[pinterestsim.RouteAudiencesUpdate]; calls != 3 || target() != aud.ID {
		t.Errorf("after the retry: %d calls, audience of the new list %q; want 3 calls, %s", calls, target(), aud.ID)
	}
	if again, err := c.PointAudience(ctx, aud.ID, repl.ID); err != nil || again.Rule.CustomerListID != repl.ID {
		t.Errorf("pointing it again = %+v, %v; want the same rule", again, err)
	}

	for _, ids := range [][2]string{{"x1", repl.ID}, {aud.ID, ""}, {aud.ID, "1234567890123456789"}} {
		if _, err := c.PointAudience(ctx, ids[0], ids[1]); err == nil {
			t.Errorf("PointAudience(%q, %q): no error", ids[0], ids[1])
		}
	}
	if calls := env.sim.Calls()[pinterestsim.RouteAudiencesUpdate]; calls != 4 {
		t.Errorf("%d audience updates reached the simulator, want 4 (bad IDs send nothing)", calls)
	}
}

func TestPaginationAcross600Lists(t *testing.T) {
	env := newSimEnv(t)
	c := env.client(t)
	ctx := t.Context()
	want := map[string]bool{}
	for i := range 600 {
		l, err := c.CreateCustomerList(ctx, CustomerListCreate{Name: fmt.Sprintf("list-%03d", i), ListType: "EMAIL", Records: hashes("p", 1)})
		if err != nil {
			t.Fatalf("create list %d: %v", i, err)
		}
		want[l.ID] = true
	}
	got := map[string]bool{}
	for l, err := range c.CustomerLists(ctx) {
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		if got[l.ID] {
			t.Errorf("list %s returned twice", l.ID)
		}
		got[l.ID] = true
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("listed IDs (-created +listed):\n%s", diff)
	}
	if n := env.sim.Calls()[pinterestsim.RouteCustomerListsList]; n != 3 {
		t.Errorf("list calls = %d, want 3 pages of 250", n)
	}

	// The last list is found on the third page; an early stop fetches no more.
	if l, err := c.FindCustomerList(ctx, "list-599"); err != nil || l == nil {
		t.Fatalf("find list-599 = %+v, %v", l, err)
	}
	before := env.sim.Calls()[pinterestsim.RouteCustomerListsList]
	for range c.CustomerLists(ctx) {
		break
	}
	if n := env.sim.Calls()[pinterestsim.RouteCustomerListsList] - before; n != 1 {
		t.Errorf("breaking after the first item fetched %d pages, want 1", n)
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name        string
		fault       pinterestsim.Fault
		wantCalls   int
		wantLimited int64
		checkWaits  func(t *testing.T, waits []time.Duration)
	}{
		{
			name:        "429 with Retry-After then success",
			fault:       pinterestsim.Fault{FailNext: 1, FailStatus: 429, RetryAfter: 3 * time.Second},
			wantCalls:   2,
			wantLimited: 1,
			checkWaits: func(t *testing.T, waits []time.Duration) {
				if !cmp.Equal(waits, []time.Duration{3 * time.Second}) {
					t.Errorf("waits = %v, want exactly the Retry-After [3s]", waits)
				}
			},
		},
		{
			name:      "503 twice then success",
			fault:     pinterestsim.Fault{FailNext: 2, FailStatus: 503},
			wantCalls: 3,
			checkWaits: func(t *testing.T, waits []time.Duration) {
				if len(waits) != 2 || waits[0] > 200*time.Millisecond || waits[1] > 400*time.Millisecond || waits[0] < 0 || waits[1] < 0 {
					t.Errorf("waits = %v, want 2 full-jitter waits within [0, 200ms] and [0, 400ms]", waits)
				}
			},
		},
		{
			name:      "500 twice then success",
			fault:     pinterestsim.Fault{FailNext: 2, FailStatus: 500},
			wantCalls: 3,
			checkWaits: func(t *testing.T, waits []time.Duration) {
				if len(waits) != 2 {
					t.Errorf("waits = %v, want 2", waits)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newSimEnv(t)
			c := env.client(t)
			ctx := t.Context()
			list, err := c.CreateCustomerList(ctx, CustomerListCreate{Name: "r", ListType: "EMAIL", Records: hashes("r", 1)})
			if err != nil {
				t.Fatal(err)
			}
			env.sim.SetFault(pinterestsim.RouteCustomerListsUpdate, tt.fault)
			add := hashes("add", 3)
			got, err := c.UpdateCustomerList(ctx, list.ID, OpAdd, add)
			if err != nil {
				t.Fatalf("update: %v", err)
			}
			if got.NumBatches != 2 {
				t.Errorf("batches = %d, want 2 (only the successful attempt counts)", got.NumBatches)
			}
			if members := env.sim.Records(testAdAccount, list.ID); len(members) != 4 {
				t.Errorf("members = %d, want 4", len(members))
			}
			if n := env.sim.Calls()[pinterestsim.RouteCustomerListsUpdate]; n != tt.wantCalls {
				t.Errorf("update calls = %d, want %d", n, tt.wantCalls)
			}
			want := Stats{Calls: int64(tt.wantCalls) + 1, Retries: int64(tt.wantCalls) - 1, RateLimited: tt.wantLimited}
			if s := c.Stats(); s != want {
				t.Errorf("stats = %+v, want %+v", s, want)
			}
			tt.checkWaits(t, env.sleeps.Waits())
		})
	}
}

func TestRetriesGiveUp(t *testing.T) {
	env := newSimEnv(t)
	c := env.client(t, withRetry(RetryPolicy{MaxAttempts: 3}))
	env.sim.SetFault(pinterestsim.RouteCustomerListsGet, pinterestsim.Fault{FailNext: 10, FailStatus: 503})
	_, err := c.GetCustomerList(t.Context(), "1")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 503 || !IsRetryable(err) {
		t.Fatalf("err = %v, want a retryable 503 *APIError", err)
	}
	if n := env.sim.Calls()[pinterestsim.RouteCustomerListsGet]; n != 3 {
		t.Errorf("calls = %d, want 3 attempts", n)
	}
	if s := c.Stats(); s.Errors != 1 || s.Retries != 2 {
		t.Errorf("stats = %+v", s)
	}
}

func TestNoRetryOnClientErrors(t *testing.T) {
	env := newSimEnv(t)
	c := env.client(t)
	env.sim.SetFault(pinterestsim.RouteCustomerListsGet, pinterestsim.Fault{FailNext: 1, FailStatus: 400})
	_, err := c.GetCustomerList(t.Context(), "1")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || IsRetryable(err) {
		t.Fatalf("err = %v, want a non-retryable 400", err)
	}
	if n := env.sim.Calls()[pinterestsim.RouteCustomerListsGet]; n != 1 {
		t.Errorf("calls = %d, want 1", n)
	}
}

func TestDeadlineShorterThanBackoff(t *testing.T) {
	tests := []struct {
		name  string
		fault pinterestsim.Fault
		opts  []opt
	}{
		{
			name:  "Retry-After beyond the deadline",
			fault: pinterestsim.Fault{FailNext: 1, FailStatus: 429, RetryAfter: time.Minute},
		},
		{
			name:  "backoff beyond the deadline",
			fault: pinterestsim.Fault{FailNext: 1, FailStatus: 503},
			opts:  []opt{withRetry(RetryPolicy{BaseDelay: time.Minute, MaxDelay: time.Hour})},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newSimEnv(t)
			c := env.client(t, tt.opts...)
			c.jitter = func(d time.Duration) time.Duration { return d } // the worst case, deterministically
			list, err := c.CreateCustomerList(t.Context(), CustomerListCreate{Name: "d", Records: hashes("d", 1)})
			if err != nil {
				t.Fatal(err)
			}
			env.sim.SetFault(pinterestsim.RouteCustomerListsUpdate, tt.fault)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			_, err = c.UpdateCustomerList(ctx, list.ID, OpRemove, hashes("d", 1))
			if !errors.Is(err, ErrDeadlineWouldPass) || !IsRetryable(err) {
				t.Fatalf("err = %v, want a retryable ErrDeadlineWouldPass", err)
			}
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.StatusCode != tt.fault.FailStatus {
				t.Errorf("err = %v, want the last reply (%d) wrapped", err, tt.fault.FailStatus)
			}
			if waits := env.sleeps.Waits(); len(waits) != 0 {
				t.Errorf("slept %v; want no sleep at all", waits)
			}
			if n := env.sim.Calls()[pinterestsim.RouteCustomerListsUpdate]; n != 1 {
				t.Errorf("update calls = %d, want 1", n)
			}
			if ctx.Err() != nil {
				t.Errorf("the call returned only after the context ended")
			}
		})
	}
}

func TestSleepInterruptedByCancel(t *testing.T) {
	env := newSimEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	c := env.client(t, withSleep(func(context.Context, time.Duration) error {
		cancel()
		return context.Canceled
	}))
	env.sim.SetFault(pinterestsim.RouteCustomerListsGet, pinterestsim.Fault{FailNext: 5, FailStatus: 500})
	_, err := c.GetCustomerList(ctx, "1")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := env.sim.Calls()[pinterestsim.RouteCustomerListsGet]; n != 1 {
		t.Errorf("calls = %d, want 1", n)
	}
}

// lossyTransport delivers requests but, for the first lose of them matching
// pred, throws the reply away and reports a reset connection: the request
// reached Pinterest, the client cannot know it.
type lossyTransport struct {
	mu   sync.Mutex
	lose int
	pred func(*http.Request) bool
}

func (l *lossyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lose > 0 && l.pred(r) {
		l.lose--
		resp.Body.Close()
		return nil, errors.New("read: connection reset by peer (test)")
	}
	return resp, nil
}

func isCreate(kind string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/"+kind)
	}
}

func TestCreateNeverDuplicates(t *testing.T) {
	t.Run("customer list: reply lost after the list was made", func(t *testing.T) {
		env := newSimEnv(t)
		c := env.client(t, withHTTPClient(&http.Client{Transport: &lossyTransport{lose: 1, pred: isCreate("customer_lists")}}))
		got, err := c.CreateCustomerList(t.Context(), CustomerListCreate{Name: "once", ListType: "EMAIL", Records: hashes("o", 2)})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		lists := env.sim.State().AdAccounts[testAdAccount].CustomerLists
		if len(lists) != 1 || lists[0].ID != got.ID {
			t.Errorf("lists = %+v, want one with ID %s", lists, got.ID)
		}
		if n := env.sim.Calls()[pinterestsim.RouteCustomerListsCreate]; n != 1 {
			t.Errorf("create calls = %d, want 1", n)
		}
	})
	t.Run("customer list: 503 before anything was made", func(t *testing.T) {
		env := newSimEnv(t)
		c := env.client(t)
		env.sim.SetFault(pinterestsim.RouteCustomerListsCreate, pinterestsim.Fault{FailNext: 1, FailStatus: 503})
		if _, err := c.CreateCustomerList(t.Context(), CustomerListCreate{Name: "once", Records: hashes("o", 2)}); err != nil {
			t.Fatalf("create: %v", err)
		}
		calls := env.sim.Calls()
		if calls[pinterestsim.RouteCustomerListsCreate] != 2 || calls[pinterestsim.RouteCustomerListsList] != 1 {
			t.Errorf("calls = %v, want 2 creates around 1 lookup", calls)
		}
		if n := len(env.sim.State().AdAccounts[testAdAccount].CustomerLists); n != 1 {
			t.Errorf("%d lists, want 1", n)
		}
	})
	t.Run("customer list: 429 is retried without a lookup", func(t *testing.T) {
		env := newSimEnv(t)
		c := env.client(t)
		env.sim.SetFault(pinterestsim.RouteCustomerListsCreate, pinterestsim.Fault{FailNext: 1, FailStatus: 429, RetryAfter: time.Second})
		if _, err := c.CreateCustomerList(t.Context(), CustomerListCreate{Name: "once", Records: hashes("o", 2)}); err != nil {
			t.Fatalf("create: %v", err)
		}
		if calls := env.sim.Calls(); calls[pinterestsim.RouteCustomerListsList] != 0 {
			t.Errorf("calls = %v, want no lookup", calls)
		}
	})
	t.Run("audience: reply lost after the audience was made", func(t *testing.T) {
		env := newSimEnv(t)
		c := env.client(t, withHTTPClient(&http.Client{Transport: &lossyTransport{lose: 1, pred: isCreate("audiences")}}))
		list, err := c.CreateCustomerList(t.Context(), CustomerListCreate{Name: "l", Records: hashes("o", 2)})
		if err != nil {
			t.Fatal(err)
		}
		aud, err := c.CreateAudience(t.Context(), AudienceCreate{Name: "a", CustomerListID: list.ID})
		if err != nil {
			t.Fatalf("create audience: %v", err)
		}
		auds := env.sim.State().AdAccounts[testAdAccount].Audiences
		if len(auds) != 1 || auds[0].ID != aud.ID {
			t.Errorf("audiences = %+v, want one with ID %s", auds, aud.ID)
		}
	})
}

func TestUnauthorized(t *testing.T) {
	env := newSimEnv(t)
	tests := []struct {
		name   string
		tokens oauth2.TokenSource
		before func()
	}{
		{name: "unknown token", tokens: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "pina_unknown"})},
		{name: "expired token", tokens: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: env.access}), before: env.sim.ExpireAccessTokens},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.before != nil {
				tt.before()
			}
			c := env.client(t, withTokenSource(tt.tokens))
			_, err := c.GetCustomerList(t.Context(), "1")
			var unauth *UnauthorizedError
			if !errors.As(err, &unauth) || unauth.StatusCode != http.StatusUnauthorized || IsRetryable(err) {
				t.Fatalf("err = %v (%T), want a non-retryable *UnauthorizedError", err, err)
			}
			if c.Stats().Calls != 1 {
				t.Errorf("calls = %d, want 1 (no retry on 401)", c.Stats().Calls)
			}
		})
	}
}

func TestMissingScope(t *testing.T) {
	env := newSimEnv(t)
	readOnly, _ := env.sim.IssueToken(testClientID, []string{"ads:read"})
	c := env.client(t, staticTokens(readOnly))
	_, err := c.CreateCustomerList(t.Context(), CustomerListCreate{Name: "x", Records: hashes("x", 1)})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusForbidden || apiErr.Code != 3 {
		t.Fatalf("err = %v, want 403 code 3", err)
	}
}

// connect runs the consent redirect against the simulator and returns the code.
func connect(t *testing.T, o *OAuth, state string) string {
	t.Helper()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(o.AuthCodeURL(state))
	if err != nil {
		t.Fatalf("consent page: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("consent page answered %s, want 302", resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if got := loc.Query().Get("state"); got != state {
		t.Fatalf("state = %q, want %q", got, state)
	}
	return loc.Query().Get("code")
}

func TestOAuthExchangeAndRefresh(t *testing.T) {
	env := newSimEnv(t)
	o := env.oauth()
	ctx := t.Context()
	start := env.clock.Now()

	tok, err := o.Exchange(ctx, connect(t, o, "st-1"))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	want := &Token{
		AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Scope: "ads:read,ads:write",
		AccessTokenExpiresAt:  start.Add(pinterestsim.DefaultAccessTokenTTL),
		RefreshTokenExpiresAt: time.Unix(start.Add(pinterestsim.DefaultRefreshTokenTTL).Unix(), 0),
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("token pair incomplete: %v", tok)
	}
	if diff := cmp.Diff(want, tok); diff != "" {
		t.Errorf("exchanged token (-want +got):\n%s", diff)
	}
	c := env.client(t, staticTokens(tok.AccessToken))
	if _, err := c.FindCustomerList(ctx, "x"); err != nil {
		t.Errorf("the exchanged access token does not work: %v", err)
	}

	env.clock.Advance(24 * time.Hour)
	fresh, err := o.Refresh(ctx, tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if fresh.RefreshToken == "" || fresh.RefreshToken == tok.RefreshToken || fresh.AccessToken == tok.AccessToken {
		t.Errorf("refresh did not rotate the pair: %v", fresh)
	}
	if wantExp := env.clock.Now().Add(pinterestsim.DefaultAccessTokenTTL); !fresh.AccessTokenExpiresAt.Equal(wantExp) {
		t.Errorf("access expiry = %s, want %s", fresh.AccessTokenExpiresAt, wantExp)
	}
	if !fresh.RefreshTokenExpiresAt.After(tok.RefreshTokenExpiresAt) {
		t.Errorf("refresh expiry %s did not move past %s", fresh.RefreshTokenExpiresAt, tok.RefreshTokenExpiresAt)
	}
	if _, err := env.client(t, staticTokens(fresh.AccessToken)).FindCustomerList(ctx, "x"); err != nil {
		t.Errorf("the refreshed access token does not work: %v", err)
	}

	// The rotated-out refresh token is dead: reconnect needed.
	_, err = o.Refresh(ctx, tok.RefreshToken)
	var grant *InvalidGrantError
	if !errors.Is(err, ErrReconnectNeeded) || !errors.As(err, &grant) || IsRetryable(err) {
		t.Errorf("refresh with the old token: err = %v, want a non-retryable ErrReconnectNeeded", err)
	}
}

func TestOAuthErrors(t *testing.T) {
	env := newSimEnv(t)
	ctx := t.Context()
	tests := []struct {
		name          string
		run           func(o *OAuth) error
		wantReconnect bool
		wantRetryable bool
		wantStatus    int
	}{
		{
			name:          "unknown refresh token",
			run:           func(o *OAuth) error { _, err := o.Refresh(ctx, "pinr_bogus"); return err },
			wantReconnect: true, wantStatus: 400,
		},
		{
			name: "expired refresh token",
			run: func(o *OAuth) error {
				_, refresh := env.sim.IssueToken(testClientID, []string{"ads:read"})
				env.clock.Advance(pinterestsim.DefaultRefreshTokenTTL + time.Second)
				_, err := o.Refresh(ctx, refresh)
				return err
			},
			wantReconnect: true, wantStatus: 400,
		},
		{
			name: "authorization code used twice",
			run: func(o *OAuth) error {
				code := connect(t, o, "s")
				if _, err := o.Exchange(ctx, code); err != nil {
					return fmt.Errorf("first exchange failed: %w", err)
				}
				_, err := o.Exchange(ctx, code)
				return err
			},
			wantReconnect: true, wantStatus: 400,
		},
		{
			name: "wrong client secret",
			run: func(*OAuth) error {
				o := NewOAuth(OAuthConfig{ClientID: testClientID, ClientSecret: "wrong-secret", BaseURL: env.baseURL()})
				_, err := o.Refresh(ctx, "pinr_whatever")
				return err
			},
			wantStatus: 401,
		},
		{
			name: "token endpoint unavailable",
			run: func(o *OAuth) error {
				env.sim.SetFault(pinterestsim.RouteOAuthToken, pinterestsim.Fault{FailNext: 1, FailStatus: 503})
				_, err := o.Refresh(ctx, "pinr_whatever")
				return err
			},
			wantRetryable: true, wantStatus: 503,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run(env.oauth())
			if err == nil {
				t.Fatal("want an error")
			}
			if got := errors.Is(err, ErrReconnectNeeded); got != tt.wantReconnect {
				t.Errorf("errors.Is(ErrReconnectNeeded) = %v for %v", got, err)
			}
			if got := IsRetryable(err); got != tt.wantRetryable {
				t.Errorf("IsRetryable = %v for %v", got, err)
			}
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.StatusCode != tt.wantStatus || apiErr.Path != "/oauth/token" {
				t.Errorf("err = %v, want a %d *APIError on /oauth/token", err, tt.wantStatus)
			}
		})
	}
}

// TestNoSecretInErrorsOrLogs drives every failure the client can meet with
// recognisable secrets and checks none of them reaches an error string (in
// any fmt form) or a log line.
func TestNoSecretInErrorsOrLogs(t *testing.T) {
	env := newSimEnv(t)
	ctx := t.Context()
	const (
		accessSecret  = "pina_ACCESS_SECRET_1234"
		refreshSecret = "pinr_REFRESH_SECRET_5678"
		clientSecret  = "CLIENT_SECRET_9012"
		codeSecret    = "CODE_SECRET_3456"
	)
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	env.sim.AddAccessToken(accessSecret, []string{"ads:read", "ads:write"}, env.clock.Now().Add(time.Hour))

	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nothing here", http.StatusBadGateway)
	}))
	defer other.Close()
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirecting.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	newClient := func(base string, token string) *Client {
		return env.client(t, withBaseURL(base), staticTokens(token), withLogger(logger), withRetry(RetryPolicy{MaxAttempts: 2}))
	}
	good := newClient(env.baseURL(), accessSecret)
	list, err := good.CreateCustomerList(ctx, CustomerListCreate{Name: "s", Records: hashes("s", 1)})
	if err != nil {
		t.Fatal(err)
	}
	oauthCfg := OAuthConfig{ClientID: testClientID, ClientSecret: clientSecret, RedirectURL: testRedirectURL, BaseURL: env.baseURL()}

	var errs []error
	collect := func(_ any, err error) { errs = append(errs, err) }
	collect(newClient(env.baseURL(), accessSecret+"x").GetCustomerList(ctx, list.ID)) // 401
	env.sim.SetFault(pinterestsim.RouteCustomerListsUpdate, pinterestsim.Fault{FailNext: 2, FailStatus: 503})
	collect(good.UpdateCustomerList(ctx, list.ID, OpAdd, hashes("s", 2))) // 503, retried, gave up
	env.sim.SetFault(pinterestsim.RouteCustomerListsUpdate, pinterestsim.Fault{FailNext: 1, FailStatus: 429, RetryAfter: time.Hour})
	short, cancel := context.WithTimeout(ctx, time.Minute)
	collect(good.UpdateCustomerList(short, list.ID, OpAdd, hashes("s", 2))) // deadline would pass
	cancel()
	collect(newClient(closed.URL+"/v5", accessSecret).GetCustomerList(ctx, list.ID))      // connection refused
	collect(newClient(redirecting.URL+"/v5", accessSecret).GetCustomerList(ctx, list.ID)) // redirected elsewhere, 502
	collect(NewOAuth(oauthCfg).Refresh(ctx, refreshSecret))                               // 401 invalid client
	oauthCfg.ClientSecret = testClientSecret
	collect(NewOAuth(oauthCfg).Refresh(ctx, refreshSecret)) // invalid grant
	collect(NewOAuth(oauthCfg).Exchange(ctx, codeSecret))   // invalid grant
	oauthCfg.BaseURL = closed.URL + "/v5"
	collect(NewOAuth(oauthCfg).Refresh(ctx, refreshSecret)) // connection refused

	for i, err := range errs {
		if err == nil {
			t.Errorf("case %d: want an error", i)
			continue
		}
		for _, form := range []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			for _, secret := range []string{accessSecret, refreshSecret, clientSecret, codeSecret, testClientSecret} {
				if strings.Contains(form, secret) {
					t.Errorf("case %d: error shows a secret: %s", i, form)
				}
			}
		}
	}
	for _, secret := range []string{accessSecret, refreshSecret, clientSecret, codeSecret} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("logs show a secret: %s", logs.String())
		}
	}
	if !strings.Contains(logs.String(), "retrying") {
		t.Errorf("expected retry log lines, got %q", logs.String())
	}
}

func TestWriteLimit(t *testing.T) {
	env := newSimEnv(t)
	fixed := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := env.client(t, withWriteRate(1), withClock(func() time.Time { return fixed }))
	ctx := t.Context()
	list, err := c.CreateCustomerList(ctx, CustomerListCreate{Name: "w", Records: hashes("w", 1)}) // takes the burst
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.UpdateCustomerList(ctx, list.ID, OpAdd, hashes("w", 1)); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 { // reads are not limited
		if _, err := c.GetCustomerList(ctx, list.ID); err != nil {
			t.Fatal(err)
		}
	}
	if waits := env.sleeps.Waits(); !cmp.Equal(waits, []time.Duration{time.Second, 2 * time.Second}) {
		t.Errorf("limiter waits = %v, want [1s 2s] (1 write/s, the clock standing still)", waits)
	}
}

func TestConcurrentUse(t *testing.T) {
	env := newSimEnv(t)
	c := env.client(t)
	ctx := t.Context()
	list, err := c.CreateCustomerList(ctx, CustomerListCreate{Name: "c", Records: hashes("c", 1)})
	if err != nil {
		t.Fatal(err)
	}
	env.sim.SetFault(pinterestsim.RouteCustomerListsUpdate, pinterestsim.Fault{FailNext: 4, FailStatus: 503})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			_, err := c.UpdateCustomerList(ctx, list.ID, OpAdd, hashes(fmt.Sprint("g", i), 10))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("update: %v", err)
		}
	}
	if n := len(env.sim.Records(testAdAccount, list.ID)); n != 81 {
		t.Errorf("members = %d, want 81", n)
	}
	want := Stats{Calls: 1 + 8 + 4, Retries: 4}
	if s := c.Stats(); s != want {
		t.Errorf("stats = %+v, want %+v", s, want)
	}
}

// An audience's lists are created before any member arrives (POST
// /v1/audiences), so a create without records must pass the simulator's
// validation against Pinterest's schema and make an empty list.
func TestCreateEmptyCustomerList(t *testing.T) {
	env := newSimEnv(t)
	c := env.client(t)
	list, err := c.CreateCustomerList(t.Context(), CustomerListCreate{Name: "pinlist ups:a1 IDFA", ListType: "IDFA"})
	if err != nil {
		t.Fatalf("create empty list: %v", err)
	}
	if got := env.sim.Records(testAdAccount, list.ID); len(got) != 0 {
		t.Errorf("records = %v, want none", got)
	}
	if list.NumBatches != 1 || list.NumUploadedUserRecords != 0 {
		t.Errorf("counters = batches %d uploaded %d, want 1 and 0", list.NumBatches, list.NumUploadedUserRecords)
	}
}
