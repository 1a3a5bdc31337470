package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/pinlist/pinlist/internal/awsshape"
	"github.com/pinlist/pinlist/internal/loadgen"
)

// cutShape takes --shape VALUE (or --shape=VALUE) out of args.
func cutShape(args []string) (shape string, rest []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		for _, p := range []string{"--shape=", "-shape="} {
			if v, ok := strings.CutPrefix(a, p); ok {
				return v, append(append([]string(nil), args[:i]...), args[i+1:]...)
			}
		}
		if (a == "--shape" || a == "-shape") && i+1 < len(args) {
			return args[i+1], append(append([]string(nil), args[:i]...), args[i+2:]...)
		}
	}
	return "", args
}

// runLoadAWS is `pinlist load --shape aws`: the AWS-shape benchmark, in
// one process, against a moto_server it starts.
func runLoadAWS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("load --shape aws", stderr,
		"Runs generated AEP traffic (10 profiles a request, every membership re-sent, some exits) through",
		"the AWS shape in one process: the real ingest handler (API Gateway events) -> moto SQS -> a driver",
		"behaving like the apply function's SQS event source -> the DynamoDB ledger in moto -> its stream",
		"-> a driver behaving like the upload function's stream event source (over virtual shards) and its",
		"sweep -> the Pinterest simulator. Batch sizes, windows, filters, retries and timeouts are read",
		"from template.yaml. Reports write calls per flip against the lower bound, freshness and the",
		"replay of the same traffic. Needs moto_server on PATH.",
	)
	template := fs.String("template", "template.yaml", "the SAM template to read the event sources from")
	profiles := fs.Int("profiles", 2000, "people in the traffic")
	audiences := fs.Int("audiences", 3, "audiences in the traffic")
	bodyProfiles := fs.Int("body-profiles", 10, "profiles per request")
	shards := fs.Int("shards", awsshape.DefaultVirtualShards, "virtual stream shards")
	sweep := fs.Duration("sweep-every", 0, "run the sweep this often instead of the template's rate (0: the template's)")
	writeLimit := fs.Int("write-limit", 0, "the simulator's ads_write budget, write calls a minute (0: Pinterest's 400; -1: none)")
	hold := fs.Bool("hold-flush", false, "hold the ledger's stream and the sweep until each phase is recorded (the upload side's calls apart from apply's speed; freshness then includes the hold)")
	seed := fs.Uint64("seed", 1, "seed of the generated traffic")
	factor := fs.Float64("calls-factor", awsshape.DefaultCallsFactor, "goal: write calls at most this many times the lower bound")
	verbose := fs.Bool("v", false, "log the handlers' warnings to stderr")
	doc := fs.String("doc", "", "Markdown file whose \"## Load (AWS shape)\" section gets the results (e.g. docs/BENCHMARKS.md)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	started := time.Now()
	res, err := awsshape.RunBench(ctx, awsshape.BenchOptions{
		Template:   *template,
		Traffic:    awsshape.TrafficOptions{Profiles: *profiles, Audiences: *audiences, BodyProfiles: *bodyProfiles, Seed: *seed},
		Shards:     *shards,
		WriteLimit: *writeLimit,
		HoldFlush:  *hold,
		SweepEvery: *sweep,
		Progress:   stdout,
		Logger:     logger,
	})
	if err != nil {
		return fmt.Errorf("load --shape aws: %w", err)
	}
	var text strings.Builder
	awsshape.WriteText(&text, res, *factor)
	fmt.Fprint(stdout, text.String())
	if *doc == "" {
		return nil
	}
	m := loadgen.ThisMachine()
	section := fmt.Sprintf("## Load (AWS shape)\n\n`pinlist load --shape aws %s`, %s, on %d cores (%s), %s, %s.\n\n```\n%s```\n",
		strings.Join(args, " "), started.UTC().Format("2006-01-02"), m.Cores, m.CPU, m.OS, m.GoVersion, text.String())
	if err := loadgen.UpdateSection(*doc, "Load (AWS shape)", section); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote the results to %s\n", *doc)
	return nil
}
