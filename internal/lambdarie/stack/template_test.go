package stack_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/pinlist/pinlist/internal/lambdarie/stack"
)

// samTemplate is the part of template.yaml that says what environment each
// function gets.
type samTemplate struct {
	Globals struct {
		Function struct {
			Environment environment `yaml:"Environment"`
		} `yaml:"Function"`
	} `yaml:"Globals"`
	Resources map[string]struct {
		Type       string `yaml:"Type"`
		Properties struct {
			Environment environment `yaml:"Environment"`
		} `yaml:"Properties"`
	} `yaml:"Resources"`
}

type environment struct {
	Variables map[string]yaml.Node `yaml:"Variables"` // values are intrinsics such as !Ref
}

// TestEnvMatchesTheTemplate checks that the stack gives each function the
// variables template.yaml gives it, no more and no fewer (beside the AWS_*
// settings that point the SDK at moto), so a local run is configured the way
// a deployed one is.
func TestEnvMatchesTheTemplate(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "template.yaml"))
	if err != nil {
		t.Fatalf("read template.yaml: %v", err)
	}
	var tmpl samTemplate
	if err := yaml.Unmarshal(raw, &tmpl); err != nil {
		t.Fatalf("parse template.yaml: %v", err)
	}
	st := newStack(t)
	for _, name := range stack.Names() {
		t.Run(name, func(t *testing.T) {
			id, err := stack.LogicalID(name)
			if err != nil {
				t.Fatal(err)
			}
			res, ok := tmpl.Resources[id]
			if !ok || res.Type != "AWS::Serverless::Function" {
				t.Fatalf("template.yaml has no function %s (type %q)", id, res.Type)
			}
			var want []string
			for k := range tmpl.Globals.Function.Environment.Variables {
				want = append(want, k)
			}
			for k := range res.Properties.Environment.Variables {
				want = append(want, k)
			}
			env, err := st.Env(name)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, kv := range env {
				k, v, _ := strings.Cut(kv, "=")
				if strings.HasPrefix(k, "AWS_") {
					continue
				}
				if v == "" {
					t.Errorf("%s is empty", k)
				}
				got = append(got, k)
			}
			slices.Sort(want)
			slices.Sort(got)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("variables of %s (-template.yaml +stack):\n%s", id, diff)
			}
		})
	}
}

func TestFunctionLookup(t *testing.T) {
	if _, err := stack.LogicalID("resize"); err == nil || !strings.Contains(err.Error(), `"resize"`) {
		t.Errorf("LogicalID(resize) = %v, want an error naming it", err)
	}
	if _, err := stack.DefaultEvent("resize"); err == nil {
		t.Error("DefaultEvent(resize) succeeded")
	}
	for _, name := range stack.Names() {
		file, err := stack.DefaultEvent(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join("..", "..", "..", file)); err != nil {
			t.Errorf("default event of %s: %v", name, err)
		}
	}
}
