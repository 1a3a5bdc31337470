package lambdarie

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// emulator installs aws-lambda-rie once per test binary (about a minute the
// first time on a machine, then cached; see Install).
var emulator = sync.OnceValues(func() (string, error) {
	return Install(context.Background(), DefaultCacheDir())
})

// echoBootstrap builds testdata/echo once per test binary.
var echoBootstrap = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "lambdarie-echo-")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "bootstrap")
	return out, Build(context.Background(), ".", "./testdata/echo", out)
})

// startEcho runs the echo function under the emulator for one test.
func startEcho(t *testing.T, env ...string) *Function {
	t.Helper()
	rie, err := emulator()
	if err != nil {
		t.Fatalf("install aws-lambda-rie: %v", err)
	}
	bootstrap, err := echoBootstrap()
	if err != nil {
		t.Fatalf("build the echo function: %v", err)
	}
	f, err := Start(t.Context(), Options{
		RIE: rie, Bootstrap: bootstrap, FunctionName: "echo-fn", Timeout: 10 * time.Second, Env: env,
	})
	if err != nil {
		t.Fatalf("start the echo function: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("close the echo function: %v", err)
		}
		if t.Failed() {
			t.Logf("emulator log:\n%s", f.Log())
		}
	})
	return f
}

type echoResponse struct {
	Said        string `json:"said"`
	Env         string `json:"env"`
	EnvSet      bool   `json:"envSet"`
	Function    string `json:"function"`
	HasDeadline bool   `json:"hasDeadline"`
	PID         int    `json:"pid"`
}

