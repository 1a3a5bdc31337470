// Package config reads pinlist's configuration from the environment: the same
// variable names in the Lambda functions and in the local runner (see
// ARCHITECTURE.md, "Configuration by environment").
package config

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// Environment variable names. The template and the structural test in infra/
// rely on these exact names.
const (
	EnvAPIBaseURL           = "PINTEREST_API_BASE_URL"
	EnvAdAccountID          = "PINTEREST_AD_ACCOUNT_ID"
	EnvQueueURL             = "PINLIST_QUEUE_URL"
	EnvTokenSecretID        = "PINLIST_TOKEN_SECRET_ID"
	EnvIngestTokenSecretID  = "PINLIST_INGEST_TOKEN_SECRET_ID"
	EnvIngestToken          = "PINLIST_INGEST_TOKEN"
	EnvRefreshBefore        = "PINLIST_REFRESH_BEFORE"
	EnvAlertTopicARN        = "PINLIST_ALERT_TOPIC_ARN"
	EnvConnectionName       = "PINLIST_CONNECTION_NAME"
	EnvMaxRecordsPerRequest = "PINLIST_MAX_RECORDS_PER_REQUEST"
	EnvLogLevel             = "PINLIST_LOG_LEVEL"
	EnvAddr                 = "PINLIST_ADDR"
	EnvDataDir              = "PINLIST_DATA_DIR"
	// EnvLedgerTable is the DynamoDB membership ledger table (AWS only; the
	// apply and upload functions, which also keep audience names and the
	// per-list flush leases in it).
	EnvLedgerTable = "PINLIST_LEDGER_TABLE"
)

// Defaults for the optional settings.
const (
	DefaultAPIBaseURL           = "https://api.pinterest.com/v5"
	DefaultRefreshBefore        = 240 * time.Hour
	DefaultConnectionName       = "pinlist"
	DefaultMaxRecordsPerRequest = 5000
	// DefaultMaxBodyBytes is the largest ingest request body accepted, the
	// same behind API Gateway and locally: Lambda's 6 MB synchronous
	// payload limit less room for the API Gateway event around the body, so
	// a body pinlist serve accepts is never one the Lambda function cannot.
	DefaultMaxBodyBytes = 5 << 20
	DefaultAddr         = "127.0.0.1:8080"
	DefaultDataDir      = "./.pinlist"
)

// Config is every setting pinlist reads from the environment. Each function
// uses the part it needs and checks it with Require.
type Config struct {
	APIBaseURL           string
	APIBaseURLSet        bool // PINTEREST_API_BASE_URL was given (locally: use it instead of the simulator)
	AdAccountID          string
	QueueURL             string
	TokenSecretID        string
	IngestTokenSecretID  string
	IngestToken          string
	RefreshBefore        time.Duration
	AlertTopicARN        string
	ConnectionName       string
	MaxRecordsPerRequest int
	LogLevel             slog.Level // PINLIST_LOG_LEVEL: debug, info (default), warn or error
	Addr                 string
	DataDir              string
	LedgerTable          string
}

// FromEnv reads the configuration with os.LookupEnv.
func FromEnv() (Config, error) { return Load(os.LookupEnv) }

// Load reads the configuration through lookup (os.LookupEnv in production, a
// map in tests). It fails on malformed values, naming the variable; missing
// required values are checked by Require.
func Load(lookup func(string) (string, bool)) (Config, error) {
	get := func(name string) string {
		v, _ := lookup(name)
		return strings.TrimSpace(v)
	}
	c := Config{
		APIBaseURL:          strings.TrimRight(get(EnvAPIBaseURL), "/"),
		AdAccountID:         get(EnvAdAccountID),
		QueueURL:            get(EnvQueueURL),
		TokenSecretID:       get(EnvTokenSecretID),
		IngestTokenSecretID: get(EnvIngestTokenSecretID),
		IngestToken:         get(EnvIngestToken),
		AlertTopicARN:       get(EnvAlertTopicARN),
		ConnectionName:      get(EnvConnectionName),
		Addr:                get(EnvAddr),
		DataDir:             get(EnvDataDir),
		LedgerTable:         get(EnvLedgerTable),
	}
	c.APIBaseURLSet = c.APIBaseURL != ""
	if !c.APIBaseURLSet {
		c.APIBaseURL = DefaultAPIBaseURL
	}
	if c.ConnectionName == "" {
		c.ConnectionName = DefaultConnectionName
	}
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.AdAccountID != "" && !isAdAccountID(c.AdAccountID) {
		return Config{}, fmt.Errorf("%s: want 1 to 18 digits", EnvAdAccountID)
	}

	if v := get(EnvLogLevel); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return Config{}, fmt.Errorf("%s: want debug, info, warn or error, got %q", EnvLogLevel, v)
		}
	}

	c.RefreshBefore = DefaultRefreshBefore
	if v := get(EnvRefreshBefore); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return Config{}, fmt.Errorf("%s: want a positive Go duration such as 240h, got %q", EnvRefreshBefore, v)
		}
		c.RefreshBefore = d
	}
	c.MaxRecordsPerRequest = DefaultMaxRecordsPerRequest
	if v := get(EnvMaxRecordsPerRequest); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100_000 {
			return Config{}, fmt.Errorf("%s: want a whole number from 1 to 100000, got %q", EnvMaxRecordsPerRequest, v)
		}
		c.MaxRecordsPerRequest = n
	}
	return c, nil
}

// Logger is the JSON logger every pinlist process uses, at LogLevel.
func (c Config) Logger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: c.LogLevel}))
}

// Require fails naming the first of the given variables that is empty.
func (c Config) Require(names ...string) error {
	for _, name := range names {
		if c.value(name) == "" {
			return fmt.Errorf("%s is required", name)
		}
	}
	return nil
}

func (c Config) value(name string) string {
	switch name {
	case EnvAPIBaseURL:
		return c.APIBaseURL
	case EnvAdAccountID:
		return c.AdAccountID
	case EnvQueueURL:
		return c.QueueURL
	case EnvTokenSecretID:
		return c.TokenSecretID
	case EnvIngestTokenSecretID:
		return c.IngestTokenSecretID
	case EnvIngestToken:
		return c.IngestToken
	case EnvAlertTopicARN:
		return c.AlertTopicARN
	case EnvConnectionName:
		return c.ConnectionName
	case EnvAddr:
		return c.Addr
	case EnvDataDir:
		return c.DataDir
	case EnvLedgerTable:
		return c.LedgerTable
	}
	return ""
}

func isAdAccountID(s string) bool {
	if len(s) == 0 || len(s) > 18 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
