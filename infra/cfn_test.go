package infra

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/pinlist/pinlist/internal/awsshape"
)

// repoRoot is the module root: the tests run in infra/.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatalf("find the repository root: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("find the repository root: no go.mod in %s", root)
	}
	return root
}

// template is a CloudFormation template decoded into plain Go values (maps,
// slices, strings, numbers, bools), with the short-form intrinsic tags
// (!Ref, !GetAtt, !Sub, ...) turned into their long forms ({"Ref": ...},
// {"Fn::GetAtt": [...]}, ...), the shape the SAM transform's JSON output has.
type template map[string]any

// loadTemplate reads and decodes template.yaml.
func loadTemplate(t *testing.T) template {
	t.Helper()
	path := filepath.Join(repoRoot(t), "template.yaml")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read the template: %v", err)
	}
	tpl, err := parseTemplate(raw)
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return tpl
}

// parseTemplate decodes a template with the benchmark's reader
// (awsshape.ParseTemplate): one decoder of CloudFormation's YAML tags.
func parseTemplate(raw []byte) (template, error) {
	t, err := awsshape.ParseTemplate(raw)
	if err != nil {
		return nil, err
	}
	return template(t.Doc()), nil
}

// resources returns the template's resources of type typ by logical ID.
func (tpl template) resources(typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range asMap(tpl["Resources"]) {
		rm := asMap(r)
		if rm["Type"] == typ {
			out[id] = rm
		}
	}
	return out
}

// resource returns one resource (fatal when it is missing or of another type).
func (tpl template) resource(t *testing.T, id, typ string) map[string]any {
	t.Helper()
	r := asMap(asMap(tpl["Resources"])[id])
	if r == nil {
		t.Fatalf("template has no resource %s", id)
	}
	if r["Type"] != typ {
		t.Fatalf("resource %s is a %v, want %s", id, r["Type"], typ)
	}
	return r
}

// functionProps returns a function's properties with the Globals.Function
// section merged in the way SAM does for maps and scalars: the function's own
// value wins, maps (Environment.Variables, LoggingConfig) merge key by key.
func (tpl template) functionProps(t *testing.T, id string) map[string]any {
	t.Helper()
	fn := tpl.resource(t, id, "AWS::Serverless::Function")
	globals := asMap(asMap(tpl["Globals"])["Function"])
	return asMap(merge(globals, asMap(fn["Properties"])))
}

func merge(base, over any) any {
	bm, bok := base.(map[string]any)
	om, ook := over.(map[string]any)
	if !bok || !ook || isIntrinsic(om) {
		if over == nil {
			return base
		}
		return over
	}
	out := make(map[string]any, len(bm)+len(om))
	for k, v := range bm {
		out[k] = v
	}
	for k, v := range om {
		out[k] = merge(bm[k], v)
	}
	return out
}

func isIntrinsic(m map[string]any) bool {
	if len(m) != 1 {
		return false
	}
	for k := range m {
		return k == "Ref" || k == "Condition" || strings.HasPrefix(k, "Fn::")
	}
	return false
}

// get walks keys down nested maps; nil when any step is missing.
func get(v any, keys ...string) any {
	for _, k := range keys {
		m := asMap(v)
		if m == nil {
			return nil
		}
		v = m[k]
	}
	return v
}

func asMap(v any) map[string]any {
	switch m := v.(type) {
	case map[string]any:
		return m
	case template:
		return m
	}
	return nil
}

// list returns v as a list: a scalar is a list of one (IAM's Action and
// Resource take either).
func list(v any) []any {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		return x
	default:
		return []any{x}
	}
}

// number returns a numeric scalar; CloudFormation also accepts numbers written
// as strings.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	}
	return 0, false
}

// target names what an intrinsic points at: the logical ID of a !Ref or of a
// !GetAtt X.Arn, or "" for anything else.
func target(v any) string {
	m := asMap(v)
	if r, ok := m["Ref"].(string); ok && len(m) == 1 {
		return r
	}
	if ga := list(m["Fn::GetAtt"]); len(ga) == 2 && len(m) == 1 {
		if id, ok := ga[0].(string); ok && ga[1] == "Arn" {
			return id
		}
	}
	return ""
}

// describe renders a value for messages and grant lists: the logical ID of a
// reference, the literal string, or its Go form.
func describe(v any) string {
	if id := target(v); id != "" {
		return id
	}
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	m := asMap(v)
	if ga := list(m["Fn::GetAtt"]); len(ga) == 2 && len(m) == 1 {
		return fmt.Sprintf("%v.%v", ga[0], ga[1])
	}
	if sub, ok := m["Fn::Sub"].(string); ok && len(m) == 1 {
		return sub
	}
	return fmt.Sprint(v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestParseTemplateIntrinsics(t *testing.T) {
	src := `
A: !Ref Foo
B: !GetAtt Queue.Arn
C: !Sub "x-${AWS::StackName}"
D: !If [Cond, !Ref X, !Ref "AWS::NoValue"]
E: !Not [!Equals [!Ref P, ""]]
F: {Ref: Long}
G: [1, "2", true]
`
	tpl, err := parseTemplate([]byte(src))
	if err != nil {
		t.Fatalf("parseTemplate: %v", err)
	}
	tests := []struct {
		name string
		got  any
		want string
	}{
		{"short Ref", tpl["A"], "map[Ref:Foo]"},
		{"short GetAtt splits at the dot", tpl["B"], "map[Fn::GetAtt:[Queue Arn]]"},
		{"short Sub", tpl["C"], "map[Fn::Sub:x-${AWS::StackName}]"},
		{"nested If", tpl["D"], "map[Fn::If:[Cond map[Ref:X] map[Ref:AWS::NoValue]]]"},
		{"nested Not Equals", tpl["E"], "map[Fn::Not:[map[Fn::Equals:[map[Ref:P] ]]]]"},
		{"long form kept", tpl["F"], "map[Ref:Long]"},
		{"plain scalars typed", tpl["G"], "[1 2 true]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := fmt.Sprint(tc.got); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
	if target(tpl["B"]) != "Queue" || target(tpl["A"]) != "Foo" || target(tpl["C"]) != "" {
		t.Errorf("target: got %q %q %q, want Queue Foo \"\"", target(tpl["B"]), target(tpl["A"]), target(tpl["C"]))
	}

	bad := []struct{ name, src string }{
		{"unknown tag", "A: !Bogus x\n"},
		{"GetAtt without attribute", "A: !GetAtt Queue\n"},
		{"duplicate key", "A: 1\nA: 2\n"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseTemplate([]byte(tc.src)); err == nil {
				t.Errorf("parseTemplate(%q) succeeded, want an error", tc.src)
			}
		})
	}
}
