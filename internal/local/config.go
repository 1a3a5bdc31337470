package local

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"golang.org/x/time/rate"

	"github.com/pinlist/pinlist/internal/config"
	"github.com/pinlist/pinlist/internal/pinterestsim"
	"github.com/pinlist/pinlist/internal/queue"
)

// Defaults of the zero Config fields.
const (
	DefaultAddr          = config.DefaultAddr
	DefaultSimAddr       = "127.0.0.1:8081"
	DefaultDataDir       = config.DefaultDataDir
	DefaultAdAccountID   = "549755885175" // the simulator's ad account (pinlist sim uses the same)
	DefaultWorkers       = 4
	DefaultRetryBase     = 2 * time.Second
	DefaultRetryMax      = time.Minute
	DefaultPollInterval  = 250 * time.Millisecond
	DefaultBatchSize     = 100
	DefaultBatchWindow   = time.Second
	DefaultProgressEvery = 5 * time.Second
	DefaultRefreshEvery  = time.Hour
	DefaultMaintainEvery = time.Minute
	DefaultShutdownGrace = 10 * time.Second

	// NoSimWriteLimit as Config.SimWriteLimit runs the built-in simulator
	// without a write budget.
	NoSimWriteLimit = -1

	// NoBatchWindow as Config.BatchWindow delivers an audience's messages
	// as soon as no batch of it is in flight, as SQS FIFO does.
	NoBatchWindow time.Duration = -1

	// SimClientID and SimClientSecret are the OAuth app the built-in
	// simulator accepts; the provisioned token file names it, so the
	// refresher can refresh against the simulator like against Pinterest.
	SimClientID     = "pinlist-local"
	SimClientSecret = "pinlist-local-secret"
)

// Names of the files in the data directory.
const (
	QueueFile       = "queue.db"
	TokenFile       = "token.json"
	IngestTokenFile = "ingest-token"
)

// Config configures the local stack. The zero value of every field means its
// default; ConfigFrom fills one from pinlist's environment configuration.
type Config struct {
	// Addr is where the ingest routes listen (127.0.0.1:0 picks a free port).
	Addr string
	// SimAddr is where the built-in simulator listens when PinterestURL is
	// empty.
	SimAddr string
	// PinterestURL is the Pinterest API v5 base URL (the real API or a
	// separate `pinlist sim`); empty runs the built-in simulator. With a URL,
	// the token file must already hold a token (pinlist connect).
	PinterestURL string
	// AdAccountID is the ad account the lists live in: default the token
	// file's ad account, else DefaultAdAccountID with the simulator.
	AdAccountID string
	// DataDir holds the queue database and the token files (created 0700).
	DataDir string
	// IngestToken is the bearer token callers present; empty: read from
	// DataDir/ingest-token, or generated and stored there on first start.
	IngestToken string
	// RefreshBefore: the access token is refreshed when it expires within
	// this window (PINLIST_REFRESH_BEFORE).
	RefreshBefore time.Duration
	// MaxRecordsPerRequest bounds the records of one Pinterest call.
	MaxRecordsPerRequest int
	// ErasureGuard is how long an erased identifier's hash is kept in the
	// ledger (PINLIST_ERASURE_GUARD; default config.DefaultErasureGuard).
	ErasureGuard time.Duration
	// ConnectionName names the connection in logs and alerts.
	ConnectionName string
	// Workers is how many audiences are uploaded in parallel.
	Workers int
	// WriteRate is the pace of Pinterest write calls per second the client
	// starts at and never exceeds; it slows down on 429s and X-RateLimit
	// headers. Zero: the Pinterest client's default (Pinterest's budget,
	// pinterest.DefaultWriteRate); rate.Inf: no pacing at all.
	WriteRate rate.Limit
	// SimWriteLimit is the built-in simulator's write budget, calls a
	// minute per ad account: zero is Pinterest's
	// (pinterestsim.PinterestWriteLimit), so the quick start meets the
	// limits Pinterest has; NoSimWriteLimit is none.
	SimWriteLimit int
	// VisibilityTimeout and MaxReceive are the queue's (queue.LocalOptions).
	VisibilityTimeout time.Duration
	MaxReceive        int
	// RetryBase and RetryMax shape the delay before a failed message is
	// delivered again: drawn up to RetryBase doubled per earlier delivery,
	// at most RetryMax (retry.Policy's full jitter).
	RetryBase time.Duration
	RetryMax  time.Duration
	// BatchSize is the most messages of one audience a batch takes (1 to
	// queue.MaxLocalBatch; default DefaultBatchSize). A batch is recorded in
	// the ledger in one transaction with the deletion of its messages, then
	// wakes the flusher. Pinterest calls follow the flush rounds (a round
	// sends each list's pending rows in calls of up to MaxRecordsPerRequest
	// records, one list and operation a call), not the batches.
	BatchSize int
	// BatchWindow holds an audience's messages until the oldest is this old
	// or BatchSize of them wait, so one batch collects what arrives
	// meanwhile: default DefaultBatchWindow, NoBatchWindow for none. It adds
	// up to the window to every change's freshness.
	BatchWindow time.Duration
	// PollInterval is how often an idle worker looks at the queue (a send
	// wakes one at once).
	PollInterval time.Duration
	// ProgressEvery is how often the progress line is printed while work
	// flows; RefreshEvery how often the token refresh runs; MaintainEvery
	// how often the queue is vacuumed and checkpointed.
	ProgressEvery time.Duration
	RefreshEvery  time.Duration
	MaintainEvery time.Duration
	// ShutdownGrace is how long Close lets in-flight batches finish before
	// cancelling them (their messages go back to the queue).
	ShutdownGrace time.Duration
	// Stdout receives the start banner and the progress lines; nil discards.
	Stdout io.Writer
	// Logger receives the JSON logs; nil means slog.Default(), as in every
	// service package.
	Logger *slog.Logger
}

