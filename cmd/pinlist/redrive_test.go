package main

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"golang.org/x/oauth2"
	"golang.org/x/time/rate"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/local"
	"github.com/pinlist/pinlist/internal/pinterest"
	"github.com/pinlist/pinlist/internal/pinterestsim"
	"github.com/pinlist/pinlist/internal/queue"
	"github.com/pinlist/pinlist/internal/upload"
	"github.com/pinlist/pinlist/internal/wire/wiretest"
)

const redriveAdAccount = "549755885177"

// redriveAudiences are the audiences of the dead letters, one message each.
var redriveAudiences = []string{"aud-red-1", "aud-red-2"}

// redriveHash is the member each audience's message adds.
func redriveHash(audienceID string) string {
	sum := sha256.Sum256([]byte(audienceID + "@example.com"))
	return hex.EncodeToString(sum[:])
}

// redriveMessages are the queue messages: one per audience, each adding
// redriveHash to the audience's EMAIL list.
func redriveMessages(t *testing.T) []queue.Outgoing {
	t.Helper()
	var changes []audience.Change
	for i, id := range redriveAudiences {
		changes = append(changes, audience.Change{
			Audience: audience.Ref{Namespace: "ups", ID: id}, List: audience.ListEmail, Op: audience.OpAdd,
			Hash: redriveHash(id), EventTime: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC), Seq: uint64(i),
		})
	}
	packed, err := wiretest.Pack(changes, 0)
	if err != nil {
		t.Fatalf("pack messages: %v", err)
	}
	var out []queue.Outgoing
	for i, p := range packed {
		out = append(out, queue.Outgoing{GroupID: p.Audience.Key(), DedupID: "m" + strconv.Itoa(i), Body: p.Body})
	}
	return out
}

// applier is the upload function against an in-process simulator: what
// happens to a redriven message next.
type applier struct {
	sim *pinterestsim.Server
	h   *upload.Handler
}

func newApplier(t *testing.T) *applier {
	t.Helper()
	sim, err := pinterestsim.New(pinterestsim.Options{AdAccounts: []string{redriveAdAccount}, Seed: 1})
	if err != nil {
		t.Fatalf("new simulator: %v", err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	access, _ := sim.IssueToken("redrive-test", []string{"ads:read", "ads:write"})
	client, err := pinterest.New(pinterest.Options{
		AdAccountID: redriveAdAccount,
		BaseURL:     srv.URL + "/v5",
		HTTPClient:  srv.Client(),
		TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: access}),
		WriteRate:   rate.Inf,
	})
	if err != nil {
		t.Fatalf("new pinterest client: %v", err)
	}
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "ledger.db")+"?_busy_timeout=10000&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	led, err := ledger.NewSQLite(t.Context(), ledger.SQLiteOptions{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	names, err := ledger.NewSQLiteNames(t.Context(), ledger.SQLiteOptions{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	h, err := upload.New(upload.Options{Client: client, Ledger: led, Names: names, Metrics: io.Discard, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("new upload handler: %v", err)
	}
	return &applier{sim: sim, h: h}
}

// apply runs the upload handler on ev and fails on any item failure.
func (a *applier) apply(t *testing.T, ev events.SQSEvent) {
	t.Helper()
	resp, err := a.h.HandleSQS(t.Context(), ev)
	if err != nil || len(resp.BatchItemFailures) > 0 {
		t.Fatalf("upload: %+v, %v; want every message applied", resp.BatchItemFailures, err)
	}
}

// check fails unless the simulator's customer lists hold the members of
// exactly n of the dead letters' audiences, each in that audience's list.
func (a *applier) check(t *testing.T, n int) {
	t.Helper()
	lists := a.sim.State().AdAccounts[redriveAdAccount].CustomerLists
	if len(lists) != n {
		t.Errorf("simulator has %d customer lists, want %d (one per redriven audience)", len(lists), n)
	}
	for _, l := range lists {
		found := false
		for _, id := range redriveAudiences {
			if strings.Contains(l.Name, id) {
				found = true
				if !slices.Equal(l.Records, []string{redriveHash(id)}) {
					t.Errorf("list %q holds %v, want the member of %s", l.Name, l.Records, id)
				}
			}
		}
		if !found {
			t.Errorf("list %q is for none of the audiences %v", l.Name, redriveAudiences)
		}
	}
}

