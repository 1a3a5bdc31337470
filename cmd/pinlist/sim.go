package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/pinlist/pinlist/internal/pinterestsim"
)

func init() {
	register(command{name: "sim", summary: "run the Pinterest API v5 simulator alone", run: runSim})
}

// Defaults of `pinlist sim`, so that it runs with no flags at all.
const (
	defaultSimAddr      = "127.0.0.1:8081"
	defaultAdAccount    = "549755885175"
	defaultClientID     = "pinlist-local"
	defaultClientSecret = "pinlist-local-secret"
)

// simScopes are the scopes of the token `pinlist sim` pre-issues.
var simScopes = []string{"ads:read", "ads:write"}

// shutdownTimeout bounds how long in-flight requests may take at shutdown.
const shutdownTimeout = 5 * time.Second

// listFlag is a flag that may be repeated and takes comma-separated values.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sim", stderr,
		"Serves a local, in-memory Pinterest API v5 (customer lists, audiences, OAuth) with an inspection API under /_sim/.",
	)
	addr := fs.String("addr", defaultSimAddr, "address to listen on")
	var adAccounts listFlag
	fs.Var(&adAccounts, "ad-account", "ad account ID that exists; repeat or comma-separate for several (default $PINTEREST_AD_ACCOUNT_ID, else "+defaultAdAccount+")")
	accessToken := fs.String("access-token", "", "an access token to accept for 30 days (default: issue one and print it)")
	clientID := fs.String("client-id", defaultClientID, "client ID of the OAuth app accepted at /v5/oauth/token")
	clientSecret := fs.String("client-secret", defaultClientSecret, "client secret of that OAuth app")
	maxRecords := fs.Int("max-records", pinterestsim.DefaultMaxRecordsPerRequest, "most records accepted in one create or update request")
	seed := fs.Uint64("seed", 0, "seed of the fault-injection random source (0: random)")
	writeLimit := fs.Int("write-limit", pinterestsim.PinterestWriteLimit,
		"write calls a minute per ad account, like Pinterest's ads_write budget: customer list and audience creates and updates share it (a token bucket of a tenth of it; 429 code 8 when spent); 0 for no limit")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(adAccounts) == 0 {
		if env := os.Getenv("PINTEREST_AD_ACCOUNT_ID"); env != "" {
			adAccounts = listFlag{env}
		} else {
			adAccounts = listFlag{defaultAdAccount}
		}
	}
	if *writeLimit < 0 {
		return fmt.Errorf("%w: --write-limit %d: want 0 (no limit) or more", errUsage, *writeLimit)
	}
	if *clientID == "" || *clientSecret == "" {
		return errors.New("--client-id and --client-secret must not be empty")
	}

	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	sim, err := pinterestsim.New(pinterestsim.Options{
		AdAccounts:           adAccounts,
		Clients:              map[string]string{*clientID: *clientSecret},
		MaxRecordsPerRequest: *maxRecords,
		Logger:               logger,
		Seed:                 *seed,
		WriteLimit:           *writeLimit,
	})
	if err != nil {
		return fmt.Errorf("start simulator: %w", err)
	}
	var refreshToken string
	if *accessToken != "" {
		sim.AddAccessToken(*accessToken, simScopes, time.Now().Add(pinterestsim.DefaultAccessTokenTTL))
	} else {
		*accessToken, refreshToken = sim.IssueToken(*clientID, simScopes)
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	base := "http://" + ln.Addr().String()
	printSimBanner(stdout, simBanner{
		base:          base,
		adAccounts:    adAccounts,
		clientID:      *clientID,
		defaultSecret: *clientSecret == defaultClientSecret,
		accessToken:   *accessToken,
		refreshToken:  refreshToken,
		writeLimit:    *writeLimit,
	})

	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info("pinterest simulator listening", slog.String("addr", ln.Addr().String()))

	select {
	case err := <-served:
		return fmt.Errorf("serve simulator: %w", err)
	case <-ctx.Done():
	}
	logger.Info("pinterest simulator shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down simulator: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve simulator: %w", err)
	}
	return nil
}

// simBanner is what `pinlist sim` tells its user at start.
type simBanner struct {
	base          string
	adAccounts    []string
	clientID      string
	defaultSecret bool
	accessToken   string // printed only when the simulator issued it
	refreshToken  string // "" when the token came from --access-token
	writeLimit    int    // write calls a minute per ad account; 0: none
}

// printSimBanner prints where the simulator is and how to call it. The
// tokens it prints are the simulator's own fake local credentials; a token
// or secret given on the command line is never echoed.
func printSimBanner(w io.Writer, b simBanner) {
	fmt.Fprintln(w, "Pinterest API v5 simulator (pinlist sim)")
	fmt.Fprintf(w, "  base URL:       %s/v5\n", b.base)
	fmt.Fprintf(w, "  ad accounts:    %s\n", strings.Join(b.adAccounts, ", "))
	secret := "as given by --client-secret"
	if b.defaultSecret {
		secret = defaultClientSecret + " (the default)"
	}
	fmt.Fprintf(w, "  OAuth client:   %s, secret %s\n", b.clientID, secret)
	if b.refreshToken != "" {
		fmt.Fprintf(w, "  access token:   %s\n", b.accessToken)
		fmt.Fprintf(w, "  refresh token:  %s\n", b.refreshToken)
		fmt.Fprintln(w, "                  (issued by this simulator for local use: scopes ads:read,ads:write, valid 30 days)")
	} else {
		fmt.Fprintln(w, "  access token:   as given by --access-token (scopes ads:read,ads:write, valid 30 days)")
	}
	if b.writeLimit > 0 {
		fmt.Fprintf(w, "  write limit:    %d calls a minute per ad account (--write-limit 0 for none)\n", b.writeLimit)
	} else {
		fmt.Fprintln(w, "  write limit:    none")
	}
	fmt.Fprintf(w, "  inspect:        %s/_sim/state\n", b.base)
	fmt.Fprintf(w, "  example:        pinlist serve --pinterest-url %s/v5\n", b.base)
}
