package upload_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/upload"
)

func TestUndecodableMessageFailsAlone(t *testing.T) {
	e := newEnv(t, envConfig{})
	a, b := ref("aaaa"), ref("bbbb")
	aFirst, aLater, bAll := hashes("a1", 2), hashes("a2", 2), hashes("b", 2)
	ev := event(
		changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, aFirst...)...),
		sqsMsg{group: a.Key(), body: `{"v":1,"kind":"changes","audience":{"ns":"ups","id":"aaaa"},"records":[{"l":"EMAIL","o":"ADD","h":"not-a-hash"}]}`},
		changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, aLater...)...),
		changesMsg(t, changes(b, audience.ListEmail, audience.OpAdd, t0, bAll...)...),
		sqsMsg{body: "{not json"},
		sqsMsg{body: `{"v":2,"kind":"changes","audience":{"ns":"ups","id":"aaaa"}}`},
	)
	applied := e.h.Apply(t.Context(), ev.Records)
	var got []string
	for _, f := range applied.Failed {
		if !f.Permanent {
			t.Errorf("failure %s is not permanent: %v", f.ID, f.Err)
		}
		got = append(got, f.ID)
	}
	if diff := cmp.Diff([]string{"m1", "m4", "m5"}, got); diff != "" {
		t.Errorf("failed messages (-want +got):\n%s", diff)
	}
	if applied.Result.Flipped != 6 {
		t.Errorf("result %+v, want 6 flipped", applied.Result)
	}
	if got := e.lastEMF()["MessageFailures"]; got != 3 {
		t.Errorf("MessageFailures = %v, want 3", got)
	}
	e.flushAll(t.Context())
	want := map[string][]string{
		"pinlist ups:aaaa EMAIL": sorted(slices.Concat(aFirst, aLater)),
		"pinlist ups:bbbb EMAIL": sorted(bAll),
	}
	if diff := cmp.Diff(want, e.membership()); diff != "" {
		t.Errorf("membership (-want +got):\n%s", diff)
	}
}

// failingNames is a name store whose writes fail.
type failingNames struct{ ledger.Names }

func (failingNames) SetName(context.Context, audience.Ref, ledger.AudienceName) error {
	return errors.New("database is locked")
}

func TestAStoreFailureFailsTheMessagesItConcerned(t *testing.T) {
	a, b := ref("aaaa"), ref("bbbb")
	tests := []struct {
		name        string
		cfg         func() envConfig
		wantFailed  []string
		wantPending []string // lists
		wantName    bool     // a's name recorded
	}{
		{
			name: "the ledger write fails",
			cfg: func() envConfig {
				return envConfig{ledger: func(s ledger.Store) ledger.Store {
					return &faultyLedger{Store: s, applyErr: errors.New("disk I/O error")}
				}}
			},
			wantFailed:  []string{"m0", "m2"},
			wantPending: []string{},
			wantName:    true,
		},
		{
			name: "the name write fails",
			cfg: func() envConfig {
				return envConfig{names: func(n ledger.Names) ledger.Names { return failingNames{n} }}
			},
			wantFailed:  []string{"m1"},
			wantPending: []string{"ups:aaaa/EMAIL", "ups:bbbb/MAID"},
			wantName:    false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.cfg())
			ev := event(
				changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, hashes("a", 2)...)...),
				audienceMsg(t, a, "Named", ""),
				changesMsg(t, changes(b, audience.ListMAID, audience.OpAdd, t0, hashes("b", 2)...)...),
			)
			applied := e.h.Apply(t.Context(), ev.Records)
			var failed []string
			for _, f := range applied.Failed {
				if f.Permanent {
					t.Errorf("failure %s is permanent, want a retry: %v", f.ID, f.Err)
				}
				failed = append(failed, f.ID)
			}
			if diff := cmp.Diff(tt.wantFailed, failed); diff != "" {
				t.Errorf("failed messages (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantPending, e.pendingLists()); diff != "" {
				t.Errorf("pending lists (-want +got):\n%s", diff)
			}
			n, err := e.names.Name(t.Context(), a)
			if err != nil || (n.Name == "Named") != tt.wantName {
				t.Errorf("a's name %+v, %v; recorded: want %v", n, err, tt.wantName)
			}
			// Through HandleSQS alike: the failed messages come back, the
			// rest is flushed.
			if diff := cmp.Diff(tt.wantFailed, e.handle(t.Context(), ev)); diff != "" {
				t.Errorf("HandleSQS failed messages (-want +got):\n%s", diff)
			}
		})
	}
}

