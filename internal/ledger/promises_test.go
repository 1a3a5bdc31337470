package ledger

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/pinlist/pinlist/internal/audience"
)

func (s *serialDynamo) Scan(ctx context.Context, in *dynamodb.ScanInput, o ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.api.Scan(ctx, in, o...)
}

func (s *serialDynamo) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.api.BatchWriteItem(ctx, in, o...)
}

// keeperStore is a store with the promises.
type keeperStore interface {
	Store
	Keeper
}

var (
	listC = List{Audience: audience.Ref{Namespace: "ups", ID: "aud-3"}, Type: audience.ListEmail}
	listD = List{Audience: audience.Ref{Namespace: "ups", ID: "aud-4"}, Type: audience.ListEmail}
)

// sendAll marks every pending row of list sent.
func sendAll(t *testing.T, s Store, list List) {
	t.Helper()
	for _, op := range []audience.Op{add, rem} {
		p, err := s.Pending(t.Context(), list, op, 1000)
		if err != nil {
			t.Fatalf("Pending: %v", err)
		}
		if err := s.MarkSent(t.Context(), list, op, p); err != nil {
			t.Fatalf("MarkSent: %v", err)
		}
	}
}

func pendingHashes(t *testing.T, s Store, list List, op audience.Op) []string {
	t.Helper()
	p, err := s.Pending(t.Context(), list, op, 1000)
	if err != nil {
		t.Fatalf("Pending: %v", err)
	}
	var out []string
	for _, r := range p {
		out = append(out, r.Hash)
	}
	slices.Sort(out)
	return out
}

// TestErase erases an email that is in three audiences' EMAIL lists (and
// out of a fourth, and unknown in none) and a GAID in one MAID list; a
// join stamped before the erasure then arrives and is stale, one stamped
// after it applies.
func TestErase(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t).(keeperStore)
			ctx := t.Context()
			var cs []audience.Change
			for _, l := range []List{listA, listC, listD} {
				cs = append(cs, change(l, h1, add, 10), change(l, h2, add, 10))
			}
			cs = append(cs, change(listB, h3, add, 10), change(listB, h2, add, 10))
			if _, err := s.Apply(ctx, cs); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			for _, l := range []List{listA, listB, listC, listD} {
				sendAll(t, s, l)
			}
			er, err := s.Erase(ctx, []Erasure{
				{Type: audience.ListEmail, Hash: h1, Precedence: ErasurePrecedence(at(12))},
				{Type: audience.ListMAID, Hash: h3, Precedence: ErasurePrecedence(at(12))},
			})
			if err != nil {
				t.Fatalf("Erase: %v", err)
			}
			if er.Flipped != 4 || !slices.Equal(er.Lists, []List{listA, listB, listC, listD}) {
				t.Fatalf("Erase = %+v, want 4 flips in lists A, B, C, D", er)
			}
			for _, l := range []List{listA, listC, listD} {
				if got := pendingHashes(t, s, l, rem); !slices.Equal(got, []string{h1}) {
					t.Fatalf("pending removals of %s = %v, want h1", l.Key(), got)
				}
			}
			if got := pendingHashes(t, s, listB, rem); !slices.Equal(got, []string{h3}) {
				t.Fatalf("pending removals of %s = %v, want h3", listB.Key(), got)
			}
			m, err := s.Members(ctx)
			if err != nil || m[listA] != 1 || m[listB] != 1 {
				t.Fatalf("Members = %v, %v; want 1 left in A and B", m, err)
			}
			for _, l := range []List{listA, listB, listC, listD} {
				sendAll(t, s, l)
			}
			// A join stamped before the erasure, arriving late: stale.
			res, err := s.Apply(ctx, []audience.Change{change(listA, h1, add, 11), change(listB, h3, add, 11)})
			if err != nil || res.Stale != 2 {
				t.Fatalf("late join = %+v, %v; want 2 stale", res, err)
			}
			if r, _, _ := s.Get(ctx, listA, h1); r.Want != Out || r.Pending() {
				t.Fatalf("erased row after a stale join = %+v", r)
			}
			// A join stamped after it: the person came back.
			if res, err := s.Apply(ctx, []audience.Change{change(listA, h1, add, 13)}); err != nil || res.Flipped != 1 {
				t.Fatalf("later join = %+v, %v; want a flip", res, err)
			}
		})
	}
}

// TestEraseUnknownRowIsSent: a list the identifier was never recorded in
// (it may hold people from before the ledger) gets the removal too.
func TestEraseUnknownRowIsSent(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t).(keeperStore)
			if _, err := s.Apply(t.Context(), []audience.Change{change(listA, h2, add, 10)}); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if _, err := s.Erase(t.Context(), []Erasure{{Type: audience.ListEmail, Hash: h1, Precedence: ErasurePrecedence(at(12))}}); err != nil {
				t.Fatalf("Erase: %v", err)
			}
			if got := pendingHashes(t, s, listA, rem); !slices.Equal(got, []string{h1}) {
				t.Fatalf("pending removals = %v, want h1", got)
			}
		})
	}
}

