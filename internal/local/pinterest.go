package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/pinlist/pinlist/internal/pinterestsim"
	"github.com/pinlist/pinlist/internal/token"
)

// simScopes are the scopes of the token provisioned for the simulator.
var simScopes = []string{"ads:read", "ads:write"}

// simulator is the built-in Pinterest simulator, serving on its own port.
type simulator struct {
	server *pinterestsim.Server
	http   *http.Server
	root   string // "http://127.0.0.1:8081"
	served chan error
}

// startSimulator starts the simulator on cfg.SimAddr with the ad account
// and provisions a token pair for it in the token file, as `pinlist connect`
// would for Pinterest. It refuses to overwrite a token of another OAuth app
// (a real Pinterest connection kept in the same data directory).
func startSimulator(ctx context.Context, cfg Config, adAccount string, store token.FileStore) (*simulator, error) {
	if old, err := store.Load(ctx); err == nil && old.ClientID != SimClientID {
		return nil, fmt.Errorf("%s holds a Pinterest connection of another app, not the simulator's: "+
			"set PINTEREST_API_BASE_URL (or --pinterest-url) to use it, or use another data directory for the simulator", store.Path)
	}
	simLog := slog.New(slog.DiscardHandler)
	if cfg.Logger.Enabled(ctx, slog.LevelDebug) {
		// One line per simulated API call: only when asked for.
		simLog = cfg.Logger.With("component", "simulator")
	}
	sim, err := pinterestsim.New(pinterestsim.Options{
		AdAccounts: []string{adAccount},
		Clients:    map[string]string{SimClientID: SimClientSecret},
		Logger:     simLog,
		WriteLimit: max(cfg.SimWriteLimit, 0), // NoSimWriteLimit → 0, none
	})
	if err != nil {
		return nil, fmt.Errorf("start the Pinterest simulator: %w", err)
	}
	// Taken before the simulator issues the pair: the expiries stored are
	// never later than the ones it keeps.
	now := time.Now()
	access, refresh := sim.IssueToken(SimClientID, simScopes)
	err = store.Save(ctx, SimulatorToken(SimClientID, SimClientSecret, access, refresh, adAccount, now))
	if err != nil {
		return nil, fmt.Errorf("provision the simulator's token: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.SimAddr)
	if err != nil {
		return nil, fmt.Errorf("start the Pinterest simulator: listen on %s: %w", cfg.SimAddr, err)
	}
	s := &simulator{
		server: sim,
		http:   newHTTPServer(sim, cfg.Logger),
		root:   "http://" + ln.Addr().String(),
		served: make(chan error, 1),
	}
	go func() { s.served <- s.http.Serve(ln) }()
	return s, nil
}

// SimulatorToken is the token to store for a pair a Pinterest simulator
// issued at issuedAt (or later) to the OAuth app clientID, with the
// simulator's default lifetimes and scopes ads:read,ads:write: what `pinlist
// connect` would store for Pinterest.
func SimulatorToken(clientID, clientSecret, access, refresh, adAccount string, issuedAt time.Time) token.Token {
	return token.Token{
		ClientID:              clientID,
		ClientSecret:          clientSecret,
		AccessToken:           access,
		RefreshToken:          refresh,
		AccessTokenExpiresAt:  issuedAt.Add(pinterestsim.DefaultAccessTokenTTL),
		RefreshTokenExpiresAt: issuedAt.Add(pinterestsim.DefaultRefreshTokenTTL),
		Scope:                 strings.Join(simScopes, ","),
		AdAccountID:           adAccount,
		RefreshedAt:           issuedAt,
	}
}

// close stops the simulator's HTTP server, letting requests in flight finish
// for up to timeout.
func (s *simulator) close(timeout time.Duration, log *slog.Logger) error {
	if err := shutdownHTTP(s.http, timeout, log); err != nil {
		return fmt.Errorf("shut down the Pinterest simulator: %w", err)
	}
	if err := <-s.served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve the Pinterest simulator: %w", err)
	}
	return nil
}

// shutdownHTTP stops srv gracefully: no new connections, requests in flight
// may finish. After timeout it closes what is left: a request still running
// then is cut off (its caller retries; nothing it enqueued is lost), and a
// connection a client opened but never used no longer holds up the
// shutdown.
func shutdownHTTP(srv *http.Server, timeout time.Duration, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		log.Warn("connections still open after the shutdown timeout: closing them", "timeout", timeout.String())
		err = srv.Close()
	}
	return err
}

// newHTTPServer is the server for the ingest routes and the simulator:
// bounded header reads and idle connections, its own errors to the JSON
// log.
func newHTTPServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.With("component", "http").Handler(), slog.LevelWarn),
	}
}
