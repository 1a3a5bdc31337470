package upload_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"golang.org/x/time/rate"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/awstest"
	"github.com/pinlist/pinlist/internal/fake"
	"github.com/pinlist/pinlist/internal/pinterest"
	"github.com/pinlist/pinlist/internal/pinterestsim"
	"github.com/pinlist/pinlist/internal/token"
	"github.com/pinlist/pinlist/internal/upload"
)

// moto is the moto_server of this test binary (the pipeline tests use it).
var moto *awstest.Moto

func TestMain(m *testing.M) { os.Exit(awstest.Main(m, &moto)) }

const (
	adAccount    = "549755885175"
	clientID     = "1484362"
	clientSecret = "app-secret"
)

var scopes = []string{"ads:read", "ads:write"}

// memStore is a token.Store in memory that counts loads.
type memStore struct {
	mu    sync.Mutex
	tok   token.Token
	loads int
}

func (s *memStore) Load(context.Context) (token.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loads++
	return s.tok, nil
}

func (s *memStore) Save(_ context.Context, t token.Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tok = t
	return nil
}

func (s *memStore) set(access string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tok.AccessToken = access
	s.tok.AccessTokenExpiresAt = time.Now().Add(24 * time.Hour)
}

func (s *memStore) loadCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loads
}

// env is one upload handler wired to an in-process simulator.
type env struct {
	t       testing.TB
	sim     *pinterestsim.Server
	url     string    // the simulator's API base URL
	store   *memStore // nil when envConfig.store was given
	client  *pinterest.Client
	h       *upload.Handler
	metrics *syncBuffer
	logs    *syncBuffer
}

// syncBuffer is output a test reads while it is being written.
type syncBuffer = fake.Buffer

// envConfig tunes newEnv.
type envConfig struct {
	maxRecords int
	simMax     int
	wrap       func(http.Handler) http.Handler // around the simulator
	store      token.Store                     // nil: a memStore (env.store)
	opts       []upload.Option
}

// fastRetry keeps retries bounded and quick in tests.
var fastRetry = pinterest.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}

func newEnv(tb testing.TB, cfg envConfig) *env {
	tb.Helper()
	sim, err := pinterestsim.New(pinterestsim.Options{
		AdAccounts:           []string{adAccount},
		Clients:              map[string]string{clientID: clientSecret},
		MaxRecordsPerRequest: cfg.simMax,
		Seed:                 1,
	})
	if err != nil {
		tb.Fatalf("new simulator: %v", err)
	}
	var handler http.Handler = sim
	if cfg.wrap != nil {
		handler = cfg.wrap(sim)
	}
	srv := httptest.NewServer(handler)
	tb.Cleanup(srv.Close)
	access, refresh := sim.IssueToken(clientID, scopes)
	tok := token.Token{
		ClientID: clientID, ClientSecret: clientSecret,
		AccessToken: access, RefreshToken: refresh,
		AccessTokenExpiresAt:  time.Now().Add(24 * time.Hour),
		RefreshTokenExpiresAt: time.Now().Add(48 * time.Hour),
		Scope:                 strings.Join(scopes, ","),
	}
	e := &env{t: tb, sim: sim, url: srv.URL + "/v5", metrics: &syncBuffer{}, logs: &syncBuffer{}}
	var store token.Store = cfg.store
	if store == nil {
		e.store = &memStore{}
		store = e.store
	}
	if err := store.Save(context.Background(), tok); err != nil {
		tb.Fatalf("store the token: %v", err)
	}
	src := newTokenSource(store)
	e.client, err = pinterest.New(pinterest.Options{
		AdAccountID: adAccount,
		BaseURL:     e.url,
		TokenSource: src,
		HTTPClient:  srv.Client(),
		WriteRate:   rate.Inf,
		Retry:       fastRetry,
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		tb.Fatalf("new pinterest client: %v", err)
	}
	opts := []upload.Option{
		upload.WithTokenInvalidator(src),
		upload.WithMetricsOutput(e.metrics),
		upload.WithLogger(slog.New(slog.NewJSONHandler(e.logs, nil))),
		upload.WithConnectionName("test-connection"),
	}
	if cfg.maxRecords > 0 {
		opts = append(opts, upload.WithMaxRecordsPerRequest(cfg.maxRecords))
	}
	e.h, err = upload.New(e.client, append(opts, cfg.opts...)...)
	if err != nil {
		tb.Fatalf("new upload handler: %v", err)
	}
	return e
}

// newTokenSource is the token source the handler reloads on a 401.
func newTokenSource(store token.Store) *token.Source { return token.NewSource(store) }

// hashOf is the identifier hash of a made-up person.
func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// hashes returns n made-up hashes with the given prefix.
func hashes(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = hashOf(prefix + strconv.Itoa(i))
	}
	return out
}

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func ref(id string) audience.Ref { return audience.Ref{Namespace: "ups", ID: id} }

