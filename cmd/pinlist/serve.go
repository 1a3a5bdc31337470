package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"golang.org/x/time/rate"

	"github.com/pinlist/pinlist/internal/config"
	"github.com/pinlist/pinlist/internal/local"
	"github.com/pinlist/pinlist/internal/pinterest"
	"github.com/pinlist/pinlist/internal/pinterestsim"
	"github.com/pinlist/pinlist/internal/queue"
)

func init() {
	register(command{name: "serve", summary: "run the whole connector locally (what make run starts)", run: runServe})
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	env, err := config.FromEnv()
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	cfg := local.ConfigFrom(env)
	fs := newFlagSet("serve", stderr,
		"Runs the connector as one local process: the ingest routes, a durable queue in the data directory,",
		"upload workers, the token refresh, and (unless --pinterest-url) a Pinterest simulator.",
		"Flags override the environment (PINLIST_ADDR, PINLIST_DATA_DIR, PINTEREST_API_BASE_URL, ...).",
	)
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "address of the ingest routes ($"+config.EnvAddr+")")
	fs.StringVar(&cfg.SimAddr, "sim-addr", local.DefaultSimAddr, "address of the built-in Pinterest simulator (without --pinterest-url)")
	fs.StringVar(&cfg.PinterestURL, "pinterest-url", cfg.PinterestURL, "Pinterest API v5 base URL, e.g. a `pinlist sim` at http://127.0.0.1:8081/v5 ($"+config.EnvAPIBaseURL+"); empty: the built-in simulator")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory of the queue and the token files ($"+config.EnvDataDir+")")
	fs.StringVar(&cfg.AdAccountID, "ad-account", cfg.AdAccountID, "ad account ID ($"+config.EnvAdAccountID+"; default: the token file's, or the simulator's)")
	fs.IntVar(&cfg.Workers, "workers", local.DefaultWorkers, "audiences uploaded in parallel")
	var writeRate optionalFloat
	fs.Var(&writeRate, "write-rate", fmt.Sprintf("the most Pinterest write `calls` per second, the pace the client starts at and slows down from on 429s and X-RateLimit headers; 0 for no pacing (default %.2f: Pinterest's budget, %d a minute)", float64(pinterest.DefaultWriteRate), pinterest.DefaultWritesPerMinute))
	simWriteLimit := fs.Int("sim-write-limit", pinterestsim.PinterestWriteLimit, "write calls a minute per ad account the built-in simulator accepts, like Pinterest's ads_write budget; 0 for no limit")
	fs.IntVar(&cfg.BatchSize, "batch-size", local.DefaultBatchSize, "most messages of one audience recorded in the ledger in one transaction (1 to "+strconv.Itoa(queue.MaxLocalBatch)+")")
	fs.DurationVar(&cfg.BatchWindow, "batch-window", local.DefaultBatchWindow, "hold an audience's messages until the oldest is this old or a full batch waits, for fewer Pinterest calls; 0 for none")
	fs.DurationVar(&cfg.ProgressEvery, "progress-every", local.DefaultProgressEvery, "how often the progress line is printed while work flows")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if cfg.BatchSize < 1 || cfg.BatchSize > queue.MaxLocalBatch {
		return fmt.Errorf("%w: --batch-size %d: want 1 to %d", errUsage, cfg.BatchSize, queue.MaxLocalBatch)
	}
	switch {
	case cfg.BatchWindow < 0:
		return fmt.Errorf("%w: --batch-window %v: want 0 or more", errUsage, cfg.BatchWindow)
	case cfg.BatchWindow == 0:
		cfg.BatchWindow = local.NoBatchWindow
	}
	switch {
	case *simWriteLimit == 0:
		cfg.SimWriteLimit = local.NoSimWriteLimit
	case *simWriteLimit > 0:
		cfg.SimWriteLimit = *simWriteLimit
	default:
		return fmt.Errorf("%w: --sim-write-limit %d: want 0 (no limit) or more", errUsage, *simWriteLimit)
	}
	cfg.PinterestURL = strings.TrimRight(strings.TrimSpace(cfg.PinterestURL), "/")
	switch {
	case !writeRate.set:
	case writeRate.v == 0:
		cfg.WriteRate = rate.Inf
	case writeRate.v > 0 && !math.IsInf(writeRate.v, 0):
		cfg.WriteRate = rate.Limit(writeRate.v)
	default:
		return fmt.Errorf("%w: --write-rate %v: want a positive number, or 0 for no pacing", errUsage, writeRate.v)
	}
	cfg.Stdout, cfg.Logger = stdout, env.Logger(stderr)
	return local.Run(ctx, cfg)
}

// optionalFloat is a number flag that knows whether it was given, so that
// its default can be described in the usage text instead of shown as a
// sentinel.
type optionalFloat struct {
	v   float64
	set bool
}

func (f *optionalFloat) String() string {
	if f == nil || !f.set {
		return ""
	}
	return strconv.FormatFloat(f.v, 'g', -1, 64)
}

func (f *optionalFloat) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return err
	}
	f.v, f.set = v, true
	return nil
}
