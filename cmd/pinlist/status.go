package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/pinlist/pinlist/internal/config"
	"github.com/pinlist/pinlist/internal/connect"
	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/local"
	"github.com/pinlist/pinlist/internal/refresh"
)

func init() {
	register(command{name: "status", summary: "show the Pinterest connection's expiry, the queue and the managed lists", run: runStatus})
}

// exitNeedsAttention is pinlist status's exit code when it printed a
// warning. Not 2: that is every command's usage error.
const exitNeedsAttention = 3

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	env, err := config.FromEnv()
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	fs := newFlagSet("status", stderr,
		"Shows the stored Pinterest connection (token expiry dates and days left, last refresh), the queue",
		"and the customer lists pinlist manages, and warns when something needs a person.",
		"Locally it reads the token file and the queue in the data directory (beside a running pinlist",
		"serve). For AWS give the secret (--store secretsmanager:...) and the queue (--queue-url): it shows",
		"the queue's and the dead-letter queue's depth, and the age of the oldest message from CloudWatch",
		"(this needs cloudwatch:GetMetricData besides sqs:GetQueueAttributes, sqs:GetQueueUrl and",
		"secretsmanager:GetSecretValue).",
		"",
		"Exit status: 0 healthy; 3 needs attention (the connection expires within --warn-days or has",
		"expired, dead letters are waiting, or the token or queue could not be read), for scripts and",
		"cron to alert on; 2 usage error; 1 other error.",
		"",
	)
	dataDir := fs.String("data-dir", env.DataDir, "data directory of pinlist serve ($"+config.EnvDataDir+")")
	store := fs.String("store", "", "the token store: file:PATH or secretsmanager:NAME_OR_ARN (default: secretsmanager:$"+config.EnvTokenSecretID+" when set, else the token file in --data-dir)")
	queueURL := fs.String("queue-url", env.QueueURL, "the SQS changes queue of the AWS deployment ($"+config.EnvQueueURL+"); empty: the local queue in --data-dir")
	ledgerTable := fs.String("ledger-table", env.LedgerTable, "the DynamoDB ledger table of the AWS deployment, for exact member counts ($"+config.EnvLedgerTable+"; stack output LedgerTableName)")
	dlqURL := fs.String("dlq-url", "", "its dead-letter queue (default: from the queue's redrive policy)")
	warnDays := fs.Int("warn-days", int(refresh.DefaultAlertBefore/(24*time.Hour)), "warn when the connection expires within this many days (the refresh function alerts at the same threshold)")
	pinterestURL := fs.String("pinterest-url", "", "Pinterest API v5 base URL to read the lists from ($"+config.EnvAPIBaseURL+"); default: the simulator of a running pinlist serve locally, "+config.DefaultAPIBaseURL+" for AWS")
	simAddr := fs.String("sim-addr", local.DefaultSimAddr, "address of pinlist serve's built-in simulator")
	adAccount := fs.String("ad-account", env.AdAccountID, "ad account ID ($"+config.EnvAdAccountID+"; default: the stored token's)")
	noLists := fs.Bool("no-lists", false, "do not read the customer lists from Pinterest")
	asJSON := fs.Bool("json", false, "print JSON, for scripts")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *warnDays < 1:
		return fmt.Errorf("%w: --warn-days %d: want 1 or more", errUsage, *warnDays)
	case *dlqURL != "" && *queueURL == "":
		return fmt.Errorf("%w: --dlq-url needs --queue-url (or $%s)", errUsage, config.EnvQueueURL)
	}
	// Without --store or $PINLIST_TOKEN_SECRET_ID, ReadStatus reads the
	// token file in the data directory, and knows that serve provisions it.
	defaultStore := *store == "" && env.TokenSecretID == ""
	switch {
	case defaultStore:
		*store = connect.KindFile + ":" + local.TokenPath(*dataDir)
	case *store == "":
		*store = connect.KindSecretsManager + ":" + env.TokenSecretID
	}
	spec, err := connect.ParseStore(*store)
	if err != nil {
		return fmt.Errorf("%w: --store: %v", errUsage, err)
	}
	inAWS := spec.Kind == connect.KindSecretsManager || *queueURL != "" || *ledgerTable != ""

	opts := local.StatusOptions{
		DataDir:     *dataDir,
		SimAddr:     *simAddr,
		AdAccountID: *adAccount,
		AlertBefore: time.Duration(*warnDays) * 24 * time.Hour,
	}
	switch {
	case *pinterestURL != "":
		opts.PinterestURL = *pinterestURL
	case env.APIBaseURLSet || inAWS:
		opts.PinterestURL = env.APIBaseURL
	}
	opts.PinterestURL = strings.TrimRight(strings.TrimSpace(opts.PinterestURL), "/")
	if *noLists {
		opts.SkipLists = "--no-lists"
	}
	if inAWS {
		cfg, err := sdkConfig(ctx, firstNonEmpty(queueRegion(*queueURL), connect.SecretRegion(spec.Location)))
		if err != nil {
			return err
		}
		if *ledgerTable != "" {
			store, err := ledger.NewDynamo(ledger.DynamoOptions{Client: dynamodb.NewFromConfig(cfg), Table: *ledgerTable})
			if err != nil {
				return err
			}
			opts.Ledger = store
		}
		if *queueURL != "" {
			opts.SQS = &local.SQSStatusOptions{
				Client:        sqs.NewFromConfig(cfg),
				QueueURL:      *queueURL,
				DeadLetterURL: *dlqURL,
				CloudWatch:    local.NewCloudWatch(cfg),
			}
		} else {
			opts.SkipQueue = "no queue URL: give --queue-url or set $" + config.EnvQueueURL
		}
		if spec.Kind == connect.KindSecretsManager {
			target := connect.SecretsManagerTarget(secretsmanager.NewFromConfig(cfg), spec.Location)
			opts.TokenStore, opts.TokenStoreName = target.Store, target.Name
		}
	}
	if opts.TokenStore == nil && !defaultStore {
		target := connect.FileTarget(spec.Location)
		opts.TokenStore, opts.TokenStoreName = target.Store, target.Name
	}

	st := local.ReadStatus(ctx, opts)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return fmt.Errorf("write status: %w", err)
		}
	} else if err := st.WriteText(stdout); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	switch {
	case st.Healthy:
		return nil
	case *asJSON: // stdout is for the script: say why on stderr too
		return &exitError{code: exitNeedsAttention, msg: "status needs attention: " + strings.Join(st.Warnings, "; ")}
	default: // the Health section has said why
		return &exitError{code: exitNeedsAttention}
	}
}
