// Package stack stands up on the host what pinlist's SAM stack gives its
// Lambda functions, and runs the built functions in it under aws-lambda-rie:
// the changes queue with its dead-letter queue, the ledger table (with its
// stream), the two secrets and the alert topic in moto, and the Pinterest
// simulator in place of Pinterest. The
// runtime tests and the `make invoke-*` targets share it, so the tests prove
// what the targets run.
package stack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/pinlist/pinlist/internal/config"
	"github.com/pinlist/pinlist/internal/lambdarie"
	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/pinterestsim"
	"github.com/pinlist/pinlist/internal/token"
	"github.com/pinlist/pinlist/internal/upload"
)

// The functions, named as their directories under functions/.
const (
	Ingest  = "ingest"
	Apply   = "apply"
	Upload  = "upload"
	Refresh = "refresh"
)

// Fake identities of the local stack. They are published test values: never
// use them in a deployment.
const (
	// IngestToken is the ingest token every events/apigw-*.json request
	// carries (events/README.md); the stack's ingest token secret holds it.
	IngestToken = "local-test-ingest-token-0c6f9e2a7b1d4e58"
	// AdAccountID is the simulator's ad account the upload function writes to.
	AdAccountID = "549755885175"
	// ClientID and ClientSecret are the OAuth app the simulator accepts and
	// the token secret names (the refresh grant uses them).
	ClientID     = "pinlist-local"
	ClientSecret = "pinlist-local-secret"
	// ConnectionName is PINLIST_CONNECTION_NAME of every function.
	ConnectionName = "pinlist-local"
)

// Queue settings, as in template.yaml.
const (
	visibilityTimeout = 1020 * time.Second
	maxReceiveCount   = 5
	retention         = 14 * 24 * time.Hour
)

// scopes are the scopes of the stack's Pinterest token.
var scopes = []string{"ads:read", "ads:write"}

// function is how the stack runs one function: what template.yaml gives it.
type function struct {
	logicalID string
	timeout   time.Duration
	memoryMB  int
	event     string // its default sample event, relative to the module root
}

func lookup(name string) (function, error) {
	switch name {
	case Ingest:
		return function{"IngestFunction", 15 * time.Second, 256, "events/apigw-profiles.json"}, nil
	case Apply:
		return function{"ApplyFunction", 120 * time.Second, 256, "events/sqs-standard-batch.json"}, nil
	case Upload:
		return function{"UploadFunction", 120 * time.Second, 256, "events/dynamodb-stream.json"}, nil
	case Refresh:
		return function{"RefreshFunction", 60 * time.Second, 128, "events/schedule-force.json"}, nil
	}
	return function{}, fmt.Errorf("unknown function %q: want %s, %s, %s or %s", name, Ingest, Apply, Upload, Refresh)
}

// Names are the functions the stack runs, in the order data flows.
func Names() []string { return []string{Ingest, Apply, Upload, Refresh} }

// Package is the Go package of a function's entry point, relative to the
// module root (for [lambdarie.Build]).
func Package(name string) string { return "./functions/" + name }

// LogicalID is a function's logical ID in template.yaml.
func LogicalID(name string) (string, error) {
	fn, err := lookup(name)
	return fn.logicalID, err
}

// DefaultEvent is the events/ file a function is invoked with by default,
// relative to the module root.
func DefaultEvent(name string) (string, error) {
	fn, err := lookup(name)
	return fn.event, err
}

// Options configure a stack.
type Options struct {
	// AWS is an SDK configuration aimed at moto (awstest.Moto.Config).
	AWS aws.Config
	// AWSEnv is the environment that points a child process's SDK at the
	// same moto (awstest.Moto.Env).
	AWSEnv []string
	// RIE is the path of aws-lambda-rie (lambdarie.Install).
	RIE string
	// Output, when not nil, receives the functions' and the emulators'
	// output as it is written.
	Output io.Writer
}

// Stack is one local stand-in for a deployed pinlist stack. Close it.
type Stack struct {
	// Resources in moto, named like a stack's ("pinlist-local-<random>").
	QueueURL            string // the standard changes queue
	DLQURL              string
	LedgerTable         string // the DynamoDB ledger table (ledger.DynamoTableInput, with its stream)
	TokenSecretID       string // the Pinterest token JSON (docs/TOKEN.md)
	IngestTokenSecretID string // holds IngestToken
	AlertTopicARN       string

	opts   Options
	sim    *pinterestsim.Server
	srv    *http.Server
	served chan error
	simURL string

	mu     sync.Mutex
	fns    []*lambdarie.Function
	closed bool

	closeOnce sync.Once
	closeErr  error
}

