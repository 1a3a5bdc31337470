package upload_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/google/go-cmp/cmp"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/awstest"
	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/pinterestsim"
	"github.com/pinlist/pinlist/internal/queue"
	"github.com/pinlist/pinlist/internal/upload"
)

// serialDynamo runs one DynamoDB request at a time: moto does not lock its
// tables, so two concurrent conditional writes to one item could both pass,
// which DynamoDB never lets happen.
type serialDynamo struct {
	mu  sync.Mutex
	api ledger.DynamoAPI
}

func serial[I, O any](s *serialDynamo, f func(context.Context, I, ...func(*dynamodb.Options)) (O, error), ctx context.Context, in I, o ...func(*dynamodb.Options)) (O, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return f(ctx, in, o...)
}

func (s *serialDynamo) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	return serial(s, s.api.BatchGetItem, ctx, in, o...)
}
func (s *serialDynamo) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return serial(s, s.api.GetItem, ctx, in, o...)
}
func (s *serialDynamo) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return serial(s, s.api.PutItem, ctx, in, o...)
}
func (s *serialDynamo) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return serial(s, s.api.UpdateItem, ctx, in, o...)
}
func (s *serialDynamo) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, o ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	return serial(s, s.api.TransactWriteItems, ctx, in, o...)
}
func (s *serialDynamo) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	return serial(s, s.api.Query, ctx, in, o...)
}
func (s *serialDynamo) Scan(ctx context.Context, in *dynamodb.ScanInput, o ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	return serial(s, s.api.Scan, ctx, in, o...)
}
func (s *serialDynamo) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	return serial(s, s.api.BatchWriteItem, ctx, in, o...)
}

// awsEnv is the AWS shape on moto: the apply Handler and the upload Flusher
// over one DynamoDB ledger table (ledger, names, leases) and its stream.
type awsEnv struct {
	*env
	table   string
	dynamo  ledger.DynamoAPI
	ledger  *ledger.Dynamo
	leases  *ledger.DynamoLeases
	flusher *upload.Flusher
	stream  *awstest.Stream
}

func newAWSEnv(t *testing.T) *awsEnv { return newAWSEnvWith(t, envConfig{}) }

// newAWSEnvWith is newAWSEnv with cfg (its ledger and names are set here).
func newAWSEnvWith(t *testing.T, cfg envConfig) *awsEnv {
	t.Helper()
	a := &awsEnv{table: moto.UniqueName("ledger")}
	if err := ledger.CreateDynamoTable(t.Context(), moto.DynamoDB(), a.table); err != nil {
		t.Fatal(err)
	}
	a.dynamo = &serialDynamo{api: moto.DynamoDB()}
	opts := ledger.DynamoOptions{Client: a.dynamo, Table: a.table}
	var err error
	if a.ledger, err = ledger.NewDynamo(opts); err != nil {
		t.Fatal(err)
	}
	names, err := ledger.NewDynamoNames(opts)
	if err != nil {
		t.Fatal(err)
	}
	if a.leases, err = ledger.NewDynamoLeases(opts); err != nil {
		t.Fatal(err)
	}
	cfg.ledger = func(ledger.Store) ledger.Store { return a.ledger }
	cfg.names = func(ledger.Names) ledger.Names { return names }
	a.env = newEnv(t, cfg)
	a.flusher = a.newFlusher(t, a.h)
	a.stream = moto.DynamoDBStream(t, a.table)
	return a
}