// ConfigFrom takes the settings pinlist reads from the environment
// (PINLIST_ADDR, PINLIST_DATA_DIR, PINLIST_INGEST_TOKEN,
// PINTEREST_API_BASE_URL when set, PINTEREST_AD_ACCOUNT_ID,
// PINLIST_REFRESH_BEFORE, PINLIST_MAX_RECORDS_PER_REQUEST,
// PINLIST_CONNECTION_NAME).
func ConfigFrom(c config.Config) Config {
	out := Config{
		Addr:                 c.Addr,
		DataDir:              c.DataDir,
		IngestToken:          c.IngestToken,
		AdAccountID:          c.AdAccountID,
		RefreshBefore:        c.RefreshBefore,
		ErasureGuard:         c.ErasureGuard,
		MaxRecordsPerRequest: c.MaxRecordsPerRequest,
		ConnectionName:       c.ConnectionName,
	}
	if c.APIBaseURLSet {
		out.PinterestURL = c.APIBaseURL
	}
	return out
}

// withDefaults fills in the zero fields and checks the rest.
func (c Config) withDefaults() (Config, error) {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.SimAddr == "" {
		c.SimAddr = DefaultSimAddr
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.RefreshBefore <= 0 {
		c.RefreshBefore = config.DefaultRefreshBefore
	}
	if c.MaxRecordsPerRequest <= 0 {
		c.MaxRecordsPerRequest = config.DefaultMaxRecordsPerRequest
	}
	if c.ConnectionName == "" {
		c.ConnectionName = config.DefaultConnectionName
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.WriteRate < 0 {
		return Config{}, fmt.Errorf("write rate %v: must not be negative", c.WriteRate)
	}
	switch {
	case c.SimWriteLimit == 0:
		c.SimWriteLimit = pinterestsim.PinterestWriteLimit
	case c.SimWriteLimit == NoSimWriteLimit:
	case c.SimWriteLimit < 0:
		return Config{}, fmt.Errorf("simulator write limit %d: want 0 (the default), more, or NoSimWriteLimit", c.SimWriteLimit)
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchSize > queue.MaxLocalBatch {
		return Config{}, fmt.Errorf("batch size %d: at most %d", c.BatchSize, queue.MaxLocalBatch)
	}
	switch {
	case c.BatchWindow == 0:
		c.BatchWindow = DefaultBatchWindow
	case c.BatchWindow < 0:
		c.BatchWindow = NoBatchWindow
	}
	if c.VisibilityTimeout <= 0 {
		c.VisibilityTimeout = queue.DefaultLocalVisibilityTimeout
	}
	if c.MaxReceive <= 0 {
		c.MaxReceive = queue.DefaultLocalMaxReceive
	}
	def(&c.RetryBase, DefaultRetryBase)
	def(&c.RetryMax, DefaultRetryMax)
	c.RetryMax = max(c.RetryMax, c.RetryBase)
	def(&c.PollInterval, DefaultPollInterval)
	def(&c.ProgressEvery, DefaultProgressEvery)
	def(&c.RefreshEvery, DefaultRefreshEvery)
	def(&c.MaintainEvery, DefaultMaintainEvery)
	def(&c.ShutdownGrace, DefaultShutdownGrace)
	if c.Stdout == nil {
		c.Stdout = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	for _, a := range []struct{ name, addr string }{{"address", c.Addr}, {"simulator address", c.SimAddr}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return Config{}, fmt.Errorf("%s %q: want HOST:PORT: %w", a.name, a.addr, err)
		}
	}
	return c, nil
}

// QueuePath, TokenPath and IngestTokenPath are the files of a data
// directory.
func QueuePath(dataDir string) string       { return filepath.Join(dataDir, QueueFile) }
func TokenPath(dataDir string) string       { return filepath.Join(dataDir, TokenFile) }
func IngestTokenPath(dataDir string) string { return filepath.Join(dataDir, IngestTokenFile) }
