package pinterestsim

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// statuses sends n GETs of one list and returns the statuses.
func (f *fixture) statuses(n int, path string) []int {
	f.t.Helper()
	out := make([]int, n)
	for i := range out {
		out[i] = f.api(http.MethodGet, path, nil).status
	}
	return out
}

func count(statuses []int, status int) int {
	n := 0
	for _, s := range statuses {
		if s == status {
			n++
		}
	}
	return n
}

func TestFaultRatesAreSeeded(t *testing.T) {
	run := func(seed uint64) []int {
		f := newFixture(t, func(o *Options) { o.Seed = seed })
		l := f.createList("list", "a")
		f.sim.SetFault(RouteCustomerListsGet, Fault{Rate429: 0.2, Rate500: 0.2, Rate503: 0.2})
		return f.statuses(300, listPath(l.ID))
	}
	a, b, c := run(7), run(7), run(8)
	if !slices.Equal(a, b) {
		t.Error("the same seed gave different fault sequences")
	}
	if slices.Equal(a, c) {
		t.Error("different seeds gave the same fault sequence")
	}
	for _, status := range []int{429, 500, 503, 200} {
		want := 60 // 0.2 × 300; 120 for the 0.4 left over for 200
		if status == http.StatusOK {
			want = 120
		}
		// The bounds only catch a broken draw, not chance.
		if n := count(a, status); n < want/2 || n > want*3/2 {
			t.Errorf("%d × %d in 300 requests; want about %d", n, status, want)
		}
	}
	if got := len(a); got != 300 {
		t.Errorf("%d statuses", got)
	}
}

func TestFaultFailNext(t *testing.T) {
	f := newFixture(t)
	l := f.createList("list", "a")
	f.sim.SetFault(RouteCustomerListsUpdate, Fault{FailNext: 2, FailStatus: http.StatusServiceUnavailable})
	patch := map[string]string{"operation_type": "ADD", "records": "b"}

	var got []int
	for range 3 {
		got = append(got, f.api(http.MethodPatch, listPath(l.ID), patch).status)
	}
	if want := []int{503, 503, 200}; !slices.Equal(got, want) {
		t.Errorf("statuses = %v, want %v", got, want)
	}
	if resp := f.api(http.MethodGet, listPath(l.ID), nil); resp.status != http.StatusOK {
		t.Errorf("another route failed too: %d", resp.status)
	}
	if n := f.sim.State().AdAccounts[testAd].CustomerLists[0].NumBatches; n != 2 {
		t.Errorf("num_batches = %d, want 2 (failed calls change nothing)", n)
	}
	if n := f.sim.Calls()[RouteCustomerListsUpdate]; n != 3 {
		t.Errorf("Calls()[update] = %d, want 3 (failed calls count)", n)
	}

	f.sim.SetFault(RouteCustomerListsUpdate, Fault{FailNext: 1})
	if resp := f.api(http.MethodPatch, listPath(l.ID), patch); resp.status != http.StatusInternalServerError {
		t.Errorf("default FailStatus: %d, want 500", resp.status)
	}
}

func TestFaultRetryAfter(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter time.Duration
		want       string
	}{
		{name: "whole seconds", retryAfter: 3 * time.Second, want: "3"},
		{name: "rounded up", retryAfter: 1500 * time.Millisecond, want: "2"},
		{name: "none", retryAfter: 0, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.sim.SetFault(RouteAll, Fault{Rate429: 1, RetryAfter: tt.retryAfter})
			resp := f.api(http.MethodGet, "/v5/ad_accounts/"+testAd+"/customer_lists", nil)
			if resp.status != http.StatusTooManyRequests {
				t.Fatalf("status = %d, want 429", resp.status)
			}
			if got := resp.header.Get("Retry-After"); got != tt.want {
				t.Errorf("Retry-After = %q, want %q", got, tt.want)
			}
			if e := resp.apiErr(t); e.Code != 8 {
				t.Errorf("code = %d, want 8 (Pinterest's rate limit code)", e.Code)
			}
		})
	}
}

func TestFaultMatchAndPrecedence(t *testing.T) {
	f := newFixture(t)
	a, b := f.createList("a", "x"), f.createList("b", "x")
	f.sim.SetFault(RouteCustomerListsGet, Fault{Rate500: 1, Match: func(r *http.Request) bool {
		return strings.HasSuffix(r.URL.Path, "/"+a.ID)
	}})
	if got := f.api(http.MethodGet, listPath(a.ID), nil).status; got != 500 {
		t.Errorf("matched list: %d, want 500", got)
	}
	if got := f.api(http.MethodGet, listPath(b.ID), nil).status; got != 200 {
		t.Errorf("other list: %d, want 200", got)
	}

	f.sim.SetFault(RouteAll, Fault{Rate503: 1})
	if got := f.api(http.MethodGet, listPath(a.ID), nil).status; got != 500 {
		t.Errorf("route fault should win over *: %d, want 500", got)
	}
	if got := f.api(http.MethodGet, listPath(b.ID), nil).status; got != 503 {
		t.Errorf("unmatched route fault falls back to *: %d, want 503", got)
	}
	if got := f.refresh("pinr_x").status; got != 503 {
		t.Errorf("* covers the token endpoint: %d, want 503", got)
	}

	f.sim.ClearFaults()
	if got := f.api(http.MethodGet, listPath(a.ID), nil).status; got != 200 {
		t.Errorf("after ClearFaults: %d, want 200", got)
	}
}

func TestFaultLatency(t *testing.T) {
	f := newFixture(t)
	l := f.createList("list", "a")

	f.sim.SetFault(RouteCustomerListsGet, Fault{Latency: time.Millisecond})
	if got := f.api(http.MethodGet, listPath(l.ID), nil).status; got != 200 {
		t.Errorf("with small latency: %d, want 200", got)
	}

	// A latency far beyond the client's deadline: the client gives up, and
	// the simulator stops waiting when the request is cancelled.
	f.sim.SetFault(RouteCustomerListsGet, Fault{Latency: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.srv.URL+listPath(l.ID), nil)
	req.Header.Set("Authorization", "Bearer "+f.token)
	_, err := f.srv.Client().Do(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want the client's deadline", err)
	}
	// httptest.Server.Close (in Cleanup) blocks until handlers return, so a
	// handler stuck in the latency would hang the test here.
}
