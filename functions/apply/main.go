// Command apply is the apply Lambda function: the standard SQS queue's event
// source invokes it with batches of audience messages, which it records in
// the DynamoDB membership ledger (reporting partial batch failures). It
// never calls Pinterest: the ledger's stream hands the rows it makes pending
// to the upload function.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/pinlist/pinlist/internal/config"
	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/upload"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	fail := func(what string, err error) {
		log.Error("apply: "+what, "error", err.Error())
		os.Exit(1)
	}
	cfg, err := config.FromEnv()
	if err == nil {
		err = cfg.Require(config.EnvLedgerTable)
	}
	if err != nil {
		fail("bad configuration", err)
	}
	log = cfg.Logger(os.Stdout) // at PINLIST_LOG_LEVEL from here on
	aws, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		fail("load AWS configuration", err)
	}
	table := ledger.DynamoOptions{Client: dynamodb.NewFromConfig(aws), Table: cfg.LedgerTable, Logger: log}
	store, err := ledger.NewDynamo(table)
	if err != nil {
		fail("wire the ledger", err)
	}
	names, err := ledger.NewDynamoNames(table)
	if err != nil {
		fail("wire the name store", err)
	}
	h, err := upload.New(upload.Options{Client: upload.ApplyOnly{}, Ledger: store, Names: names,
		ConnectionName: cfg.ConnectionName, Logger: log, Metrics: os.Stdout})
	if err != nil {
		fail("wire the handler", err)
	}
	lambda.Start(h.HandleApply)
}
