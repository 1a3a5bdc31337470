package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pinlist/pinlist/internal/childproc"
)

// TestRunEachFunction runs what `make invoke-<name>` runs, in process, and
// checks the printed response and that every process it started is gone.
func TestRunEachFunction(t *testing.T) {
	for _, tc := range []struct {
		name  string
		check func(t *testing.T, resp map[string]any)
		// summary is a line of the summary on stderr
		summary string
	}{
		{"ingest", func(t *testing.T, resp map[string]any) {
			if resp["statusCode"] != 202.0 {
				t.Errorf("statusCode = %v, want 202", resp["statusCode"])
			}
		}, ""},
		{"apply", func(t *testing.T, resp map[string]any) {
			if f, ok := resp["batchItemFailures"].([]any); !ok || len(f) != 0 {
				t.Errorf("batchItemFailures = %v, want []", resp["batchItemFailures"])
			}
		}, "6 lists with rows pending"},
		{"upload", func(t *testing.T, resp map[string]any) {
			if f, ok := resp["batchItemFailures"].([]any); !ok || len(f) != 0 {
				t.Errorf("batchItemFailures = %v, want []", resp["batchItemFailures"])
			}
		}, "simulator: 3 customer lists"},
		{"refresh", func(t *testing.T, resp map[string]any) {
			if resp["refreshed"] != true {
				t.Errorf("refreshed = %v, want true", resp["refreshed"])
			}
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			if err := run(t.Context(), []string{tc.name}, &stdout, &stderr); err != nil {
				t.Fatalf("run %s: %v\nstderr:\n%s", tc.name, err, stderr.String())
			}
			var resp map[string]any
			if err := json.NewDecoder(&stdout).Decode(&resp); err != nil {
				t.Fatalf("stdout does not start with the JSON response: %v\n%s", err, stdout.String())
			}
			tc.check(t, resp)
			if !strings.Contains(stderr.String(), tc.summary) {
				t.Errorf("stderr lacks %q:\n%s", tc.summary, stderr.String())
			}
			checkStopped(t, stderr.String())
		})
	}
}

// checkStopped fails when a process that run reported starting ("... (pid
// N)") is still running.
func checkStopped(t *testing.T, stderr string) {
	t.Helper()
	pids := regexp.MustCompile(`\(pid (\d+)\)`).FindAllStringSubmatch(stderr, -1)
	if len(pids) != 2 {
		t.Fatalf("stderr names %d PIDs, want 2 (moto_server, aws-lambda-rie):\n%s", len(pids), stderr)
	}
	for _, m := range pids {
		pid, _ := strconv.Atoi(m[1])
		if childproc.Running(pid) {
			t.Errorf("process %d is still running after run returned", pid)
		}
	}
}

func TestRunReportsAFunctionError(t *testing.T) {
	event := filepath.Join(t.TempDir(), "not-an-event.json")
	if err := os.WriteFile(event, []byte(`"not an API Gateway event"`), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"-event", event, "ingest"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "ingest returned an error") {
		t.Errorf("run = %v, want the function's error reported", err)
	}
	var fe struct {
		Type    string `json:"errorType"`
		Message string `json:"errorMessage"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &fe); err != nil || fe.Type == "" || fe.Message == "" {
		t.Errorf("stdout = %q, want the error as JSON {errorType, errorMessage}", stdout.String())
	}
	checkStopped(t, stderr.String())
}

func TestRunUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no function", nil},
		{"two functions", []string{"ingest", "upload"}},
		{"unknown function", []string{"resize"}},
		{"unknown flag", []string{"-fast", "ingest"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if err := run(t.Context(), tc.args, &stdout, &stderr); !errors.Is(err, errUsage) {
				t.Errorf("run(%q) = %v, want a usage error", tc.args, err)
			}
		})
	}
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"-event", filepath.Join(t.TempDir(), "missing.json"), "ingest"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "read the event") {
		t.Errorf("run with a missing event file = %v, want an error reading it", err)
	}
}

// TestMakeTargets checks that each `make invoke-<name>` runs this program
// for that function, with EVENT passed as -event.
func TestMakeTargets(t *testing.T) {
	for _, name := range []string{"ingest", "apply", "upload", "refresh"} {
		t.Run(name, func(t *testing.T) {
			for _, tc := range []struct {
				vars []string
				want string
			}{
				{nil, "run ./infra/invoke " + name},
				{[]string{"EVENT=events/x.json"}, "run ./infra/invoke -event events/x.json " + name},
			} {
				args := append([]string{"-n", "-C", filepath.Join("..", ".."), "invoke-" + name}, tc.vars...)
				out, err := exec.Command("make", args...).CombinedOutput()
				if err != nil {
					t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				if got := strings.Join(strings.Fields(string(out)), " "); !strings.Contains(got, tc.want) {
					t.Errorf("make %s runs %q, want %q", strings.Join(args, " "), got, tc.want)
				}
			}
		})
	}
}
