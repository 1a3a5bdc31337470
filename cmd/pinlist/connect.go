package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"golang.org/x/term"

	"github.com/pinlist/pinlist/internal/config"
	"github.com/pinlist/pinlist/internal/connect"
	"github.com/pinlist/pinlist/internal/local"
	"github.com/pinlist/pinlist/internal/pinterest"
)

func init() {
	register(command{name: "connect", summary: "connect a Pinterest ad account (OAuth) and store its token", run: runConnect})
}

// The Pinterest app's credentials in the environment (connect only: the
// functions read them from the token secret).
const (
	envClientID     = "PINTEREST_CLIENT_ID"
	envClientSecret = "PINTEREST_CLIENT_SECRET"
)

func runConnect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	env, err := config.FromEnv()
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	fs := newFlagSet("connect", stderr,
		"Connects pinlist to a Pinterest ad account: runs Pinterest's OAuth flow in your browser, checks",
		"the token against the ad account and writes it to the store. See docs/CONNECT.md.",
		"The app secret comes from $"+envClientSecret+", the stored token (reconnecting), or a prompt.",
	)
	clientID := fs.String("client-id", "", "the Pinterest app's ID ($"+envClientID+"; default: the stored token's)")
	clientSecret := fs.String("client-secret", "", "the app's secret; prefer $"+envClientSecret+" or the prompt, since a flag shows in the process list")
	adAccount := fs.String("ad-account", env.AdAccountID, "ad account ID, digits ($"+config.EnvAdAccountID+"; default: the stored token's)")
	pinterestURL := fs.String("pinterest-url", env.APIBaseURL, "Pinterest API v5 base URL ($"+config.EnvAPIBaseURL+"), e.g. http://127.0.0.1:8081/v5 for pinlist sim")
	authURL := fs.String("auth-url", "", "the consent page (default "+pinterest.DefaultAuthURL+", or HOST/oauth/ of a --pinterest-url that is not Pinterest's)")
	port := fs.Int("redirect-port", connect.DefaultRedirectPort, "port of the callback http://127.0.0.1:PORT"+connect.CallbackPath+", which must be a redirect URI of the app (0: a free port, for the simulator)")
	redirectHost := fs.String("redirect-host", connect.DefaultRedirectHost, "host of the redirect URI: 127.0.0.1 or localhost, whichever your app registered")
	timeout := fs.Duration("timeout", connect.DefaultTimeout, "how long to wait for the approval in the browser")
	store := fs.String("store", connect.KindFile+":"+local.TokenPath(env.DataDir), "where to write the token: file:PATH or secretsmanager:NAME_OR_ARN")
	noBrowser := fs.Bool("no-browser", false, "only print the authorisation URL; do not try to open a browser")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *timeout <= 0 {
		return fmt.Errorf("%w: --timeout %s: want a positive duration such as 5m", errUsage, *timeout)
	}
	spec, err := connect.ParseStore(*store)
	if err != nil {
		return fmt.Errorf("%w: --store: %v", errUsage, err)
	}
	apiBase := strings.TrimRight(strings.TrimSpace(*pinterestURL), "/")
	if *authURL == "" {
		*authURL = consentPageFor(apiBase)
	}

	opts := connect.Options{
		ClientID:     firstNonEmpty(*clientID, os.Getenv(envClientID)),
		ClientSecret: firstNonEmpty(*clientSecret, os.Getenv(envClientSecret)),
		ReadSecret:   terminalSecretReader(ctx, os.Stdin, stderr),
		AdAccountID:  *adAccount,
		APIBaseURL:   apiBase,
		AuthURL:      *authURL,
		RedirectPort: *port,
		RedirectHost: *redirectHost,
		Timeout:      *timeout,
		Out:          stdout,
	}
	if !*noBrowser {
		opts.OpenBrowser = connect.OpenSystemBrowser
	}
	switch spec.Kind {
	case connect.KindFile:
		opts.Target = connect.FileTarget(spec.Location)
	case connect.KindSecretsManager:
		cfg, err := sdkConfig(ctx, connect.SecretRegion(spec.Location))
		if err != nil {
			return err
		}
		opts.Target = connect.SecretsManagerTarget(secretsmanager.NewFromConfig(cfg), spec.Location)
	}
	_, err = connect.Run(ctx, opts)
	return err
}

// consentPageFor is the consent page that goes with an API base URL:
// Pinterest's own for api.pinterest.com (and its sandbox), else the same
// host's /oauth/, where the simulator serves it.
func consentPageFor(apiBase string) string {
	u, err := url.Parse(apiBase)
	if err != nil || u.Host == "" || strings.HasSuffix(strings.ToLower(u.Hostname()), ".pinterest.com") {
		return pinterest.DefaultAuthURL
	}
	return u.Scheme + "://" + u.Host + "/oauth/"
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}

// terminalSecretReader asks for the app secret on the terminal without echo;
// nil when in is not a terminal (then a missing secret is an error, never a
// read from a pipe that was meant for something else). The prompt goes to
// prompt (stderr). Ctrl-C at the prompt gives the terminal its echo back and
// ends the command.
func terminalSecretReader(ctx context.Context, in *os.File, prompt io.Writer) func(clientID string) (string, error) {
	fd := int(in.Fd())
	if !term.IsTerminal(fd) {
		return nil
	}
	return func(clientID string) (string, error) {
		state, err := term.GetState(fd)
		if err != nil {
			return "", fmt.Errorf("read terminal settings: %w", err)
		}
		fmt.Fprintf(prompt, "Secret of Pinterest app %s (not shown as you type): ", clientID)
		type read struct {
			b   []byte
			err error
		}
		done := make(chan read, 1)
		go func() {
			b, err := term.ReadPassword(fd)
			done <- read{b, err}
		}()
		select {
		case r := <-done:
			fmt.Fprintln(prompt)
			return string(r.b), r.err
		case <-ctx.Done():
			_ = term.Restore(fd, state)
			fmt.Fprintln(prompt)
			return "", ctx.Err()
		}
	}
}

// sdkConfig is the AWS SDK's default configuration (environment, shared
// files, AWS_ENDPOINT_URL), with region as the fallback when none is
// configured.
func sdkConfig(ctx context.Context, region string) (aws.Config, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = region
	}
	if cfg.Region == "" {
		return aws.Config{}, errors.New("no AWS region: set AWS_REGION (or AWS_PROFILE with a region), or give the resource's full ARN or URL")
	}
	return cfg, nil
}
