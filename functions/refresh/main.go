// Command refresh is the token-refresh Lambda function: an EventBridge
// schedule invokes it daily; it refreshes the Pinterest token in Secrets
// Manager ahead of its expiry and alerts when a person must reconnect.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/pinlist/pinlist/internal/config"
	"github.com/pinlist/pinlist/internal/pinterest"
	"github.com/pinlist/pinlist/internal/refresh"
	"github.com/pinlist/pinlist/internal/token"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	cfg, err := config.FromEnv()
	if err == nil {
		err = cfg.Require(config.EnvTokenSecretID)
	}
	if err != nil {
		log.Error("refresh: bad configuration", "error", err.Error())
		os.Exit(1)
	}
	log = cfg.Logger(os.Stdout) // at PINLIST_LOG_LEVEL from here on
	aws, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		log.Error("refresh: load AWS configuration", "error", err.Error())
		os.Exit(1)
	}
	opts := refresh.Options{
		Store: token.NewSecretsManagerStore(secretsmanager.NewFromConfig(aws), cfg.TokenSecretID),
		NewRefresher: func(t token.Token) refresh.TokenRefresher {
			return pinterest.NewOAuth(pinterest.OAuthConfig{ClientID: t.ClientID, ClientSecret: t.ClientSecret, BaseURL: cfg.APIBaseURL})
		},
		RefreshBefore:    cfg.RefreshBefore,
		Probe:            refresh.PinterestProbe(cfg.APIBaseURL, cfg.AdAccountID, nil),
		Metrics:          refresh.NewMetricsWriter(os.Stdout, nil),
		Connection:       cfg.ConnectionName,
		ReconnectCommand: "pinlist connect --store secretsmanager:" + cfg.TokenSecretID,
		Logger:           log,
	}
	if cfg.AlertTopicARN != "" {
		opts.Alerts = refresh.NewSNSAlerter(sns.NewFromConfig(aws), cfg.AlertTopicARN)
	}
	r, err := refresh.New(opts)
	if err != nil {
		log.Error("refresh: wire", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(r.HandleEvent)
}