func TestInvokeEcho(t *testing.T) {
	t.Setenv("LAMBDARIE_TEST_HOST_ONLY", "from the test process")
	f := startEcho(t, "ECHO_GIVEN=given value")

	for _, tc := range []struct {
		name string
		env  string
		want echoResponse
	}{
		{"env given in Options reaches the function", "ECHO_GIVEN",
			echoResponse{Said: "hi", Env: "given value", EnvSet: true, Function: "echo-fn", HasDeadline: true}},
		{"the caller's environment does not", "LAMBDARIE_TEST_HOST_ONLY",
			echoResponse{Said: "hi", Function: "echo-fn", HasDeadline: true}},
		{"the timeout is passed as the function's timeout", "AWS_LAMBDA_FUNCTION_TIMEOUT",
			echoResponse{Said: "hi", Env: "10", EnvSet: true, Function: "echo-fn", HasDeadline: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got echoResponse
			if err := f.InvokeJSON(t.Context(), map[string]string{"say": "hi", "env": tc.env}, &got); err != nil {
				t.Fatalf("invoke: %v", err)
			}
			got.PID = 0
			if got != tc.want {
				t.Errorf("response = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestInvokeHandlerError(t *testing.T) {
	f := startEcho(t)
	_, err := f.Invoke(t.Context(), []byte(`{"fail":"boom requested"}`))
	var fe *FunctionError
	if !errors.As(err, &fe) {
		t.Fatalf("Invoke error = %v, want a *FunctionError", err)
	}
	if fe.Message != "boom requested" || fe.Type == "" {
		t.Errorf("FunctionError = %+v, want message %q and a type", fe, "boom requested")
	}
	// The function keeps serving after a handler error.
	var got echoResponse
	if err := f.InvokeJSON(t.Context(), map[string]string{"say": "again"}, &got); err != nil || got.Said != "again" {
		t.Errorf("invoke after the error = %+v, %v; want said=again", got, err)
	}
}

func TestInvokeInitFailure(t *testing.T) {
	f := startEcho(t, "ECHO_EXIT_AT_INIT=1")
	_, err := f.Invoke(t.Context(), []byte(`{"say":"hi"}`))
	if err == nil {
		t.Fatal("Invoke succeeded, want an error: the function exits at init")
	}
	var fe *FunctionError
	if errors.As(err, &fe) || !strings.Contains(err.Error(), "502") {
		t.Errorf("Invoke error = %v, want the emulator's 502 (not a handler error)", err)
	}
	if !strings.Contains(f.Log(), "echo: exiting at init as asked") {
		t.Errorf("the log lacks the function's own output:\n%s", f.Log())
	}
}

func TestConcurrentFunctions(t *testing.T) {
	// Each emulator has its own Runtime API port; with the default (9001)
	// the second would fail to start.
	a, b := startEcho(t, "ECHO_GIVEN=a"), startEcho(t, "ECHO_GIVEN=b")
	if a.URL() == b.URL() {
		t.Fatalf("both emulators listen on %s", a.URL())
	}
	var wg sync.WaitGroup
	for _, tc := range []struct {
		f    *Function
		want string
	}{{a, "a"}, {b, "b"}} {
		wg.Go(func() {
			var got echoResponse
			if err := tc.f.InvokeJSON(t.Context(), map[string]string{"env": "ECHO_GIVEN"}, &got); err != nil {
				t.Errorf("invoke %s: %v", tc.f.URL(), err)
				return
			}
			if got.Env != tc.want {
				t.Errorf("function at %s sees ECHO_GIVEN=%q, want %q", tc.f.URL(), got.Env, tc.want)
			}
		})
	}
	wg.Wait()
}

func TestParseFunctionError(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want *FunctionError
	}{
		{"handler error", `{"errorMessage":"boom","errorType":"errorString"}`, &FunctionError{Type: "errorString", Message: "boom"}},
		{"with a stack trace", `{"errorMessage":"boom","errorType":"x","stackTrace":[]}`, &FunctionError{Type: "x", Message: "boom"}},
		{"normal object", `{"statusCode":202,"body":"{}"}`, nil},
		{"type only", `{"errorType":"x"}`, nil},
		{"message not a string", `{"errorType":"x","errorMessage":3}`, nil},
		{"null fields", `{"errorType":null,"errorMessage":null}`, nil},
		{"array", `[{"errorType":"x","errorMessage":"y"}]`, nil},
		{"string", `"errorMessage"`, nil},
		{"empty", ``, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ParseFunctionError([]byte(tc.body))
			if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
				t.Errorf("ParseFunctionError(%s) = %+v, want %+v", tc.body, got, tc.want)
			}
		})
	}
}

func FuzzParseFunctionError(f *testing.F) {
	f.Add([]byte(`{"errorMessage":"boom","errorType":"errorString"}`))
	f.Add([]byte(`{"statusCode":200}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		fe := ParseFunctionError(body)
		if fe == nil {
			return
		}
		var fields map[string]any
		if err := json.Unmarshal(body, &fields); err != nil {
			t.Fatalf("reported an error for a body that is not a JSON object: %q", body)
		}
		if fields["errorType"] != fe.Type || fields["errorMessage"] != fe.Message {
			t.Fatalf("FunctionError %+v does not match the body %q", fe, body)
		}
	})
}

func TestInstallReusesTheCache(t *testing.T) {
	dir := t.TempDir()
	path, ok := Cached(dir)
	if ok {
		t.Fatalf("Cached(empty dir) = %s, true", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", "") // running go now would fail: Install must not
	got, err := Install(t.Context(), dir)
	if err != nil || got != path {
		t.Errorf("Install = %q, %v; want the cached %q", got, err, path)
	}
}

func TestInstallFailureSaysWhatToDo(t *testing.T) {
	t.Setenv("PATH", "")
	_, err := Install(t.Context(), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "go install "+Module+"@"+Version) {
		t.Errorf("Install without go = %v, want an error naming the go install command", err)
	}
}

func TestModuleDir(t *testing.T) {
	root, err := ModuleDir(".")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "functions", "ingest", "main.go")); err != nil {
		t.Errorf("ModuleDir(.) = %s, not pinlist's root: %v", root, err)
	}
	if _, err := ModuleDir(t.TempDir()); err == nil {
		t.Error("ModuleDir(a temp dir) succeeded, want no go.mod found")
	}
}