// runRedriveCmd runs `pinlist redrive ARGS...` and returns its stdout.
func runRedriveCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr strings.Builder
	err := run(t.Context(), append([]string{"redrive"}, args...), &stdout, &stderr)
	if stderr.Len() > 0 && err == nil {
		t.Errorf("pinlist redrive wrote to stderr: %s", stderr.String())
	}
	return stdout.String(), err
}

// isolateRedriveEnv keeps the machine's pinlist settings out of a test.
func isolateRedriveEnv(t *testing.T) {
	t.Setenv("PINLIST_QUEUE_URL", "")
	t.Setenv("PINLIST_DATA_DIR", t.TempDir())
}

func TestRedriveSQS(t *testing.T) {
	tests := []struct {
		name      string
		args      func(queueURL, dlqURL string) []string
		env       bool // the queue URL comes from PINLIST_QUEUE_URL
		wantMoved int
		wantOut   string
	}{
		{name: "all, DLQ from the redrive policy", args: func(q, _ string) []string { return []string{"--queue-url", q} }, wantMoved: 2, wantOut: "Moved 2 dead letters back to the queue."},
		{name: "queue URL from the environment", args: func(string, string) []string { return nil }, env: true, wantMoved: 2, wantOut: "Moved 2 dead letters"},
		{name: "at most one, DLQ given", args: func(q, d string) []string { return []string{"--queue-url", q, "--dlq-url", d, "--max", "1"} }, wantMoved: 1, wantOut: "--max 1 reached"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateRedriveEnv(t)
			useMoto(t)
			queueURL, dlqURL := moto.CreateFIFOQueueWithDLQ(t, "redrive-cli", 1, 30*time.Second)
			if tt.env {
				t.Setenv("PINLIST_QUEUE_URL", queueURL)
			}
			killSQSMessages(t, queueURL, dlqURL, redriveMessages(t))

			out, err := runRedriveCmd(t, tt.args(queueURL, dlqURL)...)
			if err != nil {
				t.Fatalf("pinlist redrive: %v\n%s", err, out)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("stdout = %q, want it to say %q", out, tt.wantOut)
			}
			if d := sqsDepth(t, dlqURL); d.Visible+d.InFlight != len(redriveAudiences)-tt.wantMoved {
				t.Errorf("dead-letter queue after redrive: %+v, want %d left", d, len(redriveAudiences)-tt.wantMoved)
			}

			// The moved messages arrive at the queue and are applied.
			a := newApplier(t)
			var ev events.SQSEvent
			for try := 0; len(ev.Records) < tt.wantMoved && try < 10; try++ {
				got := moto.ReceiveEvent(t, queueURL, 10)
				ev.Records = append(ev.Records, got.Records...)
			}
			if len(ev.Records) != tt.wantMoved {
				t.Fatalf("received %d redriven messages, want %d", len(ev.Records), tt.wantMoved)
			}
			a.apply(t, ev)
			moto.Settle(t, queueURL, ev, events.SQSEventResponse{})
			a.check(t, tt.wantMoved)
		})
	}
}