// newFlusher is another upload function container: its own Handler (own
// list cache) on the same client, table and leases.
func (a *awsEnv) newFlusher(t *testing.T, h *upload.Handler) *upload.Flusher {
	t.Helper()
	if h == nil {
		names, _ := ledger.NewDynamoNames(ledger.DynamoOptions{Client: a.dynamo, Table: a.table})
		var err error
		h, err = upload.New(upload.Options{Client: a.client, Ledger: a.ledger, Names: names, Logger: slog.New(slog.NewJSONHandler(a.logs, nil)), Metrics: io.Discard})
		if err != nil {
			t.Fatal(err)
		}
	}
	f, err := upload.NewFlusher(upload.FlusherOptions{Handler: h, Leases: a.leases})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// flips is the event source filter (ledger.DynamoStreamFilter): only the
// items whose new image has f (rows that flipped, lists whose Apply ended).
func flips(r events.DynamoDBEventRecord) bool {
	_, ok := r.Change.NewImage["f"]
	return ok
}

// applyBatch runs the apply function on ev and fails on a failed message.
func (a *awsEnv) applyBatch(t *testing.T, ev events.SQSEvent) {
	t.Helper()
	resp, err := a.h.HandleApply(t.Context(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("HandleApply = %+v, %v; want no failures", resp, err)
	}
}

func failedSeqs(resp events.DynamoDBEventResponse) []string {
	out := []string{}
	for _, f := range resp.BatchItemFailures {
		out = append(out, f.ItemIdentifier)
	}
	return out
}

func TestStreamFlushesTheListsOfItsRecords(t *testing.T) {
	a := newAWSEnv(t)
	aud, other := ref("aaaa"), ref("bbbb")
	adds, maids := hashes("a", 3), hashes("m", 2)
	a.applyBatch(t, event(
		audienceMsg(t, aud, "VIP buyers", ""),
		changesMsg(t, changes(aud, audience.ListEmail, audience.OpAdd, t0, adds...)...),
		changesMsg(t, changes(other, audience.ListMAID, audience.OpAdd, t0, maids...)...),
	))
	ev := a.stream.Next(t, flips)
	// Five flips, and the end of the Apply in each of the two lists.
	ends := 0
	for _, r := range ev.Records {
		if r.Change.Keys["pk"].String() == "lists" {
			ends++
		}
	}
	if len(ev.Records) != 7 || ends != 2 {
		t.Fatalf("the stream passed %d records, %d of them list items; want 5 flips and 2 list items", len(ev.Records), ends)
	}
	resp, err := a.flusher.HandleStream(t.Context(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("HandleStream = %+v, %v; want no failures", resp, err)
	}
	want := map[string][]string{"pinlist ups:aaaa EMAIL": sorted(adds), "pinlist ups:bbbb MAID": sorted(maids)}
	if diff := cmp.Diff(want, a.membership()); diff != "" {
		t.Errorf("membership (-want +got):\n%s", diff)
	}
	if !slices.ContainsFunc(a.sim.State().AdAccounts[adAccount].CustomerLists, func(l pinterestsim.CustomerListState) bool {
		return strings.Contains(l.Name, "VIP buyers")
	}) {
		t.Errorf("the list is not named after the audience's name from the name store")
	}
	if m := a.lastEMF(); m["RecordsSent"] != 5 || m["RateLimited"] != 0 {
		t.Errorf("metrics %v: want 5 records sent, none rate limited", m)
	}

	// What the flush wrote (MarkSent, counters, leases) passes no filter;
	// delivered unfiltered (no filter, or a table written by hand) it is
	// skipped or finds nothing pending.
	all := a.stream.Next(t, nil)
	if n := len(slices.DeleteFunc(slices.Clone(all.Records), func(r events.DynamoDBEventRecord) bool { return !flips(r) })); n != 0 {
		t.Errorf("the flush's own writes passed the filter: %d records", n)
	}
	before := len(a.reqs.ok())
	resp, err = a.flusher.HandleStream(t.Context(), all)
	if err != nil || len(resp.BatchItemFailures) != 0 || len(a.reqs.ok()) != before {
		t.Errorf("an unfiltered redelivery: %+v, %v, %d new writes; want nothing", resp, err, len(a.reqs.ok())-before)
	}
}

func TestStreamReportsOnlyRetryableListFailures(t *testing.T) {
	for _, tt := range []struct {
		name      string
		status    int
		retryable bool
	}{
		{"503 after the client's retries", http.StatusServiceUnavailable, true},
		{"429 after the client's retries", http.StatusTooManyRequests, true},
		{"400", http.StatusBadRequest, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := newAWSEnv(t)
			good, bad := ref("aaaa"), ref("bbbb")
			a.applyBatch(t, event(
				changesMsg(t, changes(good, audience.ListEmail, audience.OpAdd, t0, hashes("g0", 1)...)...),
				changesMsg(t, changes(bad, audience.ListEmail, audience.OpAdd, t0, hashes("b0", 1)...)...),
			))
			if resp, _ := a.flusher.HandleStream(t.Context(), a.stream.Next(t, flips)); len(resp.BatchItemFailures) != 0 {
				t.Fatalf("setup: %+v", resp)
			}
			a.sim.SetFault(pinterestsim.RouteCustomerListsUpdate, pinterestsim.Fault{
				FailNext: 1000, FailStatus: tt.status, Match: pathEndsWith(a.listID("pinlist ups:bbbb EMAIL")),
			})
			a.applyBatch(t, event(
				changesMsg(t, changes(good, audience.ListEmail, audience.OpAdd, t0, hashes("g1", 2)...)...),
				changesMsg(t, changes(bad, audience.ListEmail, audience.OpAdd, t0, hashes("b1", 2)...)...),
			))
			ev := a.stream.Next(t, flips)
			var badSeqs []string
			for _, r := range ev.Records {
				if strings.HasPrefix(r.Change.Keys["sk"].String(), "ups:bbbb/") {
					badSeqs = append(badSeqs, r.Change.SequenceNumber)
				}
			}
			resp, err := a.flusher.HandleStream(t.Context(), ev)
			if err != nil {
				t.Fatalf("HandleStream error %v: it reports failures per record", err)
			}
			want := []string{}
			if tt.retryable {
				want = badSeqs
			}
			if diff := cmp.Diff(sorted(want), sorted(failedSeqs(resp))); diff != "" {
				t.Errorf("failed records (-want +got):\n%s", diff)
			}
			if tt.status == http.StatusTooManyRequests && a.lastEMF()["RateLimited"] == 0 {
				t.Errorf("metrics %v: the 429s are not counted in RateLimited", a.lastEMF())
			}

			// The rows stay pending either way: the sweep sends them once
			// the list recovers.
			a.sim.ClearFaults()
			s, err := a.flusher.HandleSchedule(t.Context(), events.EventBridgeEvent{DetailType: "Scheduled Event"})
			if err != nil || s.RecordsSent != 2 || s.Lists != 1 {
				t.Fatalf("sweep = %+v, %v; want b's 2 records from 1 list", s, err)
			}
			if got := a.membership()["pinlist ups:bbbb EMAIL"]; len(got) != 3 {
				t.Errorf("b's list has %d members after the sweep, want 3", len(got))
			}
		})
	}
}

// TestConcurrentFlushersSendEachRowOnce races two upload containers (their
// own list caches) over the same stream batch and a sweep: the per-list
// leases keep them from sending a row twice or creating a list twice.
func TestConcurrentFlushersSendEachRowOnce(t *testing.T) {
	a := newAWSEnv(t)
	var all []string
	var msgs []sqsMsg
	for _, id := range []string{"aaaa", "bbbb", "cccc", "dddd"} {
		hs := hashes(id, 40)
		all = append(all, hs...)
		msgs = append(msgs, changesMsg(t, changes(ref(id), audience.ListEmail, audience.OpAdd, t0, hs...)...))
	}
	a.applyBatch(t, event(msgs...))
	ev := a.stream.Next(t, flips)
	second := a.newFlusher(t, nil)
	var wg sync.WaitGroup
	for _, f := range []*upload.Flusher{a.flusher, second} {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := f.HandleStream(t.Context(), ev); err != nil {
				t.Errorf("HandleStream: %v", err)
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := f.HandleSchedule(t.Context(), events.EventBridgeEvent{}); err != nil {
				t.Errorf("HandleSchedule: %v", err)
			}
		}()
	}
	wg.Wait()
	// A last sweep sends whatever a skipped lease left.
	if _, err := a.flusher.HandleSchedule(t.Context(), events.EventBridgeEvent{}); err != nil {
		t.Fatal(err)
	}
	sentOnce(t, a.reqs.ok(), all)
	creates := map[string]int{}
	for _, w := range a.reqs.all() {
		if w.create {
			creates[stable(w.name)]++
		}
	}
	for name, n := range creates {
		if n != 1 {
			t.Errorf("list %s created %d times, want once", name, n)
		}
	}
	if len(creates) != 4 {
		t.Errorf("%d lists created, want 4", len(creates))
	}
}

// TestHandleTellsTheEventShapesApart runs the upload function's one entry
// point the way lambda.Start does, with the repository's sample events.
func TestHandleTellsTheEventShapesApart(t *testing.T) {
	a := newAWSEnv(t)
	invoke := lambda.NewHandler(a.flusher.Handle)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "..", "events", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name    string
		payload []byte
		want    string // a JSON key the answer has; "" when it must fail
	}{
		{"stream batch", read("dynamodb-stream.json"), "batchItemFailures"},
		{"schedule", read("schedule-sweep.json"), "lists"},
		{"an SQS batch is not the upload function's", read("sqs-standard-batch.json"), ""},
		{"an empty object", []byte(`{}`), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := invoke.Invoke(t.Context(), tt.payload)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("answered %s, want an error", out)
				}
				return
			}
			var m map[string]any
			if err != nil || json.Unmarshal(out, &m) != nil || m[tt.want] == nil {
				t.Fatalf("answered %s, %v; want an object with %q", out, err, tt.want)
			}
		})
	}
}

