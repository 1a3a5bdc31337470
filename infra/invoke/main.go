// Command invoke runs one of pinlist's Lambda functions on this machine the
// way `sam local invoke` would, without Docker or AWS: it builds the function
// for the host, starts moto_server and the Pinterest simulator with the queue,
// ledger table, secrets and topic the SAM stack would create, runs the function under
// aws-lambda-rie with the environment template.yaml gives it, invokes it with
// an event file, prints the response, and stops everything it started.
//
//	go run ./infra/invoke [-event FILE] ingest|apply|upload|refresh
//
// `make invoke-ingest`, `make invoke-apply`, `make invoke-upload` and `make
// invoke-refresh` run it. Before invoking upload it records
// events/sqs-standard-batch.json in the ledger (the apply function's code, in
// this process), so that the sample stream event's lists have pending rows.
// The response goes to standard output; progress and the function's log go
// to standard error. It needs Go, moto_server and, the first time, the Go
// module proxy (to build aws-lambda-rie, cached afterwards).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/pinlist/pinlist/internal/awstest"
	"github.com/pinlist/pinlist/internal/lambdarie"
	"github.com/pinlist/pinlist/internal/lambdarie/stack"
	"github.com/pinlist/pinlist/internal/ledger"
	"github.com/pinlist/pinlist/internal/token"
)

// errUsage marks a command-line mistake (exit status 2).
var errUsage = errors.New("usage: go run ./infra/invoke [-event FILE] ingest|apply|upload|refresh")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "invoke:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// run does one invocation. Everything it starts is stopped before it
// returns, also on an error or a signal (ctx).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	stderr = &lockedWriter{w: stderr} // the function's log is copied to it concurrently
	fs := flag.NewFlagSet("invoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	eventFlag := fs.String("event", "", "the event to invoke with (default: the function's sample under events/)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() != 1 {
		return errUsage
	}
	name := fs.Arg(0)
	defaultEvent, err := stack.DefaultEvent(name)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	root, err := lambdarie.ModuleDir(".")
	if err != nil {
		return err
	}
	eventFile := *eventFlag
	if eventFile == "" {
		eventFile = filepath.Join(root, defaultEvent)
	}
	event, err := os.ReadFile(eventFile)
	if err != nil {
		return fmt.Errorf("read the event: %w", err)
	}

	cache := lambdarie.DefaultCacheDir()
	if path, ok := lambdarie.Cached(cache); !ok {
		fmt.Fprintf(stderr, "building aws-lambda-rie %s into %s (once; about a minute)\n", lambdarie.Version, filepath.Dir(path))
	}
	rie, err := lambdarie.Install(ctx, cache)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "pinlist-invoke-")
	if err != nil {
		return fmt.Errorf("create a directory for the bootstrap: %w", err)
	}
	defer os.RemoveAll(tmp)
	bootstrap := filepath.Join(tmp, "bootstrap")
	fmt.Fprintf(stderr, "building %s for the host\n", stack.Package(name))
	if err := lambdarie.Build(ctx, root, stack.Package(name), bootstrap); err != nil {
		return err
	}

	moto, err := awstest.Start()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, moto.Close()) }()
	fmt.Fprintf(stderr, "started moto_server (pid %d) on %s\n", moto.PID(), moto.Endpoint())
	st, err := stack.New(ctx, stack.Options{AWS: moto.Config(), AWSEnv: moto.Env(), RIE: rie, Output: stderr})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, st.Close()) }()
	fmt.Fprintf(stderr, "started the Pinterest simulator on %s (ad account %s)\n", st.SimURL(), stack.AdAccountID)
	if name == stack.Upload {
		if err := recordSample(ctx, stderr, root, st); err != nil {
			return err
		}
	}
	fn, err := st.Start(ctx, name, bootstrap)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "started %s under aws-lambda-rie (pid %d) on %s\n", name, fn.PID(), fn.URL())
	fmt.Fprintf(stderr, "invoking %s with %s\n", name, eventFile)

	body, err := fn.Invoke(ctx, event)
	var fe *lambdarie.FunctionError
	if errors.As(err, &fe) {
		printJSON(stdout, fe)
		return fmt.Errorf("%s returned an error", name)
	}
	if err != nil {
		return err
	}
	printJSON(stdout, json.RawMessage(body))
	return summarize(ctx, stderr, name, st, moto)
}

// printJSON writes v indented; an API Gateway response's JSON body is shown
// decoded as well.
func printJSON(w io.Writer, v any) {
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		fmt.Fprintf(w, "%s\n", v)
		return
	}
	fmt.Fprintf(w, "%s\n", out)
	var api struct {
		Body *string `json:"body"`
	}
	if raw, ok := v.(json.RawMessage); ok && json.Unmarshal(raw, &api) == nil && api.Body != nil && json.Valid([]byte(*api.Body)) {
		body, _ := json.MarshalIndent(json.RawMessage(*api.Body), "", "  ")
		fmt.Fprintf(w, "body:\n%s\n", body)
	}
}

// summarize says on w what the invocation left behind in the stack.
func summarize(ctx context.Context, w io.Writer, name string, st *stack.Stack, moto *awstest.Moto) error {
	switch name {
	case stack.Ingest:
		out, err := moto.SQS().GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl:       aws.String(st.QueueURL),
			AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages},
		})
		if err != nil {
			return fmt.Errorf("count the queued messages: %w", err)
		}
		fmt.Fprintf(w, "queue %s: %s messages waiting\n", st.QueueURL,
			out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)])
	case stack.Apply:
		store, err := ledger.NewDynamo(ledger.DynamoOptions{Client: moto.DynamoDB(), Table: st.LedgerTable})
		if err != nil {
			return err
		}
		lists, err := store.PendingLists(ctx)
		if err != nil {
			return fmt.Errorf("read the ledger: %w", err)
		}
		fmt.Fprintf(w, "ledger %s: %d lists with rows pending for the upload function\n", st.LedgerTable, len(lists))
		for _, l := range lists {
			fmt.Fprintf(w, "  %s\n", l.Key())
		}
	case stack.Upload:
		lists := st.Sim().State().AdAccounts[stack.AdAccountID].CustomerLists
		fmt.Fprintf(w, "simulator: %d customer lists in ad account %s\n", len(lists), stack.AdAccountID)
		for _, l := range lists {
			fmt.Fprintf(w, "  %s  %-5s  %d members  %q\n", l.ID, l.ListType, len(l.Records), l.Name)
		}
	case stack.Refresh:
		tok, err := token.NewSecretsManagerStore(moto.SecretsManager(), st.TokenSecretID).Load(ctx)
		if err != nil {
			return fmt.Errorf("read the stored token: %w", err)
		}
		fmt.Fprintf(w, "token secret: access token %s expires %s, refresh token %s expires %s\n",
			token.Fingerprint(tok.AccessToken), tok.AccessTokenExpiresAt.Format(time.RFC3339),
			token.Fingerprint(tok.RefreshToken), tok.RefreshTokenExpiresAt.Format(time.RFC3339))
	}
	return nil
}

// recordSample records events/sqs-standard-batch.json in the stack's ledger.
func recordSample(ctx context.Context, w io.Writer, root string, st *stack.Stack) error {
	file := filepath.Join(root, "events", "sqs-standard-batch.json")
	raw, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read the apply sample: %w", err)
	}
	var ev events.SQSEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		return fmt.Errorf("decode the apply sample: %w", err)
	}
	fmt.Fprintf(w, "recording %s in the ledger %s first (what the apply function does)\n", file, st.LedgerTable)
	return st.Record(ctx, ev)
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
