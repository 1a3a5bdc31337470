// Command upload is the upload Lambda function: the DynamoDB ledger table's
// stream invokes it with the rows just made pending, whose lists it flushes
// to Pinterest (reporting the records of lists that failed for a retryable
// reason), and an EventBridge schedule invokes it every minute to sweep
// every list with pending rows. Each list is flushed under its lease in the
// table, so concurrent invocations never flush one list at once.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/pinlist/pinlist/internal/config"
	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/pinterest"
	"github.com/pinlist/pinlist/internal/token"
	"github.com/pinlist/pinlist/internal/upload"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	fail := func(what string, err error) {
		log.Error("upload: "+what, "error", err.Error())
		os.Exit(1)
	}
	cfg, err := config.FromEnv()
	if err == nil {
		err = cfg.Require(config.EnvAdAccountID, config.EnvTokenSecretID, config.EnvLedgerTable)
	}
	if err != nil {
		fail("bad configuration", err)
	}
	log = cfg.Logger(os.Stdout) // at PINLIST_LOG_LEVEL from here on
	aws, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		fail("load AWS configuration", err)
	}
	accessToken := token.NewAccessTokenSource(token.NewSecretsManagerStore(secretsmanager.NewFromConfig(aws), cfg.TokenSecretID))
	client, err := pinterest.New(pinterest.Options{
		AdAccountID: cfg.AdAccountID, BaseURL: cfg.APIBaseURL, TokenSource: accessToken, Logger: log})
	if err != nil {
		fail("wire the Pinterest client", err)
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
	leases, err := ledger.NewDynamoLeases(table)
	if err != nil {
		fail("wire the leases", err)
	}
	h, err := upload.New(upload.Options{Client: client, Ledger: store, Names: names, AccessToken: accessToken,
		MaxRecordsPerRequest: cfg.MaxRecordsPerRequest, ConnectionName: cfg.ConnectionName, Logger: log, Metrics: os.Stdout})
	if err != nil {
		fail("wire the handler", err)
	}
	f, err := upload.NewFlusher(upload.FlusherOptions{Handler: h, Leases: leases})
	if err != nil {
		fail("wire the flusher", err)
	}
	lambda.Start(f.Handle)
}