// TestSQLitePurge: an erased row goes once its guard ran out and
// Pinterest has the removal.
func TestSQLitePurge(t *testing.T) {
	now := at(12)
	db := openSQLiteDB(t, t.TempDir()+"/l.db")
	s, err := NewSQLite(t.Context(), SQLiteOptions{DB: db, ErasureGuard: 2 * time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := s.Apply(ctx, []audience.Change{change(listA, h1, add, 10)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Erase(ctx, []Erasure{{Type: audience.ListEmail, Hash: h1, Precedence: ErasurePrecedence(now)}}); err != nil {
		t.Fatal(err)
	}
	now = at(15)
	if n, err := s.Purge(ctx); err != nil || n != 0 {
		t.Fatalf("Purge of a pending row = %d, %v; want 0", n, err)
	}
	sendAll(t, s, listA)
	if n, err := s.Purge(ctx); err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v; want 1", n, err)
	}
	if _, ok, _ := s.Get(ctx, listA, h1); ok {
		t.Fatal("the erased row is still there")
	}
}

// TestResetListAndRetire: a reset list has every row pending again; a
// retired audience's rows go out, later changes are stale, and
// FinishRetire drops the rows.
func TestResetListAndRetire(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t).(keeperStore)
			ctx := t.Context()
			if _, err := s.Apply(ctx, []audience.Change{
				change(listA, h1, add, 10), change(listA, h2, add, 10), change(listA, h3, rem, 10),
				change(listC, h1, add, 10),
			}); err != nil {
				t.Fatal(err)
			}
			if ok, err := s.SentIn(ctx, listA); err != nil || ok {
				t.Fatalf("SentIn before anything was sent = %v, %v", ok, err)
			}
			if n, err := s.PendingCount(ctx, listA); err != nil || n != 3 {
				t.Fatalf("PendingCount = %d, %v; want 3", n, err)
			}
			sendAll(t, s, listA)
			sendAll(t, s, listC)
			if ok, err := s.SentIn(ctx, listA); err != nil || !ok {
				t.Fatalf("SentIn after the send = %v, %v", ok, err)
			}
			n, err := s.ResetList(ctx, listA, Unknown)
			if err != nil || n != 3 {
				t.Fatalf("ResetList(Unknown) = %d, %v; want 3", n, err)
			}
			if got := pendingHashes(t, s, listA, add); !slices.Equal(got, sorted(h1, h2)) {
				t.Fatalf("pending adds = %v", got)
			}
			if got := pendingHashes(t, s, listA, rem); !slices.Equal(got, []string{h3}) {
				t.Fatalf("pending removals = %v", got)
			}
			if n, err := s.ResetList(ctx, listA, Out); err != nil || n != 2 {
				t.Fatalf("ResetList(Out) = %d, %v; want 2", n, err)
			}
			sendAll(t, s, listA)

			lists, err := s.Retire(ctx, listA.Audience)
			if err != nil || !slices.Equal(lists, []List{listA}) {
				t.Fatalf("Retire = %v, %v", lists, err)
			}
			if got := pendingHashes(t, s, listA, rem); !slices.Equal(got, sorted(h1, h2)) {
				t.Fatalf("pending removals after Retire = %v", got)
			}
			if res, err := s.Apply(ctx, []audience.Change{change(listA, h3, add, 20)}); err != nil || res.Stale != 1 {
				t.Fatalf("a change to a retired list = %+v, %v; want stale", res, err)
			}
			if er, err := s.Erase(ctx, []Erasure{{Type: audience.ListEmail, Hash: h1, Precedence: ErasurePrecedence(at(21))}}); err != nil || !slices.Equal(er.Lists, []List{listC}) {
				t.Fatalf("Erase after Retire = %+v, %v; want list C only", er, err)
			}
			retiring, err := s.Retiring(ctx)
			if err != nil || len(retiring) != len(audience.ListTypes) {
				t.Fatalf("Retiring = %v, %v", retiring, err)
			}
			sendAll(t, s, listA)
			for _, l := range retiring {
				if err := s.FinishRetire(ctx, l); err != nil {
					t.Fatalf("FinishRetire: %v", err)
				}
			}
			if r, err := s.Retiring(ctx); err != nil || len(r) != 0 {
				t.Fatalf("Retiring after FinishRetire = %v, %v", r, err)
			}
			if _, ok, _ := s.Get(ctx, listA, h1); ok {
				t.Fatal("a retired list's row survived FinishRetire")
			}
			retired, err := s.Retired(ctx)
			if err != nil || !retired[listA.Key()] {
				t.Fatalf("Retired = %v, %v", retired, err)
			}
			m, err := s.Members(ctx)
			_, hasC := m[listC] // erased above: still a list, with nobody
			if _, ok := m[listA]; err != nil || ok || !hasC || m[listC] != 0 {
				t.Fatalf("Members after FinishRetire = %v, %v", m, err)
			}
		})
	}
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}
