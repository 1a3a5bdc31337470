package awstest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/pinlist/pinlist/internal/childproc"
)

// Region, AccountID, AccessKeyID and SecretAccessKey are what moto answers
// with and what the clients sign with.
const (
	Region          = "us-east-1"
	AccountID       = "123456789012"
	AccessKeyID     = "test"
	SecretAccessKey = "test"
)

// ErrNotInstalled is returned by Start when moto_server is not on PATH.
var ErrNotInstalled = errors.New(`moto_server not found: install it with pip install "moto[server]"`)

const (
	readyTimeout = 60 * time.Second // a cold Python start on a busy 2-core machine
	stopGrace    = 5 * time.Second  // SIGTERM to SIGKILL
	logTail      = 16 << 10         // bytes of server output kept for error messages
	startTries   = 3                // a free port can be taken between probe and bind
)

// Moto is one running moto_server. Its methods are safe for concurrent use.
type Moto struct {
	pid      int
	endpoint string
	cfg      aws.Config
	done     chan struct{} // closed when the process has exited
	waitErr  error         // set before done is closed
	out      *childproc.Tail
	names    atomic.Int64

	closeOnce sync.Once
	closeErr  error
}

// Main starts one moto_server, stores it in *moto, runs the tests and stops
// the server; it returns the exit code for os.Exit. Call it from TestMain.
// When the server cannot start, every test of the binary fails with the
// reason (for a missing moto_server, how to install it).
func Main(m *testing.M, moto **Moto) int {
	srv, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	*moto = srv
	code := m.Run()
	if err := srv.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Start runs moto_server on a free 127.0.0.1 port and returns once it answers
// HTTP. The caller must Close it.
func Start() (*Moto, error) {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		return nil, ErrNotInstalled
	}
	for try := 1; ; try++ {
		m, err := start(bin)
		if err == nil {
			return m, nil
		}
		if !errors.Is(err, errPortTaken) || try == startTries {
			return nil, err
		}
	}
}

var errPortTaken = errors.New("port taken")

func start(bin string) (*Moto, error) {
	port, err := childproc.FreePort()
	if err != nil {
		return nil, fmt.Errorf("find a free port for moto_server: %w", err)
	}
	out := childproc.NewTail(logTail)
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Stdout = out
	cmd.Stderr = out
	childproc.SetProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start moto_server: %w", err)
	}
	endpoint := "http://127.0.0.1:" + strconv.Itoa(port)
	m := &Moto{
		pid:      cmd.Process.Pid,
		endpoint: endpoint,
		done:     make(chan struct{}),
		out:      out,
		cfg: aws.Config{
			Region:       Region,
			Credentials:  credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
			BaseEndpoint: aws.String(endpoint),
		},
	}
	go func() {
		m.waitErr = cmd.Wait()
		close(m.done)
	}()
	if err := m.waitReady(); err != nil {
		_ = m.Close()
		return nil, err
	}
	return m, nil
}

// waitReady polls until the server answers, the process exits, or the
// deadline passes.
func (m *Moto) waitReady() error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-m.done:
			log := m.out.String()
			if strings.Contains(log, "Address already in use") {
				return errPortTaken
			}
			return fmt.Errorf("moto_server (pid %d) exited before answering: %v\n%s", m.pid, m.waitErr, log)
		case <-tick.C:
		}
		resp, err := client.Get(m.endpoint + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("moto_server (pid %d) did not answer on %s within %s: %w\n%s",
				m.pid, m.endpoint, readyTimeout, err, m.out.String())
		}
	}
}

// Close stops the server: SIGTERM to its process group, then SIGKILL if it
// has not exited within a few seconds. Calling it again returns the first
// result.
func (m *Moto) Close() error {
	m.closeOnce.Do(func() { m.closeErr = m.stop() })
	return m.closeErr
}

func (m *Moto) stop() error {
	if err := childproc.Terminate(m.pid); err != nil {
		return fmt.Errorf("stop moto_server (pid %d): %w", m.pid, err)
	}
	timer := time.NewTimer(stopGrace)
	defer timer.Stop()
	select {
	case <-m.done:
	case <-timer.C:
	}
	// Also after a clean exit: anything left in the group goes too.
	if err := childproc.Kill(m.pid); err != nil {
		return fmt.Errorf("kill moto_server (pid %d): %w", m.pid, err)
	}
	<-m.done
	return nil
}

// PID is the server's process ID (also its process group ID on Unix).
func (m *Moto) PID() int { return m.pid }

// Endpoint is the server's base URL, http://127.0.0.1:PORT.
func (m *Moto) Endpoint() string { return m.endpoint }

// Config is an SDK configuration aimed at the server: static credentials
// "test"/"test", region us-east-1, BaseEndpoint = Endpoint(). It reads nothing
// from the environment or ~/.aws.
func (m *Moto) Config() aws.Config { return m.cfg.Copy() }

// SQS is an SQS client for the server.
func (m *Moto) SQS() *sqs.Client { return sqs.NewFromConfig(m.cfg) }

// DynamoDB is a DynamoDB client for the server.
func (m *Moto) DynamoDB() *dynamodb.Client { return dynamodb.NewFromConfig(m.cfg) }

// SecretsManager is a Secrets Manager client for the server.
func (m *Moto) SecretsManager() *secretsmanager.Client { return secretsmanager.NewFromConfig(m.cfg) }

// SNS is an SNS client for the server.
func (m *Moto) SNS() *sns.Client { return sns.NewFromConfig(m.cfg) }

// Env is the environment that points a child process's AWS SDK (a Lambda
// bootstrap under the RIE, the pinlist binary) at the server. Append it to
// os.Environ(): later entries win.
func (m *Moto) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL=" + m.endpoint,
		"AWS_REGION=" + Region,
		"AWS_DEFAULT_REGION=" + Region,
		"AWS_ACCESS_KEY_ID=" + AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + SecretAccessKey,
	}
}

// Reset wipes every resource on the server (POST /moto-api/reset). Tests of
// one binary share the server, so only a test that runs alone may use it.
func (m *Moto) Reset(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.endpoint+"/moto-api/reset", nil)
	if err != nil {
		return fmt.Errorf("build moto reset request: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reset moto: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("reset moto: status %s", resp.Status)
	}
	return nil
}

// Log is the tail of the server's output (its request log), for a failing
// test's message.
func (m *Moto) Log() string { return m.out.String() }
