package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/pinlist/pinlist/internal/audience"
	"github.com/pinlist/pinlist/internal/config"
	"github.com/pinlist/pinlist/internal/ingest"
	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/local"
	"github.com/pinlist/pinlist/internal/queue"
)

func init() {
	register(command{name: "resync", summary: "re-push every current member of an audience's lists (or of all) from the ledger", run: runResync})
}

// defaultWritesPerSecond is the write budget resync estimates with: the
// Pinterest client's default pace.
const defaultWritesPerSecond = 5

// resyncStore is what resync needs of a ledger.
type resyncStore interface {
	Members(ctx context.Context) (map[ledger.List]int64, error)
	ledger.Keeper
}

func runResync(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	env, err := config.FromEnv()
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	fs := newFlagSet("resync", stderr,
		"   or: pinlist resync [flags] AUDIENCE_ID",
		"Re-pushes every current member of the audience's lists (of every list without AUDIENCE_ID,",
		"\"ns:id\" or an ID in the ups namespace) from the ledger, and every exit it knows, so each list",
		"ends exactly in the ledger's state. It marks the lists' rows pending; the upload step (a running",
		"pinlist serve, or the AWS upload function through the ledger's stream) sends them in calls of up",
		"to the record limit, paced by the write budget. It then shows a progress bar and an estimate of",
		"the time left at --writes-per-second until nothing is pending (or --no-wait).",
		"",
	)
	dataDir := fs.String("data-dir", env.DataDir, "data directory of pinlist serve, whose ledger is used ($"+config.EnvDataDir+")")
	table := fs.String("table", "", "the AWS deployment's DynamoDB ledger table (instead of the local ledger)")
	perSecond := fs.Float64("writes-per-second", defaultWritesPerSecond, "the write budget the estimate assumes (Pinterest calls per second)")
	maxRecords := fs.Int("max-records", env.MaxRecordsPerRequest, "records per call the estimate assumes ($"+config.EnvMaxRecordsPerRequest+")")
	poll := fs.Duration("poll", time.Second, "how often progress is read")
	noWait := fs.Bool("no-wait", false, "mark the rows pending and return")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var only *audience.Ref
	switch fs.NArg() {
	case 0:
	case 1:
		ref, ok := parseAudienceArg(fs.Arg(0))
		if !ok {
			return fmt.Errorf("%w: %q is not an audience ID (ns:id or id)", errUsage, fs.Arg(0))
		}
		only = &ref
	default:
		fs.Usage()
		return fmt.Errorf("%w: at most one AUDIENCE_ID", errUsage)
	}
	if *perSecond <= 0 || *maxRecords < 1 || *poll <= 0 {
		return fmt.Errorf("%w: --writes-per-second, --max-records and --poll must be positive", errUsage)
	}
	store, closeStore, err := openResyncStore(ctx, *dataDir, *table)
	if err != nil {
		return err
	}
	defer closeStore()
	return resync(ctx, stdout, store, only, resyncPace{perSecond: *perSecond, maxRecords: *maxRecords, poll: *poll, wait: !*noWait})
}

// parseAudienceArg reads "ns:id" or an ID in ingest's default namespace.
func parseAudienceArg(s string) (audience.Ref, bool) {
	ref := audience.Ref{Namespace: ingest.DefaultAudienceNamespace, ID: s}
	if ns, id, ok := strings.Cut(s, ":"); ok {
		ref = audience.Ref{Namespace: ns, ID: id}
	}
	return ref, ref.Validate() == nil
}

// openResyncStore opens the local ledger (in the queue database, beside a
// running serve) or the DynamoDB one.
func openResyncStore(ctx context.Context, dataDir, table string) (resyncStore, func(), error) {
	if table != "" {
		cfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("load the AWS configuration: %w", err)
		}
		d, err := ledger.NewDynamo(ledger.DynamoOptions{Client: dynamodb.NewFromConfig(cfg), Table: table})
		if err != nil {
			return nil, nil, err
		}
		return d, func() {}, nil
	}
	path := local.QueuePath(dataDir)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("no local ledger at %s: check --data-dir (or $%s), or give --table", path, config.EnvDataDir)
	}
	q, err := queue.OpenLocal(ctx, queue.LocalOptions{Path: path})
	if err != nil {
		return nil, nil, fmt.Errorf("open the local ledger: %w", err)
	}
	s, err := ledger.NewSQLite(ctx, ledger.SQLiteOptions{DB: q.DB()})
	if err != nil {
		_ = q.Close()
		return nil, nil, fmt.Errorf("open the local ledger: %w", err)
	}
	return s, func() { _ = q.Close() }, nil
}

// resyncPace is how resync estimates and watches.
type resyncPace struct {
	perSecond  float64
	maxRecords int
	poll       time.Duration
	wait       bool
}

// resync marks the lists' rows pending and shows the progress.
func resync(ctx context.Context, w io.Writer, store resyncStore, only *audience.Ref, pace resyncPace) error {
	members, err := store.Members(ctx)
	if err != nil {
		return err
	}
	retired, err := store.Retired(ctx)
	if err != nil {
		return err
	}
	var lists []ledger.List
	for l := range members {
		if (only == nil || l.Audience == *only) && !retired[l.Key()] {
			lists = append(lists, l)
		}
	}
	slices.SortFunc(lists, func(a, b ledger.List) int { return strings.Compare(a.Key(), b.Key()) })
	if len(lists) == 0 {
		if only != nil {
			return fmt.Errorf("the ledger knows no list of audience %s", only.Key())
		}
		fmt.Fprintln(w, "the ledger knows no list: nothing to resync")
		return nil
	}
	var total, calls int64
	for _, l := range lists {
		n, err := store.ResetList(ctx, l, ledger.Unknown)
		if err != nil {
			return err
		}
		total += n
		calls += (n + int64(pace.maxRecords) - 1) / int64(pace.maxRecords)
		fmt.Fprintf(w, "%s: %d members, %d rows to send\n", l.Key(), members[l], n)
	}
	fmt.Fprintf(w, "%d rows in %d lists marked pending: about %d calls, %s at %g calls/s\n",
		total, len(lists), calls, estimate(calls, pace.perSecond), pace.perSecond)
	if !pace.wait || total == 0 {
		return nil
	}
	t := time.NewTicker(pace.poll)
	defer t.Stop()
	for {
		var left, leftCalls int64
		for _, l := range lists {
			n, err := store.PendingCount(ctx, l)
			if err != nil {
				return err
			}
			left += n
			leftCalls += (n + int64(pace.maxRecords) - 1) / int64(pace.maxRecords)
		}
		fmt.Fprintf(w, "\r%s %d/%d sent, ~%s left ", bar(total-left, total, 30), total-min(left, total), total, estimate(leftCalls, pace.perSecond))
		if left == 0 {
			fmt.Fprintln(w, "\nresync done: every list holds the ledger's state")
			return nil
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(w)
			return fmt.Errorf("stopped watching (the rows stay pending and are sent): %w", ctx.Err())
		case <-t.C:
		}
	}
}

// estimate is how long calls take at perSecond.
func estimate(calls int64, perSecond float64) time.Duration {
	return time.Duration(math.Ceil(float64(calls)/perSecond)) * time.Second
}

// bar draws done/total in width cells.
func bar(done, total int64, width int) string {
	if total <= 0 {
		return "[" + strings.Repeat("#", width) + "]"
	}
	n := int(max(0, min(done, total)) * int64(width) / total)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}
