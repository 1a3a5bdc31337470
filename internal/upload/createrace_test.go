package upload_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pinlist/pinlist/internal/audience"
)

// TestAnExitDuringTheFlushThatCreatesItsListIsSent: a member leaves while
// the flush that creates the list with its first records (the member among
// them) is in flight. The list exists now, so the exit must reach it; the
// chaos suite caught a flusher that marked such an exit sent without a call
// because the list "did not exist when the flush began".
func TestAnExitDuringTheFlushThatCreatesItsListIsSent(t *testing.T) {
	aud := audience.Ref{Namespace: "ups", ID: "aud-race"}
	leaver, stayer := hashOf("leaver"), hashOf("stayer")
	var e *env
	var once sync.Once
	e = newEnv(t, envConfig{wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r)
			if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/customer_lists") {
				once.Do(func() {
					exit := audience.Change{Audience: aud, List: audience.ListEmail, Hash: leaver, Op: audience.OpRemove, EventTime: t0.Add(time.Minute)}
					if _, err := e.ledger.Apply(context.Background(), []audience.Change{exit}); err != nil {
						t.Errorf("apply the exit: %v", err)
					}
				})
			}
		})
	}})
	joins := []audience.Change{
		{Audience: aud, List: audience.ListEmail, Hash: leaver, Op: audience.OpAdd, EventTime: t0},
		{Audience: aud, List: audience.ListEmail, Hash: stayer, Op: audience.OpAdd, EventTime: t0},
	}
	if _, err := e.ledger.Apply(t.Context(), joins); err != nil {
		t.Fatal(err)
	}
	e.flushAll(t.Context())
	e.flushAll(t.Context()) // whatever the first flush left pending
	got := e.membership()["pinlist ups:aud-race EMAIL"]
	if diff := cmp.Diff([]string{stayer}, got); diff != "" {
		t.Errorf("the list's members (-want +got):\n%s", diff)
	}
	created := slices.ContainsFunc(e.reqs.ok(), func(w listWrite) bool { return w.create && slices.Contains(w.records, leaver) })
	if !created {
		t.Fatal("the list was not created with the leaver among its first records: the test proves nothing")
	}
	if p := e.pending(aud, audience.ListEmail); p[audience.OpAdd]+p[audience.OpRemove] != 0 {
		t.Errorf("rows still pending: %v", p)
	}
}
