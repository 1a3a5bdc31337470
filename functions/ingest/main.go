// Command ingest is the ingest Lambda function behind the HTTP API: it
// accepts AEP audience-membership updates and audience metadata, hashes the
// identifiers and enqueues the changes on the standard SQS changes queue, which
// the apply function records in the ledger.
package main

import (
	"context"
	"errors"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/pinlist/pinlist/internal/config"
	"github.com/pinlist/pinlist/internal/ingest"
	"github.com/pinlist/pinlist/internal/queue"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	cfg, err := config.FromEnv()
	if err == nil {
		err = cfg.Require(config.EnvQueueURL)
	}
	if err == nil && cfg.IngestToken == "" && cfg.IngestTokenSecretID == "" {
		err = errors.New(config.EnvIngestToken + " or " + config.EnvIngestTokenSecretID + " is required")
	}
	if err != nil {
		log.Error("ingest: bad configuration", "error", err.Error())
		os.Exit(1)
	}
	log = cfg.Logger(os.Stdout) // at PINLIST_LOG_LEVEL from here on
	aws, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		log.Error("ingest: load AWS configuration", "error", err.Error())
		os.Exit(1)
	}
	var ingestToken ingest.IngestTokenSource = ingest.StaticIngestToken(cfg.IngestToken)
	if cfg.IngestTokenSecretID != "" {
		ingestToken = ingest.NewSecretIngestToken(secretsmanager.NewFromConfig(aws), cfg.IngestTokenSecretID)
	}
	h, err := ingest.New(ingest.Options{
		Sender:      queue.NewSQS(sqs.NewFromConfig(aws), cfg.QueueURL),
		IngestToken: ingestToken,
		Logger:      log,
		Metrics:     os.Stdout, // EMF lines: CloudWatch Logs turns them into metrics
		Connection:  cfg.ConnectionName,
	})
	if err != nil {
		log.Error("ingest: wire", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h.HandleAPIGateway)
}
