package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/pinlist/pinlist/internal/config"
	"github.com/pinlist/pinlist/internal/local"
	"github.com/pinlist/pinlist/internal/queue"
)

func init() {
	register(command{name: "redrive", summary: "move dead letters back to the queue for another try", run: runRedrive})
}

func runRedrive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	env, err := config.FromEnv()
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	fs := newFlagSet("redrive", stderr,
		"Moves dead letters back to the queue for another try, once their cause is fixed, and says how",
		"many moved. In AWS (--queue-url or $"+config.EnvQueueURL+") from the SQS dead-letter queue; locally",
		"from the dead letters in the data directory. Safe to interrupt and run again.",
	)
	queueURL := fs.String("queue-url", "", "the SQS queue to move dead letters back to ($"+config.EnvQueueURL+")")
	dlqURL := fs.String("dlq-url", "", "its dead-letter queue (default: from the queue's redrive policy); after an upgrade from the FIFO stack, the legacy FIFO queue or its dead-letter queue")
	dataDir := fs.String("data-dir", "", "the local stack's data directory, when no queue URL is given ($"+config.EnvDataDir+", else "+config.DefaultDataDir+")")
	maxMoved := fs.Int("max", 0, "move at most this many dead letters, oldest first (0: all)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case *maxMoved < 0:
		return fmt.Errorf("%w: --max %d: want 0 (all) or more", errUsage, *maxMoved)
	case set["queue-url"] && set["data-dir"]:
		return fmt.Errorf("%w: give --queue-url (AWS) or --data-dir (local), not both", errUsage)
	}

	if *queueURL == "" && !set["data-dir"] {
		*queueURL = env.QueueURL
	}
	if *queueURL != "" {
		return redriveSQS(ctx, stdout, *queueURL, *dlqURL, *maxMoved)
	}
	if *dlqURL != "" {
		return fmt.Errorf("%w: --dlq-url needs --queue-url (or $%s)", errUsage, config.EnvQueueURL)
	}
	if !set["data-dir"] {
		*dataDir = env.DataDir
	}
	return redriveLocal(ctx, stdout, *dataDir, *maxMoved)
}

// redriveSQS moves the dead letters of the SQS queue at queueURL back to it.
func redriveSQS(ctx context.Context, stdout io.Writer, queueURL, dlqURL string, maxMoved int) error {
	cfg, err := sdkConfig(ctx, queueRegion(queueURL))
	if err != nil {
		return err
	}
	q := queue.NewSQS(sqs.NewFromConfig(cfg), queueURL)
	if dlqURL == "" {
		dlqURL, err = q.DeadLetterURL(ctx)
		if errors.Is(err, queue.ErrNoDeadLetterQueue) {
			return fmt.Errorf("%w: is %s the pinlist queue? Or give the dead-letter queue with --dlq-url", err, queueURL)
		}
		if err != nil {
			return fmt.Errorf("find the dead-letter queue: %w", err)
		}
	}
	fmt.Fprintf(stdout, "Moving dead letters from %s back to %s...\n", path.Base(dlqURL), path.Base(queueURL))
	moved, err := q.Redrive(ctx, dlqURL, maxMoved)
	reportRedrive(stdout, moved, maxMoved, "The upload function applies them as they arrive.")
	if err != nil {
		return fmt.Errorf("redrive stopped after moving %d (run pinlist redrive again for the rest; it is safe to): %w", moved, err)
	}
	return nil
}

// queueRegion is the region in an SQS queue URL
// (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME), "" when it has none.
func queueRegion(queueURL string) string {
	u, err := url.Parse(queueURL)
	if err != nil {
		return ""
	}
	parts := strings.Split(u.Hostname(), ".")
	if len(parts) >= 4 && parts[0] == "sqs" && strings.HasPrefix(parts[2], "amazonaws") {
		return parts[1]
	}
	return ""
}

// redriveLocal moves the local stack's dead letters back to their
// audiences. It opens the queue without Consumer, as pinlist status does, so
// it runs beside a pinlist serve that consumes the queue: the move is one
// SQLite transaction, which serve's workers see on their next receive.
func redriveLocal(ctx context.Context, stdout io.Writer, dataDir string, maxMoved int) error {
	dbPath := local.QueuePath(dataDir)
	if _, err := os.Stat(dbPath); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no local queue at %s: check --data-dir (or $%s); pinlist serve creates the queue", dbPath, config.EnvDataDir)
	} else if err != nil {
		return fmt.Errorf("open the local queue: %w", err)
	}
	q, err := queue.OpenLocal(ctx, queue.LocalOptions{Path: dbPath})
	if err != nil {
		return fmt.Errorf("open the local queue: %w", err)
	}
	moved, err := q.Redrive(ctx, maxMoved)
	cerr := q.Close()
	if err != nil {
		return fmt.Errorf("redrive the local dead letters (nothing moved; run pinlist redrive again): %w", err)
	}
	reportRedrive(stdout, moved, maxMoved, "pinlist serve applies them: at once when it is running, else when it starts.")
	if cerr != nil {
		return fmt.Errorf("close the local queue after the redrive: %w", cerr)
	}
	return nil
}

// reportRedrive says how many dead letters moved.
func reportRedrive(w io.Writer, moved, maxMoved int, next string) {
	switch {
	case moved == 0:
		fmt.Fprintln(w, "No dead letters to move.")
		return
	case moved == 1:
		fmt.Fprint(w, "Moved 1 dead letter back to the queue.")
	default:
		fmt.Fprintf(w, "Moved %d dead letters back to the queue.", moved)
	}
	fmt.Fprintln(w, " "+next)
	if maxMoved > 0 && moved == maxMoved {
		fmt.Fprintf(w, "--max %d reached: more may be waiting; run pinlist redrive again to move them.\n", maxMoved)
	}
}
