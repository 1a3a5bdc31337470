package lambdarie

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pinlist/pinlist/internal/childproc"
)

// InvocationsPath is the emulator's invoke route; it is the same for every
// function (one function per emulator).
const InvocationsPath = "/2015-03-31/functions/function/invocations"

const (
	readyTimeout    = 30 * time.Second // a busy 2-core machine
	stopGrace       = 5 * time.Second  // SIGTERM to SIGKILL
	logTail         = 64 << 10         // bytes of output kept for Log
	startTries      = 3                // a free port can be taken between probe and bind
	maxResponseSize = 6 << 20          // Lambda's limit for a synchronous response
)

// Options describe one function to run under the emulator.
type Options struct {
	// RIE is the path of aws-lambda-rie (see [Install]).
	RIE string
	// Bootstrap is the path of the function's executable (see [Build]). It
	// runs in the bootstrap's directory, as in /var/task.
	Bootstrap string
	// FunctionName is AWS_LAMBDA_FUNCTION_NAME (lambdacontext.FunctionName).
	FunctionName string
	// Timeout is the function's timeout, the deadline of each invocation's
	// context; 0 means the emulator's default (300 s).
	Timeout time.Duration
	// MemoryMB is AWS_LAMBDA_FUNCTION_MEMORY_SIZE; 0 means the emulator's
	// default (3008).
	MemoryMB int
	// Env is the function's environment, KEY=VALUE. Nothing of the caller's
	// environment reaches the function but PATH, so credentials, profiles and
	// settings of the machine cannot leak into a run.
	Env []string
	// Output, when not nil, receives the emulator's and the function's output
	// as it is written. It is kept in [Function.Log] either way.
	Output io.Writer
}

// Function is one bootstrap running under its own emulator. Its methods are
// safe for concurrent use; the emulator serves invocations one at a time.
type Function struct {
	name    string
	pid     int
	url     string // http://127.0.0.1:PORT
	client  *http.Client
	out     *childproc.Tail
	done    chan struct{} // closed when the emulator has exited
	waitErr error         // set before done is closed

	closeOnce sync.Once
	closeErr  error
}

// FunctionError is a handler's error as the emulator reports it: HTTP 200
// with {"errorMessage","errorType"} as the body.
type FunctionError struct {
	Type    string `json:"errorType"`
	Message string `json:"errorMessage"`
}

func (e *FunctionError) Error() string {
	return "function error " + e.Type + ": " + e.Message
}

// ErrPortTaken reports that a port chosen for the emulator was taken by
// another process before the emulator bound it; Start retries on it.
var ErrPortTaken = errors.New("emulator port taken")

// Start runs opts.Bootstrap under a new emulator listening on free 127.0.0.1
// ports (the invoke API and the Runtime API each get their own) and returns
// once the emulator accepts connections. The bootstrap itself starts with the
// first invocation, as in Lambda. The caller must Close the function.
func Start(ctx context.Context, opts Options) (*Function, error) {
	if opts.RIE == "" || opts.Bootstrap == "" {
		return nil, errors.New("start function under the emulator: Options.RIE and Options.Bootstrap are required")
	}
	for try := 1; ; try++ {
		f, err := start(ctx, opts)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, ErrPortTaken) || try == startTries {
			return nil, err
		}
	}
}

func start(ctx context.Context, opts Options) (*Function, error) {
	ports, err := childproc.FreePorts(2)
	if err != nil {
		return nil, fmt.Errorf("find free ports for the emulator of %s: %w", opts.FunctionName, err)
	}
	invokeAddr := "127.0.0.1:" + strconv.Itoa(ports[0])
	bootstrap, err := filepath.Abs(opts.Bootstrap)
	if err != nil {
		return nil, fmt.Errorf("locate the bootstrap of %s: %w", opts.FunctionName, err)
	}
	cmd := exec.Command(opts.RIE,
		"--runtime-interface-emulator-address", invokeAddr,
		"--runtime-api-address", "127.0.0.1:"+strconv.Itoa(ports[1]),
		bootstrap)
	cmd.Dir = filepath.Dir(bootstrap)
	cmd.Env = environment(opts)
	out := childproc.NewTail(logTail)
	var w io.Writer = out
	if opts.Output != nil {
		w = io.MultiWriter(out, opts.Output)
	}
	cmd.Stdout, cmd.Stderr = w, w // one writer: one pipe, one copying goroutine
	childproc.SetProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the emulator for %s: %w", opts.FunctionName, err)
	}
	f := &Function{
		name:   opts.FunctionName,
		pid:    cmd.Process.Pid,
		url:    "http://" + invokeAddr,
		client: &http.Client{},
		out:    out,
		done:   make(chan struct{}),
	}
	go func() {
		f.waitErr = cmd.Wait()
		close(f.done)
	}()
	if err := f.waitReady(ctx, invokeAddr); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// environment is the emulator's (and so the bootstrap's) whole environment.
