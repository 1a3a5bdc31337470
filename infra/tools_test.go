package infra

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const installCfnLint = `run the suite with make test, which installs it when it is missing (README.md, Tests), or install it with: pip install cfn-lint (it brings aws-sam-translator; the npm package of the same name is a different, abandoned tool)`

// TestCfnLint runs cfn-lint on the template from the repository root, so the
// settings in .cfnlintrc.yaml apply. Exit 0 only: errors (2), warnings (4)
// and informational findings (8) all fail.
func TestCfnLint(t *testing.T) {
	t.Parallel() // a few seconds of Python; overlap it with the transform
	bin, err := exec.LookPath("cfn-lint")
	if err != nil {
		t.Fatalf("cfn-lint is not on PATH: %s", installCfnLint)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "template.yaml")
	cmd.Dir = repoRoot(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("cfn-lint template.yaml exited %d:\n%s", exit.ExitCode(), out)
		}
		t.Fatalf("run cfn-lint: %v\n%s", err, out)
	}
}

// transformed runs infra/samtransform.py and decodes the template as
// CloudFormation would receive it.
func transformed(t *testing.T) map[string]any {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is not on PATH; it runs the SAM transform: %s", installCfnLint)
	}
	root := repoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, filepath.Join("infra", "samtransform.py"), "template.yaml")
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("SAM transform of template.yaml: %v\n%s", err, stderr.String())
	}
	var out map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("decode the transformed template: %v", err)
	}
	return out
}

// TestSAMTransform checks the template after the SAM transform, i.e. what
// CloudFormation creates: SAM adds roles, policies and event source mappings
// of its own, and those must obey the same rules.
func TestSAMTransform(t *testing.T) {
	t.Parallel()
	out := transformed(t)
	res := asMap(out["Resources"])

	for _, p := range statementProblems(allStatements(res), "RefreshFunctionRole") {
		t.Error(p)
	}
	for _, id := range sortedKeys(res) {
		r := asMap(res[id])
		if r["Type"] == "AWS::IAM::Role" {
			if mp := list(get(r, "Properties", "ManagedPolicyArns")); len(mp) > 0 {
				t.Errorf("the deployed role %s gets managed policies %v", id, mp)
			}
		}
	}

	for id, pkg := range functionPackages {
		t.Run(id, func(t *testing.T) {
			fn := asMap(res[id])
			if fn["Type"] != "AWS::Lambda::Function" {
				t.Fatalf("%s becomes a %v, want AWS::Lambda::Function", id, fn["Type"])
			}
			p := asMap(fn["Properties"])
			if p["Runtime"] != "provided.al2023" || p["Handler"] != "bootstrap" || !slices.Equal(list(p["Architectures"]), []any{"arm64"}) {
				t.Errorf("%s runs %v/%v on %v, want provided.al2023/bootstrap on arm64", id, p["Runtime"], p["Handler"], p["Architectures"])
			}
			env := sortedKeys(asMap(get(p, "Environment", "Variables")))
			for _, n := range append(slices.Clone(requiredEnv[id]), everyFunctionEnv...) {
				if !slices.Contains(env, n) {
					t.Errorf("deployed %s lacks %s", id, n)
				}
			}
			roleID := target(p["Role"])
			role := asMap(res[roleID])
			if role["Type"] != "AWS::IAM::Role" {
				t.Fatalf("%s runs as %q, not a role in the stack", id, roleID)
			}
			if diff := cmp.Diff(wantGrants[id], grantsOf(roleStatements(roleID, role))); diff != "" {
				t.Errorf("deployed %s (%s, functions/%s) grants (-want +got):\n%s", id, roleID, pkg, diff)
			}
		})
	}

	t.Run("event source mappings", func(t *testing.T) {
		want := map[string]string{"ChangesQueue": "ApplyFunction", "LedgerTable.StreamArn": "UploadFunction"}
		got := map[string]string{}
		for id, r := range res {
			if asMap(r)["Type"] != "AWS::Lambda::EventSourceMapping" {
				continue
			}
			p := asMap(get(r, "Properties"))
			got[describe(p["EventSourceArn"])] = describe(p["FunctionName"])
			if !slices.Contains(list(p["FunctionResponseTypes"]), any("ReportBatchItemFailures")) {
				t.Errorf("%s: FunctionResponseTypes %v lacks ReportBatchItemFailures", id, p["FunctionResponseTypes"])
			}
			if describe(p["EventSourceArn"]) == "LedgerTable.StreamArn" && len(list(get(p, "FilterCriteria", "Filters"))) != 1 {
				t.Errorf("%s: the stream mapping lost its filter: %v", id, get(p, "FilterCriteria"))
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("event source mappings, source to function (-want +got):\n%s", diff)
		}
	})
}