// New starts the Pinterest simulator on a free 127.0.0.1 port and creates
// the queue, the dead-letter queue, the ledger table, the secrets and the
// alert topic in moto.
// The token secret holds a token pair the simulator issued (access token
// valid 30 days, so a scheduled refresh finds it not yet due).
func New(ctx context.Context, opts Options) (*Stack, error) {
	sim, err := pinterestsim.New(pinterestsim.Options{
		AdAccounts: []string{AdAccountID},
		Clients:    map[string]string{ClientID: ClientSecret},
	})
	if err != nil {
		return nil, fmt.Errorf("create the Pinterest simulator: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the Pinterest simulator: %w", err)
	}
	s := &Stack{
		opts:   opts,
		sim:    sim,
		srv:    &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second},
		served: make(chan error, 1),
		simURL: "http://" + ln.Addr().String(),
	}
	go func() { s.served <- s.srv.Serve(ln) }()
	if err := s.create(ctx); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	return s, nil
}

// create makes the stack's AWS resources in moto.
func (s *Stack) create(ctx context.Context) error {
	suffix := make([]byte, 4)
	rand.Read(suffix) // never fails (crypto/rand)
	name := "pinlist-local-" + hex.EncodeToString(suffix)

	q := sqs.NewFromConfig(s.opts.AWS)
	dlq, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName: aws.String(name + "-changes-dlq"),
		Attributes: map[string]string{
			string(types.QueueAttributeNameMessageRetentionPeriod): seconds(retention),
		},
	})
	if err != nil {
		return fmt.Errorf("create the dead-letter queue: %w", err)
	}
	s.DLQURL = aws.ToString(dlq.QueueUrl)
	attrs, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: dlq.QueueUrl, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return fmt.Errorf("get the dead-letter queue's ARN: %w", err)
	}
	redrive, err := json.Marshal(map[string]any{
		"deadLetterTargetArn": attrs.Attributes[string(types.QueueAttributeNameQueueArn)],
		"maxReceiveCount":     maxReceiveCount,
	})
	if err != nil {
		return fmt.Errorf("encode the redrive policy: %w", err)
	}
	queue, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName: aws.String(name + "-changes"),
		Attributes: map[string]string{
			string(types.QueueAttributeNameVisibilityTimeout):      seconds(visibilityTimeout),
			string(types.QueueAttributeNameMessageRetentionPeriod): seconds(retention),
			string(types.QueueAttributeNameRedrivePolicy):          string(redrive),
		},
	})
	if err != nil {
		return fmt.Errorf("create the queue: %w", err)
	}
	s.QueueURL = aws.ToString(queue.QueueUrl)

	s.LedgerTable = name + "-ledger"
	if err := ledger.CreateDynamoTable(ctx, dynamodb.NewFromConfig(s.opts.AWS), s.LedgerTable); err != nil {
		return err
	}

	tok, err := json.Marshal(s.issueToken())
	if err != nil {
		return fmt.Errorf("encode the Pinterest token: %w", err)
	}
	sm := secretsmanager.NewFromConfig(s.opts.AWS)
	if s.TokenSecretID, err = createSecret(ctx, sm, name+"/pinterest-token", string(tok)); err != nil {
		return err
	}
	if s.IngestTokenSecretID, err = createSecret(ctx, sm, name+"/ingest-token", IngestToken); err != nil {
		return err
	}
	topic, err := sns.NewFromConfig(s.opts.AWS).CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(name + "-alerts")})
	if err != nil {
		return fmt.Errorf("create the alert topic: %w", err)
	}
	s.AlertTopicARN = aws.ToString(topic.TopicArn)
	return nil
}

// issueToken has the simulator issue a token pair, as `pinlist connect`
// would store it.
func (s *Stack) issueToken() token.Token {
	access, refresh := s.sim.IssueToken(ClientID, scopes)
	now := time.Now().UTC().Truncate(time.Second)
	return token.Token{
		ClientID:              ClientID,
		ClientSecret:          ClientSecret,
		AccessToken:           access,
		RefreshToken:          refresh,
		AccessTokenExpiresAt:  now.Add(pinterestsim.DefaultAccessTokenTTL),
		RefreshTokenExpiresAt: now.Add(pinterestsim.DefaultRefreshTokenTTL),
		Scope:                 "ads:read,ads:write",
		AdAccountID:           AdAccountID,
		RefreshedAt:           now,
	}
}

func createSecret(ctx context.Context, sm *secretsmanager.Client, name, value string) (arn string, err error) {
	out, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String(name), SecretString: aws.String(value),
	})
	if err != nil {
		return "", fmt.Errorf("create secret %s: %w", name, err)
	}
	return aws.ToString(out.ARN), nil
}

func seconds(d time.Duration) string { return strconv.Itoa(int(d / time.Second)) }