// killSQSMessages sends msgs and fails each delivery until maxReceiveCount
// (1) moves every one to the dead-letter queue.
func killSQSMessages(t *testing.T, queueURL, dlqURL string, msgs []queue.Outgoing) {
	t.Helper()
	if failed, err := queue.NewSQS(moto.SQS(), queueURL).SendBatch(t.Context(), msgs); err != nil || len(failed) > 0 {
		t.Fatalf("send: %v, %v", failed, err)
	}
	for try := 0; sqsDepth(t, dlqURL).Visible < len(msgs); try++ {
		if try == 10 {
			t.Fatalf("messages did not reach the dead-letter queue: %+v", sqsDepth(t, dlqURL))
		}
		ev := moto.ReceiveEvent(t, queueURL, 10)
		fail := events.SQSEventResponse{}
		for _, r := range ev.Records {
			fail.BatchItemFailures = append(fail.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
		}
		moto.Settle(t, queueURL, ev, fail)
	}
}

func sqsDepth(t *testing.T, queueURL string) queue.SQSStats {
	t.Helper()
	d, err := queue.NewSQS(moto.SQS(), queueURL).Depth(t.Context())
	if err != nil {
		t.Fatalf("depth of %s: %v", queueURL, err)
	}
	return d
}

func TestRedriveSQSWithoutADeadLetterQueue(t *testing.T) {
	isolateRedriveEnv(t)
	useMoto(t)
	out, err := moto.SQS().CreateQueue(t.Context(), &sqs.CreateQueueInput{QueueName: aws.String(moto.UniqueName("plain"))})
	if err != nil {
		t.Fatalf("create queue: %v", err)
	}
	_, err = runRedriveCmd(t, "--queue-url", aws.ToString(out.QueueUrl))
	if !errors.Is(err, queue.ErrNoDeadLetterQueue) || !strings.Contains(err.Error(), "--dlq-url") {
		t.Fatalf("pinlist redrive = %v, want ErrNoDeadLetterQueue and --dlq-url named", err)
	}
}

func TestRedriveLocal(t *testing.T) {
	tests := []struct {
		name      string
		max       string
		wantMoved int
		wantOut   string
	}{
		{name: "all", max: "0", wantMoved: 2, wantOut: "Moved 2 dead letters back to the queue. pinlist serve applies them"},
		{name: "at most one", max: "1", wantMoved: 1, wantOut: "--max 1 reached"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateRedriveEnv(t)
			dir := t.TempDir()
			killLocalMessages(t, dir, redriveMessages(t))

			out, err := runRedriveCmd(t, "--data-dir", dir, "--max", tt.max)
			if err != nil {
				t.Fatalf("pinlist redrive: %v", err)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("stdout = %q, want it to say %q", out, tt.wantOut)
			}

			// As pinlist serve would: receive the moved messages and apply them.
			q, err := queue.OpenLocal(t.Context(), queue.LocalOptions{Path: local.QueuePath(dir), Consumer: true})
			if err != nil {
				t.Fatalf("open local queue: %v", err)
			}
			defer q.Close()
			dead, err := q.DeadLetters(t.Context())
			if err != nil || len(dead) != len(redriveAudiences)-tt.wantMoved {
				t.Errorf("dead letters left: %d, %v; want %d", len(dead), err, len(redriveAudiences)-tt.wantMoved)
			}
			a := newApplier(t)
			var moved []string
			for _, b := range receiveLocal(t, q) {
				a.apply(t, localEvent(b))
				for _, m := range b.Messages {
					moved = append(moved, m.GroupID)
					if err := q.Delete(t.Context(), m.Receipt); err != nil {
						t.Fatalf("delete: %v", err)
					}
				}
			}
			if len(moved) != tt.wantMoved {
				t.Errorf("received the messages of %v, want %d", moved, tt.wantMoved)
			}
			a.check(t, tt.wantMoved)
		})
	}
}

// killLocalMessages sends msgs to the local queue in dir and delivers each
// until it is a dead letter (MaxReceive 1), on a clock an hour in the past.
func killLocalMessages(t *testing.T, dir string, msgs []queue.Outgoing) {
	t.Helper()
	clock := time.Now().Add(-time.Hour)
	q, err := queue.OpenLocal(t.Context(), queue.LocalOptions{
		Path: local.QueuePath(dir), Consumer: true, MaxReceive: 1, VisibilityTimeout: time.Second,
		Now: func() time.Time { return clock },
	})
	if err != nil {
		t.Fatalf("open local queue: %v", err)
	}
	defer q.Close()
	if _, err := q.SendBatch(t.Context(), msgs); err != nil {
		t.Fatalf("send: %v", err)
	}
	for range 2 { // delivered once and not deleted, then dead on the next receive
		receiveLocal(t, q)
		clock = clock.Add(2 * time.Second)
	}
	dead, err := q.DeadLetters(t.Context())
	if err != nil || len(dead) != len(msgs) {
		t.Fatalf("dead letters: %d, %v; want %d", len(dead), err, len(msgs))
	}
}

// receiveLocal receives from q until nothing more can be delivered.
func receiveLocal(t *testing.T, q *queue.Local) []queue.Batch {
	t.Helper()
	var out []queue.Batch
	for {
		b, err := q.ReceiveGroupBatch(t.Context(), queue.MaxBatch)
		if err != nil {
			t.Fatalf("receive from the local queue: %v", err)
		}
		if len(b.Messages) == 0 {
			return out
		}
		out = append(out, b)
	}
}