func TestNewFlusherChecksItsOptions(t *testing.T) {
	e := newEnv(t, envConfig{})
	leases, _ := ledger.NewDynamoLeases(ledger.DynamoOptions{Client: &serialDynamo{}, Table: "t"})
	tests := []struct {
		name  string
		opts  upload.FlusherOptions
		field string
	}{
		{"no handler", upload.FlusherOptions{Leases: leases}, "Handler"},
		{"no leases", upload.FlusherOptions{Handler: e.h}, "Leases"},
		{"negative lease TTL", upload.FlusherOptions{Handler: e.h, Leases: leases, LeaseTTL: -1}, "LeaseTTL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := upload.NewFlusher(tt.opts); err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("NewFlusher error %v, want one naming %s", err, tt.field)
			}
		})
	}
}

// TestApplyOnlyHandlerRecordsAndNeverCallsPinterest is the apply function's
// Handler: it records the sample standard-queue batch, and a flush by
// mistake fails saying why instead of pretending.
func TestApplyOnlyHandlerRecordsAndNeverCallsPinterest(t *testing.T) {
	_, store, names := openLedger(t)
	h, err := upload.New(upload.Options{Client: upload.ApplyOnly{}, Ledger: store, Names: names, Metrics: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := os.ReadFile(filepath.Join("..", "..", "events", "sqs-standard-batch.json"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := lambda.NewHandler(h.HandleApply).Invoke(t.Context(), payload)
	if err != nil || string(out) != `{"batchItemFailures":[]}` {
		t.Fatalf("HandleApply = %s, %v; want no failures", out, err)
	}
	lists, err := store.PendingLists(t.Context())
	if err != nil || len(lists) == 0 {
		t.Fatalf("PendingLists = %v, %v; want the sample's lists", lists, err)
	}
	if _, err := h.FlushAll(t.Context()); err == nil || !strings.Contains(err.Error(), "only applies") {
		t.Fatalf("FlushAll on the apply-only handler = %v, want an error saying it only applies", err)
	}
}

// TestUpgradeFromTheFIFOStackLosesNothing is docs/DEPLOY.md's upgrade: the
// legacy FIFO queue (and its dead-letter queue) still hold messages the old
// ingest enqueued; `pinlist redrive --queue-url <changes queue> --dlq-url
// <legacy queue>` (queue.SQS.Redrive) moves them into the standard changes
// queue, and the apply function records every change in the ledger, where
// the stream and the sweep pick them up.
func TestUpgradeFromTheFIFOStackLosesNothing(t *testing.T) {
	a := newAWSEnv(t)
	ctx := t.Context()
	legacy, legacyDLQ := moto.CreateFIFOQueueWithDLQ(t, "legacy", 5, 30*time.Second)
	changesURL, _ := moto.CreateQueueWithDLQ(t, "changes", 5, 30*time.Second)

	aud := ref("aaaa")
	inQueue, inDLQ := hashes("q", 12), hashes("d", 3)
	old := func(url string, msgs ...sqsMsg) {
		t.Helper()
		var out []queue.Outgoing
		for i, m := range msgs {
			out = append(out, queue.Outgoing{GroupID: m.group, DedupID: url[len(url)-8:] + strconv.Itoa(i), Body: []byte(m.body)})
		}
		if failed, err := queue.NewSQS(moto.SQS(), url).SendBatch(ctx, out); err != nil || failed != nil {
			t.Fatalf("fill the legacy queue: %v, %v", failed, err)
		}
	}
	old(legacy,
		audienceMsg(t, aud, "VIP buyers", "from before the upgrade"),
		changesMsg(t, changes(aud, audience.ListEmail, audience.OpAdd, t0, inQueue[:6]...)...),
		changesMsg(t, changes(aud, audience.ListEmail, audience.OpAdd, t0, inQueue[6:]...)...),
	)
	old(legacyDLQ, changesMsg(t, changes(aud, audience.ListEmail, audience.OpAdd, t0, inDLQ...)...))

	target := queue.NewSQS(moto.SQS(), changesURL)
	moved := 0
	for _, from := range []string{legacy, legacyDLQ} {
		n, err := target.Redrive(ctx, from, 0)
		if err != nil {
			t.Fatalf("redrive from %s: %v", from, err)
		}
		moved += n
	}
	if moved != 4 {
		t.Fatalf("moved %d messages, want 4", moved)
	}
	for {
		ev := moto.ReceiveEvent(t, changesURL, 10)
		if len(ev.Records) == 0 {
			break
		}
		resp, err := a.h.HandleApply(ctx, ev)
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("HandleApply = %+v, %v", resp, err)
		}
		moto.Settle(t, changesURL, ev, resp)
	}
	for _, url := range []string{legacy, legacyDLQ} {
		if d, err := queue.NewSQS(moto.SQS(), url).Depth(ctx); err != nil || d.Visible+d.InFlight != 0 {
			t.Errorf("legacy queue %s after the move: %+v, %v; want empty", url, d, err)
		}
	}
	list := ledger.List{Audience: aud, Type: audience.ListEmail}
	for _, h := range slices.Concat(inQueue, inDLQ) {
		row, ok, err := a.ledger.Get(ctx, list, h)
		if err != nil || !ok || row.Want != ledger.In {
			t.Errorf("ledger row %.8s…: %+v, %v, %v; want In", h, row, ok, err)
		}
	}
	if _, err := a.flusher.HandleSchedule(ctx, events.EventBridgeEvent{}); err != nil {
		t.Fatal(err)
	}
	if got := a.membership()["pinlist ups:aaaa EMAIL"]; len(got) != 15 {
		t.Errorf("the list has %d members after the sweep, want 15", len(got))
	}
}

// TestStreamStopsOnATokenPinterestRefuses: a token Pinterest refuses even
// after a reload stops the flush of every list after the first call, and
// reports no record (a redelivery would meet the same token; the rows wait
// for the sweep once a new token is stored). A deadline that is already
// near stops it too, and that is worth a redelivery.
func TestStreamStopsOnATokenPinterestRefuses(t *testing.T) {
	a := newAWSEnv(t)
	a.applyBatch(t, event(
		changesMsg(t, changes(ref("aaaa"), audience.ListEmail, audience.OpAdd, t0, hashes("x", 1)...)...),
		changesMsg(t, changes(ref("bbbb"), audience.ListEmail, audience.OpAdd, t0, hashes("y", 1)...)...),
	))
	ev := a.stream.Next(t, flips)

	ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	resp, err := a.flusher.HandleStream(ctx, ev)
	cancel()
	if err != nil || len(resp.BatchItemFailures) != len(ev.Records) {
		t.Fatalf("past the deadline: %d of %d records failed, %v; want all (deliver again)", len(resp.BatchItemFailures), len(ev.Records), err)
	}

	a.sim.ExpireAccessTokens()
	resp, err = a.flusher.HandleStream(t.Context(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("refused token: %+v, %v; want no record failed", resp, err)
	}
	if got := sumCalls(a.sim.Calls()); got != 2 {
		t.Errorf("%d Pinterest calls, want 2 (one, and one after reloading the token); the second list must not try", got)
	}
	if m := a.lastEMF(); m["ListFailures"] != 2 {
		t.Errorf("metrics %v: want both lists counted as failed or not flushed", m)
	}
	lists, err := a.ledger.PendingLists(t.Context())
	if err != nil || len(lists) != 2 {
		t.Errorf("pending lists %v, %v; want both still pending", lists, err)
	}
}