func TestApplyToRecordsInTheCallersTransaction(t *testing.T) {
	e := newEnv(t, envConfig{})
	a := ref("aaaa")
	ev := event(
		audienceMsg(t, a, "Named", "Described"),
		changesMsg(t, changes(a, audience.ListEmail, audience.OpAdd, t0, hashes("a", 2)...)...),
	)
	for _, commit := range []bool{false, true} {
		t.Run("commit="+strconv.FormatBool(commit), func(t *testing.T) {
			ctx := t.Context()
			tx, err := e.db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			rec := upload.RecorderFuncs{
				ApplyFunc: func(ctx context.Context, cs []audience.Change) (ledger.Result, error) {
					return e.ledger.ApplyTx(ctx, tx, cs)
				},
				SetNameFunc: func(ctx context.Context, a audience.Ref, n ledger.AudienceName) error {
					return e.names.SetNameTx(ctx, tx, a, n)
				},
			}
			applied := e.h.ApplyTo(ctx, rec, ev.Records)
			if len(applied.Failed) != 0 || applied.Names != 1 || applied.Result.Flipped != 2 {
				t.Fatalf("ApplyTo = %+v, want everything recorded", applied)
			}
			if diff := cmp.Diff([]ledger.List{{Audience: a, Type: audience.ListEmail}}, applied.Lists); diff != "" {
				t.Errorf("lists (-want +got):\n%s", diff)
			}
			if commit {
				err = tx.Commit()
			} else {
				err = tx.Rollback()
			}
			if err != nil {
				t.Fatal(err)
			}
			wantPending := []string{}
			wantName := ledger.AudienceName{}
			if commit {
				wantPending = []string{"ups:aaaa/EMAIL"}
				wantName = ledger.AudienceName{Name: "Named", Description: "Described"}
			}
			if diff := cmp.Diff(wantPending, e.pendingLists()); diff != "" {
				t.Errorf("pending lists (-want +got):\n%s", diff)
			}
			if n, err := e.names.Name(ctx, a); err != nil || n != wantName {
				t.Errorf("name %+v, %v; want %+v", n, err, wantName)
			}
		})
	}
	f, err := e.h.Flush(t.Context(), []ledger.List{{Audience: a, Type: audience.ListEmail}})
	if err != nil || f.RecordsSent != 2 || f.ListsCreated != 1 {
		t.Fatalf("Flush = %+v, %v; want the list created with 2 records", f, err)
	}
	if got := e.sim.State().AdAccounts[adAccount].CustomerLists[0].Name; got != "pinlist ups:aaaa EMAIL - Named" {
		t.Errorf("list named %q", got)
	}
}

// TestOrderAndBatchingDoNotMatter: the same changes, cut into batches in any
// way and delivered in any order, with flushes anywhere in between, end in
// the same membership: for each identifier the change with the latest event
// time, the exit on a tie.
func TestOrderAndBatchingDoNotMatter(t *testing.T) {
	a := ref("aaaa")
	people := hashes("person", 12)
	rnd := rand.New(rand.NewPCG(3, 5))
	var all []audience.Change
	for range 60 {
		op := audience.OpAdd
		if rnd.IntN(2) == 0 {
			op = audience.OpRemove
		}
		at := t0.Add(time.Duration(rnd.IntN(8)) * time.Minute) // many ties
		all = append(all, changes(a, audience.ListEmail, op, at, people[rnd.IntN(len(people))])...)
	}
	// The oracle, independent of audience.Precedence.
	type win struct {
		at   time.Time
		exit bool
	}
	latest := map[string]win{}
	for _, c := range all {
		w := win{c.EventTime, c.Op == audience.OpRemove}
		cur, ok := latest[c.Hash]
		if !ok || w.at.After(cur.at) || (w.at.Equal(cur.at) && w.exit) {
			latest[c.Hash] = w
		}
	}
	var want []string
	for h, w := range latest {
		if !w.exit {
			want = append(want, h)
		}
	}
	slices.Sort(want)

	for trial := range 6 {
		t.Run(strconv.Itoa(trial), func(t *testing.T) {
			e := newEnv(t, envConfig{maxRecords: 4, simMax: 4})
			cs := slices.Clone(all)
			rnd.Shuffle(len(cs), func(i, j int) { cs[i], cs[j] = cs[j], cs[i] })
			for len(cs) > 0 {
				n := min(len(cs), 1+rnd.IntN(15))
				var msgs []sqsMsg
				for part := range slices.Chunk(cs[:n], 1+rnd.IntN(5)) {
					msgs = append(msgs, changesMsg(t, part...))
				}
				cs = cs[n:]
				ev := event(msgs...)
				if rnd.IntN(2) == 0 {
					if failed := e.handle(t.Context(), ev); len(failed) != 0 {
						t.Fatalf("failed: %v", failed)
					}
				} else if failed := e.apply(t.Context(), ev); len(failed) != 0 {
					t.Fatalf("failed: %v", failed)
				}
			}
			e.flushAll(t.Context())
			got := e.membership()["pinlist ups:aaaa EMAIL"]
			if len(got) == 0 {
				got = nil
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("membership (-want +got):\n%s", diff)
			}
		})
	}
}