// localEvent is a local batch as the SQS event the upload handler takes.
func localEvent(b queue.Batch) events.SQSEvent {
	var ev events.SQSEvent
	for _, m := range b.Messages {
		ev.Records = append(ev.Records, events.SQSMessage{
			MessageId: m.ID, Body: string(m.Body),
			Attributes: map[string]string{"MessageGroupId": m.GroupID, "ApproximateReceiveCount": strconv.Itoa(m.ReceiveCount)},
		})
	}
	return ev
}

// TestRedriveLocalBesideServe: the redrive moves dead letters back while a
// consumer (pinlist serve) holds the queue, and that consumer then receives
// and applies them without being restarted.
func TestRedriveLocalBesideServe(t *testing.T) {
	isolateRedriveEnv(t)
	dir := t.TempDir()
	killLocalMessages(t, dir, redriveMessages(t))
	serve, err := queue.OpenLocal(t.Context(), queue.LocalOptions{Path: local.QueuePath(dir), Consumer: true})
	if err != nil {
		t.Fatalf("open the queue as serve does: %v", err)
	}
	defer serve.Close()
	if b := receiveLocal(t, serve); len(b) != 0 {
		t.Fatalf("serve received %d batches before the redrive, want none: every message is a dead letter", len(b))
	}

	out, err := runRedriveCmd(t, "--data-dir", dir)
	if err != nil {
		t.Fatalf("pinlist redrive beside serve: %v", err)
	}
	if want := "Moved 2 dead letters back to the queue. pinlist serve applies them: at once when it is running"; !strings.Contains(out, want) {
		t.Errorf("stdout = %q, want it to say %q", out, want)
	}
	if _, err := queue.OpenLocal(t.Context(), queue.LocalOptions{Path: local.QueuePath(dir), Consumer: true}); !errors.Is(err, queue.ErrLocalConsumerLocked) {
		t.Fatalf("a second consumer after the redrive: err = %v, want ErrLocalConsumerLocked (serve still holds the queue)", err)
	}

	a := newApplier(t)
	var moved []string
	for _, b := range receiveLocal(t, serve) {
		a.apply(t, localEvent(b))
		for _, m := range b.Messages {
			moved = append(moved, m.GroupID)
			if err := serve.Delete(t.Context(), m.Receipt); err != nil {
				t.Fatalf("delete: %v", err)
			}
		}
	}
	if len(moved) != len(redriveAudiences) {
		t.Errorf("serve received the messages of %v, want one per audience %v", moved, redriveAudiences)
	}
	a.check(t, len(redriveAudiences))
	if dead, err := serve.DeadLetters(t.Context()); err != nil || len(dead) != 0 {
		t.Errorf("dead letters after the redrive: %d, %v; want none", len(dead), err)
	}
}

func TestRedriveLocalWithoutAQueue(t *testing.T) {
	isolateRedriveEnv(t)
	dir := t.TempDir()
	_, err := runRedriveCmd(t, "--data-dir", dir)
	if err == nil || !strings.Contains(err.Error(), "no local queue at") {
		t.Fatalf("pinlist redrive = %v, want an error saying there is no local queue", err)
	}
	if _, err := os.Stat(local.QueuePath(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("redrive without a queue created %s (stat: %v)", local.QueuePath(dir), err)
	}
}

func TestRedriveUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"both forms", []string{"--queue-url", "https://sqs.us-east-1.amazonaws.com/1/q.fifo", "--data-dir", "x"}, "not both"},
		{"negative max", []string{"--max", "-1"}, "--max -1"},
		{"DLQ without queue", []string{"--dlq-url", "https://sqs.us-east-1.amazonaws.com/1/d.fifo"}, "--dlq-url needs --queue-url"},
		{"stray argument", []string{"all"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateRedriveEnv(t)
			_, err := runRedriveCmd(t, tt.args...)
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("pinlist redrive %v = %v, want a usage error saying %q", tt.args, err, tt.want)
			}
		})
	}
}

func TestQueueRegion(t *testing.T) {
	tests := []struct{ name, url, want string }{
		{"SQS endpoint", "https://sqs.eu-west-1.amazonaws.com/123456789012/pinlist.fifo", "eu-west-1"},
		{"China", "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/pinlist.fifo", "cn-north-1"},
		{"moto", "http://127.0.0.1:5000/123456789012/pinlist.fifo", ""},
		{"not a URL", "::", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := queueRegion(tt.url); got != tt.want {
				t.Errorf("queueRegion(%q) = %q, want %q", tt.url, got, tt.want)
			}
		})
	}
}