// changes makes one change per hash.
func changes(a audience.Ref, lt audience.ListType, op audience.Op, at time.Time, hs ...string) []audience.Change {
	out := make([]audience.Change, len(hs))
	for i, h := range hs {
		out[i] = audience.Change{Audience: a, List: lt, Op: op, Hash: h, EventTime: at}
	}
	return out
}

// sqsMsg is one record of a test event.
type sqsMsg struct {
	group string // MessageGroupId; "" leaves the attribute out
	body  string
}

// changesBody encodes changes (one audience) as exactly one message body.
func changesBody(tb testing.TB, cs []audience.Change) string {
	tb.Helper()
	packed, err := audience.PackMessages(cs, 1<<20)
	if err != nil {
		tb.Fatalf("pack messages: %v", err)
	}
	if len(packed) != 1 {
		tb.Fatalf("pack messages: %d bodies, want 1", len(packed))
	}
	return string(packed[0].Body)
}

func changesMsg(tb testing.TB, cs ...audience.Change) sqsMsg {
	tb.Helper()
	return sqsMsg{group: cs[0].Audience.Key(), body: changesBody(tb, cs)}
}

func audienceMsg(tb testing.TB, a audience.Ref, name, description string) sqsMsg {
	tb.Helper()
	body, err := audience.NewAudienceMessage(a, name, description)
	if err != nil {
		tb.Fatalf("audience message: %v", err)
	}
	return sqsMsg{group: a.Key(), body: string(body)}
}

// event builds an SQS FIFO event; message IDs are "m0", "m1", ...
func event(msgs ...sqsMsg) events.SQSEvent {
	var ev events.SQSEvent
	for i, m := range msgs {
		attrs := map[string]string{
			"ApproximateReceiveCount": "1",
			"SequenceNumber":          strconv.Itoa(18_000_000 + i),
		}
		if m.group != "" {
			attrs["MessageGroupId"] = m.group
		}
		ev.Records = append(ev.Records, events.SQSMessage{
			MessageId:      "m" + strconv.Itoa(i),
			ReceiptHandle:  "rh" + strconv.Itoa(i),
			Body:           m.body,
			Attributes:     attrs,
			EventSource:    "aws:sqs",
			EventSourceARN: "arn:aws:sqs:us-east-1:123456789012:pinlist.fifo",
		})
	}
	return ev
}

// handle runs the handler on ev and returns the failed message IDs.
func (e *env) handle(ctx context.Context, ev events.SQSEvent) []string {
	e.tb().Helper()
	resp, err := e.h.HandleSQS(ctx, ev)
	if err != nil {
		e.tb().Fatalf("HandleSQS returned an error (it must report failures per item): %v", err)
	}
	failed := []string{}
	for _, f := range resp.BatchItemFailures {
		failed = append(failed, f.ItemIdentifier)
	}
	return failed
}

func (e *env) tb() testing.TB { return e.t }

// membership is the simulator's pinlist lists: stable list name → sorted records.
func (e *env) membership() map[string][]string {
	out := map[string][]string{}
	for _, l := range e.sim.State().AdAccounts[adAccount].CustomerLists {
		out[stable(l.Name)] = append([]string{}, l.Records...)
	}
	return out
}

// stable cuts a list name to its stable part ("pinlist <key> <TYPE>").
func stable(name string) string {
	if i := strings.Index(name, " - "); i >= 0 {
		return name[:i]
	}
	return name
}

// listID returns the simulator's ID of the list whose name starts with prefix.
func (e *env) listID(prefix string) string {
	e.tb().Helper()
	for _, l := range e.sim.State().AdAccounts[adAccount].CustomerLists {
		if stable(l.Name) == prefix {
			return l.ID
		}
	}
	e.tb().Fatalf("no customer list named %q in the simulator", prefix)
	return ""
}

// metrics returns the EMF records written so far, decoded.
func (e *env) emf() []map[string]any {
	e.tb().Helper()
	var out []map[string]any
	for line := range strings.Lines(e.metrics.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			e.tb().Fatalf("metrics line %q is not JSON: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// lastEMF returns the numbers of the last EMF record.
func (e *env) lastEMF() map[string]float64 {
	e.tb().Helper()
	recs := e.emf()
	if len(recs) == 0 {
		e.tb().Fatal("no metrics record written")
	}
	out := map[string]float64{}
	for _, name := range []string{"ChangesApplied", "ListsCreated", "APICalls", "Retries", "Failures"} {
		v, ok := recs[len(recs)-1][name].(float64)
		if !ok {
			e.tb().Fatalf("metrics record lacks %s: %v", name, recs[len(recs)-1])
		}
		out[name] = v
	}
	return out
}

// sorted returns a sorted copy.
func sorted(xs []string) []string {
	out := slices.Clone(xs)
	slices.Sort(out)
	return out
}

// pathEndsWith matches requests for one customer list.
func pathEndsWith(id string) func(*http.Request) bool {
	return func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/customer_lists/"+id) }
}
