package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pinlist/pinlist/internal/config"
	"github.com/pinlist/pinlist/internal/loadgen"
	"github.com/pinlist/pinlist/internal/pinterestsim"
	"github.com/pinlist/pinlist/internal/token"
)

func init() {
	register(command{name: "load", summary: "load-test a running pinlist serve and its pinlist sim (make bench-load)", run: runLoad})
}

// loadReadyTimeout bounds the wait for the servers to answer at start.
const loadReadyTimeout = 60 * time.Second

func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// --shape aws is a benchmark of its own (moto, no serve): its flags
	// differ, so it is told apart before this command's flags are parsed;
	// the other shapes (aep, bulk) are this command's.
	if shape, rest := cutShape(args); shape == "aws" {
		return runLoadAWS(ctx, rest, stdout, stderr)
	}
	fs := newFlagSet("load", stderr,
		"Posts generated AEP profiles to a running pinlist serve that uploads to a separate pinlist sim,",
		"and measures throughput end to end, ingest latency, freshness, Pinterest calls against their",
		"lower bound and the server's peak memory; checks the simulator's final lists against an",
		"independent oracle. With --provision-token it only writes a token file for the simulator.",
		"",
		"--shape aep (the default) sends what Adobe's HTTP API destination sends: at most 10 profiles",
		"a request, each with all its memberships (most unchanged), retries 15 s and 30 s later and",
		"replays of older bodies; phases: a warm-up, saturation, a paced phase at --fixed-rate state",
		"flips/s, then a second pass that re-sends every profile unchanged. The goals are checked",
		"against --budget (the simulator's --write-limit). --shape bulk is issue 8's benchmark: large",
		"bodies of new joins and exits, a fixed offered load, then saturation.",
	)
	defAdAccount := cmpOr(os.Getenv(config.EnvAdAccountID), defaultAdAccount)
	defMaxRecords := config.DefaultMaxRecordsPerRequest
	if v, err := strconv.Atoi(os.Getenv(config.EnvMaxRecordsPerRequest)); err == nil && v > 0 {
		defMaxRecords = v
	}
	ingestURL := fs.String("ingest-url", "http://"+config.DefaultAddr, "base URL of pinlist serve's ingest routes")
	ingestToken := fs.String("ingest-token-file", "", "file holding the ingest token (default $PINLIST_INGEST_TOKEN)")
	simURL := fs.String("sim-url", "http://"+defaultSimAddr, "base URL of the pinlist sim that serve uploads to")
	adAccount := fs.String("ad-account", defAdAccount, "ad account the lists are kept in ($"+config.EnvAdAccountID+")")
	shape := fs.String("shape", string(loadgen.ShapeAEP), "traffic shape: aep or bulk; aws runs the AWS-shaped benchmark (pinlist load --shape aws -h for its flags)")
	profiles := fs.Int("profiles", 200_000, "profiles to post (aep: profile sends at saturation; bulk: in all)")
	warmup := fs.Int("warmup-profiles", 2000, "aep: profile sends of the warm-up that creates the lists")
	bodyProfiles := fs.Int("body-profiles", 0, "profiles per body at saturation (default: aep 10, at most 10; bulk 500)")
	concurrency := fs.Int("concurrency", 8, "requests in flight at once")
	fixedRate := fs.Float64("fixed-rate", 1000, "offered load of the paced phase: aep state flips, bulk identity changes, per second")
	fixedDuration := fs.Duration("fixed-duration", 30*time.Second, "length of the paced phase (0: skip it)")
	fixedBody := fs.Int("fixed-body-profiles", 0, "profiles per body in the paced phase (default: aep 10, bulk 50)")
	retryDelays := fs.String("retry-delays", "15s,30s", "aep: when a retried body is posted again after its 202, comma-separated")
	replayDelay := fs.Duration("replay-delay", 3*time.Second, "aep: when older bodies are replayed after a newer body's 202")
	retryShare := fs.Float64("retry-share", 0.05, "aep: share of bodies retried (0: none)")
	replayShare := fs.Float64("replay-share", 0.03, "aep: chance a re-sent profile's previous body is replayed (0: none)")
	budget := fs.Int("budget", 400, "aep: Pinterest write calls a minute the simulator allows (its --write-limit), for the goals")
	giveUp := fs.Duration("give-up-quiet", 30*time.Second, "aep: end a phase whose lists still differ from the oracle after this long without a write")
	settleQuiet := fs.Duration("settle-quiet", time.Second, "read the lists once the Pinterest writes have stopped this long")
	secondPass := fs.Bool("second-pass", true, "aep: re-send every profile unchanged at the end and count the writes it causes")
	secondQuiet := fs.Duration("second-pass-quiet", 5*time.Second, "aep: the second pass's writes are counted until none came for this long (longer than serve's batch window)")
	maxRecords := fs.Int("max-records", defMaxRecords, "records per Pinterest call serve is configured with ($"+config.EnvMaxRecordsPerRequest+"), for the lower bound")
	servePID := fs.Int("serve-pid", 0, "process ID of pinlist serve, for its peak memory (0: not measured)")
	seed := fs.Uint64("seed", 1, "seed of the generated traffic")
	audiences := fs.Int("audiences", 20, "aep: audiences the profiles qualify for (each has three lists, EMAIL, MAID and IDFA)")
	doc := fs.String("doc", "", "Markdown file whose --doc-section gets the results (e.g. docs/BENCHMARKS.md)")
	docSection := fs.String("doc-section", "Load", "title of the \"## \" section of --doc the results replace (or are added as)")
	docCommand := fs.String("doc-command", "", "command line recorded in the document (default: this one)")
	notesFile := fs.String("doc-notes", "", "Markdown file appended to the document's section (analysis of missed goals)")
	provision := fs.String("provision-token", "", "write a token file for the simulator at --sim-url to this path and exit")
	clientID := fs.String("client-id", defaultClientID, "with --provision-token: the simulator's OAuth client ID")
	clientSecret := fs.String("client-secret", defaultClientSecret, "with --provision-token: that client's secret")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if sh := loadgen.Shape(*shape); sh != loadgen.ShapeAEP && sh != loadgen.ShapeBulk {
		return fmt.Errorf("%w: --shape %q: want %s, %s or aws", errUsage, *shape, loadgen.ShapeAEP, loadgen.ShapeBulk)
	}
	delays, err := parseDelays(*retryDelays)
	if err != nil {
		return err
	}
	sim := loadgen.NewSim(*simURL, *adAccount)
	readyCtx, cancel := context.WithTimeout(ctx, loadReadyTimeout)
	defer cancel()
	if err := sim.WaitReady(readyCtx); err != nil {
		return fmt.Errorf("wait for the simulator at %s: %w", *simURL, err)
	}
	if *provision != "" {
		return provisionSimToken(ctx, sim, *provision, *clientID, *clientSecret, *adAccount, stdout)
	}

	tok := os.Getenv(config.EnvIngestToken)
	if *ingestToken != "" {
		b, err := os.ReadFile(*ingestToken)
		if err != nil {
			return fmt.Errorf("read the ingest token: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	if tok == "" {
		return fmt.Errorf("%w: no ingest token: set $%s or --ingest-token-file", errUsage, config.EnvIngestToken)
	}
	ingest := loadgen.NewIngest(*ingestURL, tok)
	if err := ingest.WaitReady(readyCtx); err != nil {
		return fmt.Errorf("wait for pinlist serve at %s: %w", *ingestURL, err)
	}
	var notes []byte
	if *notesFile != "" {
		var err error
		if notes, err = os.ReadFile(*notesFile); err != nil {
			return fmt.Errorf("read the notes: %w", err)
		}
	}

	res, err := loadgen.RunLoad(ctx, loadgen.LoadOptions{
		Shape:             loadgen.Shape(*shape),
		WarmupProfiles:    *warmup,
		RetryDelays:       delays,
		ReplayDelay:       *replayDelay,
		Budget:            *budget,
		GiveUpQuiet:       *giveUp,
		SettleQuiet:       *settleQuiet,
		SkipSecondPass:    !*secondPass,
		SecondPassQuiet:   *secondQuiet,
		AEP:               loadgen.AEPOptions{Seed: *seed, Audiences: *audiences, RetryShare: orNone(*retryShare), ReplayShare: orNone(*replayShare)},
		Ingest:            ingest,
		Sim:               sim,
		Profiles:          *profiles,
		BodyProfiles:      *bodyProfiles,
		Concurrency:       *concurrency,
		FixedRate:         *fixedRate,
		FixedDuration:     orSkip(*fixedDuration),
		FixedBodyProfiles: *fixedBody,
		MaxRecords:        *maxRecords,
		ServePID:          *servePID,
		Gen:               loadgen.GenOptions{Seed: *seed, Audiences: *audiences},
		Progress:          stdout,
	})
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	loadgen.WriteText(stdout, res, loadgen.DefaultGoals)
	if *doc == "" {
		return nil
	}
	command := *docCommand
	if command == "" {
		command = "pinlist load " + strings.Join(args, " ")
	}
	section := loadgen.Markdown(*docSection, res, loadgen.DefaultGoals, loadgen.ThisMachine(), command, time.Now(), string(notes))
	if err := loadgen.UpdateSection(*doc, *docSection, section); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote the results to %s\n", *doc)
	return nil
}

// orNone turns a share flag's 0 ("none") into the generator's negative.
func orNone(x float64) float64 {
	if x == 0 {
		return -1
	}
	return x
}

// parseDelays reads --retry-delays: Go durations, comma-separated.
func parseDelays(s string) ([]time.Duration, error) {
	var out []time.Duration
	for f := range strings.SplitSeq(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil || d < 0 {
			return nil, fmt.Errorf("%w: --retry-delays %q: want durations such as 15s,30s", errUsage, s)
		}
		out = append(out, d)
	}
	return out, nil
}

// orSkip turns the flag's 0 ("skip the phase") into RunLoad's negative.
func orSkip(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// provisionSimToken has the simulator issue a token pair and stores it at
// path as `pinlist connect` would, so that `pinlist serve --pinterest-url`
// can run against a separate `pinlist sim`. The tokens are the simulator's
// fake local ones; they are not printed.
func provisionSimToken(ctx context.Context, sim *loadgen.Sim, path, clientID, clientSecret, adAccount string, stdout io.Writer) error {
	if clientID == "" || clientSecret == "" {
		return errors.New("--client-id and --client-secret must not be empty")
	}
	now := time.Now()
	access, refresh, err := sim.IssueToken(ctx, clientID, simScopes)
	if err != nil {
		return fmt.Errorf("provision a simulator token: %w", err)
	}
	err = token.FileStore{Path: path}.Save(ctx, token.Token{
		ClientID:              clientID,
		ClientSecret:          clientSecret,
		AccessToken:           access,
		RefreshToken:          refresh,
		AccessTokenExpiresAt:  now.Add(pinterestsim.DefaultAccessTokenTTL),
		RefreshTokenExpiresAt: now.Add(pinterestsim.DefaultRefreshTokenTTL),
		Scope:                 strings.Join(simScopes, ","),
		AdAccountID:           adAccount,
		RefreshedAt:           now,
	})
	if err != nil {
		return fmt.Errorf("provision a simulator token: %w", err)
	}
	fmt.Fprintf(stdout, "wrote a token for the simulator at %s to %s\n", sim.Root(), path)
	return nil
}
