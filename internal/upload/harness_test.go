package upload_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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
	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/pinterest"
	"github.com/pinlist/pinlist/internal/pinterestsim"
	"github.com/pinlist/pinlist/internal/token"
	"github.com/pinlist/pinlist/internal/upload"
	"github.com/pinlist/pinlist/internal/wire"
	"github.com/pinlist/pinlist/internal/wire/wiretest"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
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

// env is one upload handler wired to an in-process simulator and a SQLite
// ledger in a temporary directory.
type env struct {
	t       testing.TB
	sim     *pinterestsim.Server
	url     string    // the simulator's API base URL
	store   *memStore // nil when envConfig.store was given
	client  *pinterest.Client
	db      *sql.DB
	ledger  *ledger.SQLite
	names   *ledger.SQLiteNames
	h       *upload.Handler
	reqs    *requestLog // the customer list writes that reached the simulator
	metrics *syncBuffer
	logs    *syncBuffer
	opts    upload.Options // what h was made with
}

// syncBuffer is output a test reads while it is being written.
type syncBuffer = fake.Buffer

// envConfig tunes newEnv.
type envConfig struct {
	maxRecords int
	simMax     int
	wrap       func(http.Handler) http.Handler // around the simulator
	store      token.Store                     // nil: a memStore (env.store)
	// ledger and names wrap the SQLite stores the handler is given (to
	// inject faults); nil gives them as they are.
	ledger func(ledger.Store) ledger.Store
	names  func(ledger.Names) ledger.Names
	margin time.Duration
	now    func() time.Time
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
	reqs := &requestLog{}
	var handler http.Handler = reqs.wrap(sim)
	if cfg.wrap != nil {
		handler = cfg.wrap(handler)
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
	e := &env{t: tb, sim: sim, url: srv.URL + "/v5", reqs: reqs, metrics: &syncBuffer{}, logs: &syncBuffer{}}
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
	e.db, e.ledger, e.names = openLedger(tb)
	var led ledger.Store = e.ledger
	if cfg.ledger != nil {
		led = cfg.ledger(led)
	}
	var names ledger.Names = e.names
	if cfg.names != nil {
		names = cfg.names(names)
	}
	e.opts = upload.Options{
		Client:               e.client,
		Ledger:               led,
		Names:                names,
		AccessToken:          src,
		MaxRecordsPerRequest: cfg.maxRecords,
		DeadlineMargin:       cfg.margin,
		ConnectionName:       "test-connection",
		Logger:               slog.New(slog.NewJSONHandler(e.logs, nil)),
		Metrics:              e.metrics,
		Now:                  cfg.now,
	}
	e.h, err = upload.New(e.opts)
	if err != nil {
		tb.Fatalf("new upload handler: %v", err)
	}
	return e
}

// openLedger opens a SQLite database in a temporary directory, as the local
// runner does, with the ledger and the name store in it.
func openLedger(tb testing.TB) (*sql.DB, *ledger.SQLite, *ledger.SQLiteNames) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "pinlist.db")
	db, err := sql.Open("sqlite", path+"?_busy_timeout=10000&_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate")
	if err != nil {
		tb.Fatalf("open the ledger database: %v", err)
	}
	db.SetMaxOpenConns(1)
	tb.Cleanup(func() { _ = db.Close() })
	led, err := ledger.NewSQLite(context.Background(), ledger.SQLiteOptions{DB: db})
	if err != nil {
		tb.Fatalf("new SQLite ledger: %v", err)
	}
	names, err := ledger.NewSQLiteNames(context.Background(), ledger.SQLiteOptions{DB: db})
	if err != nil {
		tb.Fatalf("new SQLite name store: %v", err)
	}
	return db, led, names
}

// listWrite is one customer list create or update that reached the simulator.
type listWrite struct {
	create  bool
	name    string // create: the list's name
	listID  string // update: the list's ID
	op      string // update: ADD or REMOVE
	records []string
	status  int
}

// requestLog records the customer list writes that reach the simulator.
type requestLog struct {
	mu     sync.Mutex
	writes []listWrite
}

func (l *requestLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		isCreate := r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/customer_lists")
		isUpdate := r.Method == http.MethodPatch && strings.Contains(r.URL.Path, "/customer_lists/")
		if !isCreate && !isUpdate {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		var in struct {
			Name          string `json:"name"`
			Records       string `json:"records"`
			OperationType string `json:"operation_type"`
		}
		_ = json.Unmarshal(body, &in)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		lw := listWrite{create: isCreate, name: in.Name, op: in.OperationType, status: rec.status}
		if isUpdate {
			lw.listID = r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		}
		if in.Records != "" {
			lw.records = strings.Split(in.Records, ",")
		}
		l.mu.Lock()
		l.writes = append(l.writes, lw)
		l.mu.Unlock()
	})
}

// ok returns the successful writes so far.
func (l *requestLog) ok() []listWrite {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []listWrite
	for _, w := range l.writes {
		if w.status < 300 {
			out = append(out, w)
		}
	}
	return out
}

// all returns every write so far, failed ones too.
func (l *requestLog) all() []listWrite {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.writes)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// newTokenSource is the token source the handler reloads on a 401.
func newTokenSource(store token.Store) *token.AccessTokenSource {
	return token.NewAccessTokenSource(store)
}

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
	packed, err := wiretest.Pack(cs, 1<<20)
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
	body, err := wire.EncodeAudience(a, name, description)
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

// apply records ev in the ledger without flushing and returns the failed
// message IDs.
func (e *env) apply(ctx context.Context, ev events.SQSEvent) []string {
	e.tb().Helper()
	failed := []string{}
	for _, f := range e.h.Apply(ctx, ev.Records).Failed {
		failed = append(failed, f.ID)
	}
	return failed
}

// flushAll flushes everything pending and fails the test on an error.
func (e *env) flushAll(ctx context.Context) upload.Flushed {
	e.tb().Helper()
	f, err := e.h.FlushAll(ctx)
	if err != nil {
		e.tb().Fatalf("FlushAll: %v", err)
	}
	return f
}

// pending counts the ledger's pending rows of a list, per op.
func (e *env) pending(a audience.Ref, lt audience.ListType) map[audience.Op]int {
	e.tb().Helper()
	out := map[audience.Op]int{}
	for _, op := range []audience.Op{audience.OpAdd, audience.OpRemove} {
		rows, err := e.ledger.Pending(context.Background(), ledger.List{Audience: a, Type: lt}, op, 1<<20)
		if err != nil {
			e.tb().Fatalf("read pending rows: %v", err)
		}
		if len(rows) > 0 {
			out[op] = len(rows)
		}
	}
	return out
}

// pendingLists is the ledger's lists with pending rows, by key.
func (e *env) pendingLists() []string {
	e.tb().Helper()
	lists, err := e.ledger.PendingLists(context.Background())
	if err != nil {
		e.tb().Fatalf("read pending lists: %v", err)
	}
	out := []string{}
	for _, l := range lists {
		out = append(out, l.Key())
	}
	slices.Sort(out)
	return out
}

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
	for name, v := range recs[len(recs)-1] {
		if f, ok := v.(float64); ok {
			out[name] = f
		}
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
