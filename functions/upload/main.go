// Command upload is the upload Lambda function: the SQS FIFO event source
// invokes it with batches of audience messages, which it applies to the
// Pinterest customer lists (reporting partial batch failures).
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/pinlist/pinlist/internal/config"
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
		err = cfg.Require(config.EnvAdAccountID, config.EnvTokenSecretID)
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
	h, err := upload.New(upload.Options{
		Client:               client,
		AccessToken:          accessToken,
		MaxRecordsPerRequest: cfg.MaxRecordsPerRequest,
		ConnectionName:       cfg.ConnectionName,
		Logger:               log,
		Metrics:              os.Stdout,
	})
	if err != nil {
		fail("wire the handler", err)
	}
	lambda.Start(h.HandleSQS)
}