// Record records an SQS batch in the stack's ledger with the apply
// function's own code, in this process: what the apply function would do
// with it. It fails when a message is not recorded. The upload function's
// sample stream event names lists; Record(events/sqs-standard-batch.json)
// first makes their rows pending.
func (s *Stack) Record(ctx context.Context, ev events.SQSEvent) error {
	opts := ledger.DynamoOptions{Client: dynamodb.NewFromConfig(s.opts.AWS), Table: s.LedgerTable}
	store, err := ledger.NewDynamo(opts)
	if err != nil {
		return err
	}
	names, err := ledger.NewDynamoNames(opts)
	if err != nil {
		return err
	}
	h, err := upload.New(upload.Options{Client: upload.ApplyOnly{}, Ledger: store, Names: names, Metrics: io.Discard,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	a := h.Apply(ctx, ev.Records)
	if len(a.Failed) > 0 {
		return fmt.Errorf("record the batch in the ledger: %d of %d messages failed: %w", len(a.Failed), a.Messages, a.Failed[0].Err)
	}
	return nil
}

// Sim is the Pinterest simulator behind the stack (inspect it with State and
// Records).
func (s *Stack) Sim() *pinterestsim.Server { return s.sim }

// SimURL is the simulator's base URL, http://127.0.0.1:PORT.
func (s *Stack) SimURL() string { return s.simURL }

// APIBaseURL is PINTEREST_API_BASE_URL for the functions: SimURL()+"/v5".
func (s *Stack) APIBaseURL() string { return s.simURL + "/v5" }

// Env is the environment of the named function: the variables template.yaml
// sets for it (values pointing at this stack), and the SDK settings that
// point it at moto.
func (s *Stack) Env(name string) ([]string, error) {
	if _, err := lookup(name); err != nil {
		return nil, err
	}
	env := append([]string{
		// The machine's AWS configuration files must not reach the run.
		"AWS_CONFIG_FILE=" + os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
	}, s.opts.AWSEnv...)
	env = append(env,
		config.EnvConnectionName+"="+ConnectionName,
		config.EnvLogLevel+"=INFO",
	)
	switch name {
	case Ingest:
		env = append(env,
			config.EnvQueueURL+"="+s.QueueURL,
			config.EnvIngestTokenSecretID+"="+s.IngestTokenSecretID,
		)
	case Apply:
		env = append(env,
			config.EnvLedgerTable+"="+s.LedgerTable,
			config.EnvErasureGuard+"="+config.DefaultErasureGuard.String(),
		)
	case Upload:
		env = append(env,
			config.EnvAPIBaseURL+"="+s.APIBaseURL(),
			config.EnvAdAccountID+"="+AdAccountID,
			config.EnvTokenSecretID+"="+s.TokenSecretID,
			config.EnvMaxRecordsPerRequest+"="+strconv.Itoa(config.DefaultMaxRecordsPerRequest),
			config.EnvLedgerTable+"="+s.LedgerTable,
			config.EnvErasureGuard+"="+config.DefaultErasureGuard.String(),
		)
	case Refresh:
		env = append(env,
			config.EnvAPIBaseURL+"="+s.APIBaseURL(),
			config.EnvTokenSecretID+"="+s.TokenSecretID,
			config.EnvRefreshBefore+"="+config.DefaultRefreshBefore.String(),
			config.EnvAlertTopicARN+"="+s.AlertTopicARN,
		)
	}
	return env, nil
}

// Start runs bootstrap, the named function built for the host
// (lambdarie.Build of Package(name)), under its own emulator with the
// function's environment, timeout and memory size. Close stops it.
func (s *Stack) Start(ctx context.Context, name, bootstrap string) (*lambdarie.Function, error) {
	fn, err := lookup(name)
	if err != nil {
		return nil, err
	}
	env, err := s.Env(name)
	if err != nil {
		return nil, err
	}
	f, err := lambdarie.Start(ctx, lambdarie.Options{
		RIE:          s.opts.RIE,
		Bootstrap:    bootstrap,
		FunctionName: "pinlist-local-" + fn.logicalID,
		Timeout:      fn.timeout,
		MemoryMB:     fn.memoryMB,
		Env:          env,
		Output:       s.opts.Output,
	})
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.Join(fmt.Errorf("start %s: the stack is closed", name), f.Close())
	}
	s.fns = append(s.fns, f)
	return f, nil
}

// Close stops every function the stack started, then the simulator. The
// resources in moto are left to moto's own lifetime. Calling it again
// returns the first result.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.stop() })
	return s.closeErr
}

func (s *Stack) stop() error {
	s.mu.Lock()
	fns := s.fns
	s.fns, s.closed = nil, true
	s.mu.Unlock()
	var errs []error
	for _, f := range fns {
		errs = append(errs, f.Close())
	}
	if err := s.srv.Close(); err != nil {
		errs = append(errs, fmt.Errorf("stop the Pinterest simulator: %w", err))
	}
	if err := <-s.served; !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, fmt.Errorf("serve the Pinterest simulator: %w", err))
	}
	return errors.Join(errs...)
}
