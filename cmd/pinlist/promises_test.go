package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/config"
	"github.com/pinlist/pinlist/internal/fake"
	"github.com/pinlist/pinlist/internal/ingest"
	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/local"
	"github.com/pinlist/pinlist/internal/queue"
	"github.com/pinlist/pinlist/internal/wire"
)

// captureSender keeps what ingest enqueues.
type captureSender struct {
	mu   sync.Mutex
	msgs []queue.Outgoing
}

func (c *captureSender) SendBatch(_ context.Context, msgs []queue.Outgoing) ([]int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, msgs...)
	return nil, nil
}

type staticToken string

func (s staticToken) IngestToken(context.Context) (string, error) { return string(s), nil }

// TestEraseCommand: pinlist erase posts the identifiers to the ingest API,
// which enqueues one erasure message of their hashes; neither the command's
// output nor ingest's log holds them in plain.
func TestEraseCommand(t *testing.T) {
	sender := &captureSender{}
	logs := &fake.Buffer{}
	h, err := ingest.New(ingest.Options{Sender: sender, IngestToken: staticToken("tok"), Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Setenv(config.EnvIngestToken, "tok")

	const email = "Erase.Me@Example.com"
	var stdout, stderr bytes.Buffer
	err = run(t.Context(), []string{"erase", "--ingest-url", srv.URL, "--email", email, "--gaid", "6D92078A-8246-4BA4-AE5B-76104861E7DC"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("erase: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "2 identifiers erased") {
		t.Fatalf("output %q", stdout.String())
	}
	if len(sender.msgs) != 1 {
		t.Fatalf("%d messages enqueued", len(sender.msgs))
	}
	m, err := wire.Decode(sender.msgs[0].Body)
	if err != nil || m.Kind != wire.KindErasure || len(m.Records) != 2 {
		t.Fatalf("message %+v, %v", m, err)
	}
	for what, s := range map[string]string{"output": stdout.String() + stderr.String(), "log": logs.String(), "message": string(sender.msgs[0].Body)} {
		if strings.Contains(strings.ToLower(s), "erase.me@example.com") {
			t.Errorf("the %s holds the plain email", what)
		}
	}

	// Usage errors.
	for _, args := range [][]string{{"erase"}, {"erase", "--ingest-url", srv.URL, "extra"}} {
		if err := run(t.Context(), args, &stdout, &stderr); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

// TestResyncCommand: pinlist resync marks every row of the audience's lists
// pending (members to add, known exits to remove) and watches them drain.
func TestResyncCommand(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	q, err := queue.OpenLocal(ctx, queue.LocalOptions{Path: local.QueuePath(dir)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	store, err := ledger.NewSQLite(ctx, ledger.SQLiteOptions{DB: q.DB()})
	if err != nil {
		t.Fatal(err)
	}
	a, other := audience.Ref{Namespace: "ups", ID: "rs"}, audience.Ref{Namespace: "ups", ID: "other"}
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	var cs []audience.Change
	for i, h := range []string{redriveHash("1"), redriveHash("2"), redriveHash("3")} {
		op := audience.OpAdd
		if i == 2 {
			op = audience.OpRemove
		}
		cs = append(cs, audience.Change{Audience: a, List: audience.ListEmail, Op: op, Hash: h, EventTime: at},
			audience.Change{Audience: other, List: audience.ListEmail, Op: op, Hash: h, EventTime: at})
	}
	if _, err := store.Apply(ctx, cs); err != nil {
		t.Fatal(err)
	}
	l := ledger.List{Audience: a, Type: audience.ListEmail}
	lo := ledger.List{Audience: other, Type: audience.ListEmail}
	drain := func(l ledger.List) {
		for _, op := range []audience.Op{audience.OpAdd, audience.OpRemove} {
			p, err := store.Pending(ctx, l, op, 100)
			if err != nil {
				t.Error(err)
				return
			}
			if err := store.MarkSent(ctx, l, op, p); err != nil {
				t.Error(err)
			}
		}
	}
	drain(l)
	drain(lo)

	var stdout, stderr bytes.Buffer
	if err := run(ctx, []string{"resync", "--data-dir", dir, "--no-wait", "ups:rs"}, &stdout, &stderr); err != nil {
		t.Fatalf("resync: %v\n%s", err, stderr.String())
	}
	if n, _ := store.PendingCount(ctx, l); n != 3 {
		t.Fatalf("%d rows pending after resync, want 3 (2 members, 1 exit)", n)
	}
	if n, _ := store.PendingCount(ctx, lo); n != 0 {
		t.Fatalf("the other audience's list has %d rows pending", n)
	}
	if !strings.Contains(stdout.String(), "ups:rs/EMAIL: 2 members, 3 rows to send") {
		t.Fatalf("output %q", stdout.String())
	}

	// Waiting: a stand-in flusher drains the rows; resync sees them go.
	drain(l)
	stdout.Reset()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if n, _ := store.PendingCount(ctx, l); n > 0 {
				drain(l)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	if err := run(ctx, []string{"resync", "--data-dir", dir, "--poll", "10ms", "rs"}, &stdout, &stderr); err != nil {
		t.Fatalf("resync: %v\n%s", err, stderr.String())
	}
	<-done
	if !strings.Contains(stdout.String(), "resync done") || !strings.Contains(stdout.String(), "[##############################] 3/3") {
		t.Fatalf("output %q", stdout.String())
	}
	if err := run(ctx, []string{"resync", "--data-dir", dir, "ups:unknown"}, &stdout, &stderr); err == nil {
		t.Fatal("resync of an unknown audience succeeded")
	}
}