func environment(opts Options) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"TZ=UTC",
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
	}
	if opts.FunctionName != "" {
		env = append(env, "AWS_LAMBDA_FUNCTION_NAME="+opts.FunctionName)
	}
	if opts.Timeout > 0 {
		secs := int((opts.Timeout + time.Second - 1) / time.Second)
		env = append(env, "AWS_LAMBDA_FUNCTION_TIMEOUT="+strconv.Itoa(secs))
	}
	if opts.MemoryMB > 0 {
		env = append(env, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE="+strconv.Itoa(opts.MemoryMB))
	}
	return append(env, opts.Env...)
}

// waitReady polls until the emulator accepts a connection, exits, or the
// deadline passes.
func (f *Function) waitReady(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var dialer net.Dialer
	for {
		conn, err := dialer.DialContext(ctx, "tcp", addr)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-f.done:
			if strings.Contains(f.out.String(), "address already in use") {
				return ErrPortTaken
			}
			return fmt.Errorf("the emulator for %s (pid %d) exited before listening: %v\n%s",
				f.name, f.pid, f.waitErr, f.out.String())
		case <-ctx.Done():
			return fmt.Errorf("the emulator for %s (pid %d) did not listen on %s: %w\n%s",
				f.name, f.pid, addr, ctx.Err(), f.out.String())
		case <-tick.C:
		}
	}
}

// Invoke sends event to the function and returns its response. A handler
// error is returned as a [*FunctionError]; a function that could not start or
// crashed makes the emulator answer 502, returned as an error that says to
// read [Function.Log].
func (f *Function) Invoke(ctx context.Context, event []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url+InvocationsPath, bytes.NewReader(event))
	if err != nil {
		return nil, fmt.Errorf("build the invocation of %s: %w", f.name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("invoke %s: %w", f.name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize+1))
	if err != nil {
		return nil, fmt.Errorf("read the response of %s: %w", f.name, err)
	}
	if len(body) > maxResponseSize {
		return nil, fmt.Errorf("invoke %s: response larger than Lambda's %d bytes", f.name, maxResponseSize)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("invoke %s: the emulator answered %s (the function failed to start or crashed; see its log)",
			f.name, resp.Status)
	}
	if fe := ParseFunctionError(body); fe != nil {
		return nil, fe
	}
	return body, nil
}

// InvokeJSON invokes the function with event encoded as JSON and decodes the
// response into out.
func (f *Function) InvokeJSON(ctx context.Context, event, out any) error {
	payload, err := json.Marshal(event)
	if err != nil {
		return fmt.Errorf("encode the event for %s: %w", f.name, err)
	}
	body, err := f.Invoke(ctx, payload)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decode the response of %s: %w", f.name, err)
	}
	return nil
}

// ParseFunctionError returns the handler error that body reports, or nil when
// body is a normal response: an error is a JSON object whose errorMessage and
// errorType are both strings.
func ParseFunctionError(body []byte) *FunctionError {
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil {
		return nil
	}
	var fe FunctionError
	if !jsonString(fields["errorType"], &fe.Type) || !jsonString(fields["errorMessage"], &fe.Message) {
		return nil
	}
	return &fe
}

// jsonString decodes raw into s when raw is a JSON string (not null).
func jsonString(raw json.RawMessage, s *string) bool {
	return len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, s) == nil
}

// Name is the function's name (Options.FunctionName).
func (f *Function) Name() string { return f.name }

// PID is the emulator's process ID (also its process group ID on Linux; the
// bootstrap runs in that group).
func (f *Function) PID() int { return f.pid }

// URL is the emulator's base URL, http://127.0.0.1:PORT; invoke with a POST
// to URL()+InvocationsPath.
func (f *Function) URL() string { return f.url }

// Log is the tail of the emulator's and the function's output.
func (f *Function) Log() string { return f.out.String() }

// Close stops the emulator and the bootstrap: SIGTERM to the process group,
// then SIGKILL if the emulator has not exited within a few seconds. Calling
// it again returns the first result.
func (f *Function) Close() error {
	f.closeOnce.Do(func() { f.closeErr = f.stop() })
	return f.closeErr
}

func (f *Function) stop() error {
	if err := childproc.Terminate(f.pid); err != nil {
		return fmt.Errorf("stop the emulator of %s (pid %d): %w", f.name, f.pid, err)
	}
	timer := time.NewTimer(stopGrace)
	defer timer.Stop()
	select {
	case <-f.done:
	case <-timer.C:
	}
	// Also after a clean exit: anything left in the group goes too.
	if err := childproc.Kill(f.pid); err != nil {
		return fmt.Errorf("kill the emulator of %s (pid %d): %w", f.name, f.pid, err)
	}
	<-f.done
	return nil
}
