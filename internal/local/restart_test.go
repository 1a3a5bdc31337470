package local

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pinlist/pinlist/internal/pinterestsim"
	"github.com/pinlist/pinlist/internal/token"
)

// externalSim is a simulator the test serves itself, so that it outlives
// the stacks pointed at it (as `pinlist sim` does).
type externalSim struct {
	*pinterestsim.Server
	root string
}

const testAdAccount = "549755885175"

func startExternalSim(t *testing.T) *externalSim {
	t.Helper()
	sim, err := pinterestsim.New(pinterestsim.Options{
		AdAccounts: []string{testAdAccount},
		Clients:    map[string]string{"test-app": "test-secret"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve simulator: %v", err)
		}
	})
	return &externalSim{Server: sim, root: "http://" + ln.Addr().String()}
}

// connect stores a token pair the simulator issued in dataDir's token file,
// as pinlist connect would.
func (s *externalSim) connect(t *testing.T, dataDir string) {
	t.Helper()
	now := time.Now()
	access, refresh := s.IssueToken("test-app", simScopes)
	err := token.FileStore{Path: TokenPath(dataDir)}.Save(context.Background(),
		SimulatorToken("test-app", "test-secret", access, refresh, testAdAccount, now))
	if err != nil {
		t.Fatal(err)
	}
}

// TestRestartDuringABacklogSendsEveryPendingChange: Pinterest hangs, so the
// changes are recorded in the ledger (the queue empties) but not sent: a
// backlog of pending rows when the stack is closed. The flush in flight is
// cancelled; a new stack on the same data directory sends every pending
// change once Pinterest answers again, and nothing goes to the dead letters.
func TestRestartDuringABacklogSendsEveryPendingChange(t *testing.T) {
	sim := startExternalSim(t)
	cfg, stdout, logs := testConfig(t)
	cfg.PinterestURL = sim.root + "/v5"
	cfg.ShutdownGrace = 50 * time.Millisecond
	sim.connect(t, cfg.DataDir)
	sim.SetFault(pinterestsim.RouteAll, pinterestsim.Fault{Latency: time.Hour})

	s1, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	first := &testStack{Stack: s1, cfg: cfg, stdout: stdout, logs: logs}
	var g gen
	var ps []profile
	for i := range 4 {
		aud := audA
		if i%2 == 1 {
			aud = audB
		}
		ps = append(ps, profile{ids: []ident{g.email(), g.gaid(), g.idfa()}, events: []membershipEvent{{aud, "realized", t0.Add(time.Duration(i) * time.Minute)}}})
	}
	m := newModel()
	m.add(ps...)
	first.mustAccept(t, body(t, ps...))
	waitFor(t, "every change recorded in the ledger", func() bool {
		p, err := s1.Progress(t.Context())
		return err == nil && p.Applied == p.Received && p.Received > 0 && p.Queued+p.InFlight == 0
	})
	if err := s1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	sim.ClearFaults()
	cfg2, stdout2, logs2 := testConfig(t)
	cfg2.DataDir, cfg2.PinterestURL = cfg.DataDir, cfg.PinterestURL
	second := startStack(t, cfg2, stdout2, logs2)
	waitMembership(t, sim.root, testAdAccount, m.membership())
	p, err := second.Progress(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if p.DeadLetters != 0 {
		t.Errorf("%d dead letters, want none", p.DeadLetters)
	}
}

// TestRefusesASecondStackOnTheSameDataDir: two stacks on one queue would
// both deliver; the second refuses to start.
func TestRefusesASecondStackOnTheSameDataDir(t *testing.T) {
	s := newStack(t, nil)
	cfg, _, _ := testConfig(t)
	cfg.DataDir = s.cfg.DataDir
	if s2, err := Start(context.Background(), cfg); err == nil {
		s2.Close()
		t.Fatal("a second stack started on the same data directory")
	}
}

// TestPinterestURLNeedsAToken: pointed at Pinterest with no token stored,
// the stack refuses to start and says how to connect.
func TestPinterestURLNeedsAToken(t *testing.T) {
	sim := startExternalSim(t)
	cfg, _, _ := testConfig(t)
	cfg.PinterestURL = sim.root + "/v5"
	_, err := Start(context.Background(), cfg)
	if err == nil {
		t.Fatal("started without a token")
	}
	if want := "pinlist connect --store file:" + filepath.Join(cfg.DataDir, TokenFile); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}
