package infra

import (
	stdcmp "cmp"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pinlist/pinlist/internal/emf"
)

// metricSources is where each EMF metric the dashboard reads is emitted:
// the package (directory under the module root) whose non-test code writes
// it. TestDashboard checks that the dashboard's pinlist metrics are exactly
// these names, TestDashboardMetricsEmitted that each package emits its names
// (emittedMetrics reads them from its source), so renaming a metric in the
// code but not in template.yaml fails a test.
var metricSources = map[string]string{
	// ingest: one line per profiles request.
	"ChangesReceived":  "internal/ingest",
	"IdentitiesFailed": "internal/ingest",
	// upload: what the ledger did with a batch's changes, and the flushes
	// to Pinterest (the ledger-in-the-middle upload).
	"ChangesFlipped":  "internal/upload",
	"ChangesStale":    "internal/upload",
	"ChangesNoOp":     "internal/upload",
	"RecordsSent":     "internal/upload",
	"ListCalls":       "internal/upload",
	"RateLimited":     "internal/upload",
	"Retries":         "internal/upload",
	"MessageFailures": "internal/upload",
	"ListFailures":    "internal/upload",
	// refresh: one line per run.
	"DaysToAccessTokenExpiry":  "internal/refresh",
	"DaysToRefreshTokenExpiry": "internal/refresh",
	"RefreshFailures":          "internal/refresh",
}

// dashboardMust is what the dashboard must show (issue 15): each entry is
// namespace, metric name and the logical ID (or parameter) its one
// dimension's value comes from.
var dashboardMust = [][3]string{
	{"pinlist", "ChangesReceived", "ConnectionName"},
	{"pinlist", "RecordsSent", "ConnectionName"}, // applied
	{"pinlist", "ChangesStale", "ConnectionName"},
	{"pinlist", "ChangesNoOp", "ConnectionName"},
	{"pinlist", "ListCalls", "ConnectionName"}, // Pinterest write calls
	{"pinlist", "RateLimited", "ConnectionName"},
	{"pinlist", "DaysToAccessTokenExpiry", "ConnectionName"},
	{"AWS/SQS", "ApproximateNumberOfMessagesVisible", "ChangesQueue"},
	{"AWS/SQS", "ApproximateAgeOfOldestMessage", "ChangesQueue"},
	{"AWS/SQS", "ApproximateNumberOfMessagesVisible", "ChangesDeadLetterQueue"},
	{"AWS/Lambda", "Errors", "IngestFunction"},
	{"AWS/Lambda", "Errors", "UploadFunction"},
	{"AWS/Lambda", "Errors", "RefreshFunction"},
	{"AWS/Lambda", "Duration", "IngestFunction"},
	{"AWS/Lambda", "Duration", "UploadFunction"},
	{"AWS/Lambda", "Duration", "RefreshFunction"},
}

// dashboardWidget is the part of a widget the test reads.
type dashboardWidget struct {
	Type                string
	X, Y, Width, Height int
	Properties          struct {
		Title       string
		Region      string
		Markdown    string
		Metrics     [][]any
		Annotations struct {
			Horizontal []struct {
				Label string
				Value float64
				YAxis string
			}
		}
	}
}

func TestDashboard(t *testing.T) {
	tpl := loadTemplate(t)
	dash := tpl.resource(t, "Dashboard", "AWS::CloudWatch::Dashboard")
	name, _ := get(dash, "Properties", "DashboardName", "Fn::Sub").(string)
	if !strings.Contains(name, "${AWS::StackName}") || !strings.Contains(name, "${AWS::Region}") {
		t.Errorf("DashboardName %v: want !Sub with ${AWS::StackName} and ${AWS::Region} (dashboard names are per account)", get(dash, "Properties", "DashboardName"))
	}
	body, samples := substituteBody(t, tpl, get(dash, "Properties", "DashboardBody"))
	var parsed struct{ Widgets []dashboardWidget }
	if err := json.Unmarshal([]byte(body), &parsed); err != nil {
		t.Fatalf("DashboardBody is not valid JSON after !Sub: %v\n%s", err, body)
	}
	if len(parsed.Widgets) == 0 {
		t.Fatalf("the dashboard has no widgets")
	}

	// What each dimension value stands for, by the sample !Sub put there.
	dimTarget := map[string]string{}
	for ref, v := range samples {
		dimTarget[v] = strings.TrimSuffix(ref, ".QueueName")
	}
	shown := map[[3]string]bool{}
	threshold := func(id string) float64 {
		v, ok := number(get(tpl, "Resources", id, "Properties", "Threshold"))
		if !ok {
			t.Fatalf("alarm %s has no numeric Threshold", id)
		}
		return v
	}
	maxRecords, _ := number(get(tpl, "Parameters", "MaxRecordsPerRequest", "Default"))

	for i, w := range parsed.Widgets {
		title := stdcmp.Or(w.Properties.Title, fmt.Sprintf("widget %d", i))
		if w.Width <= 0 || w.Height <= 0 || w.X < 0 || w.Y < 0 || w.X+w.Width > 24 {
			t.Errorf("%q: x %d width %d y %d height %d is outside the 24-column grid", title, w.X, w.Width, w.Y, w.Height)
		}
		for _, o := range parsed.Widgets[:i] {
			if w.X < o.X+o.Width && o.X < w.X+w.Width && w.Y < o.Y+o.Height && o.Y < w.Y+w.Height {
				t.Errorf("%q overlaps %q", title, o.Properties.Title)
			}
		}
		switch w.Type {
		case "text":
			if w.Properties.Markdown == "" {
				t.Errorf("%q: a text widget without markdown", title)
			}
			continue
		case "metric":
		default:
			t.Errorf("%q: widget type %q", title, w.Type)
			continue
		}
		if w.Properties.Title == "" || len(w.Properties.Metrics) == 0 {
			t.Errorf("widget %d: a metric widget needs a title and metrics", i)
		}
		if w.Properties.Region != samples["AWS::Region"] {
			t.Errorf("%q: region %q, want ${AWS::Region}", title, w.Properties.Region)
		}
		ids := map[string]bool{}
		var expressions []string
		var metrics [][3]string // namespace, name, dimension target
		for _, row := range w.Properties.Metrics {
			m, opts, err := parseMetricRow(row)
			if err != nil {
				t.Errorf("%q: %v", title, err)
				continue
			}
			if id, ok := opts["id"].(string); ok {
				if !regexp.MustCompile(`^[a-z][A-Za-z0-9_]*$`).MatchString(id) || ids[id] {
					t.Errorf("%q: id %q is not a fresh lowercase-initial identifier", title, id)
				}
				ids[id] = true
			}
			if e, ok := opts["expression"].(string); ok {
				expressions = append(expressions, e)
				continue
			}
			ns, metric, dimName, dimValue := m[0], m[1], m[2], m[3]
			want := map[string]string{emf.Namespace: emf.Dimension, "AWS/SQS": "QueueName", "AWS/Lambda": "FunctionName"}[ns]
			if want == "" {
				t.Errorf("%q: namespace %q is not one the stack's metrics live in", title, ns)
				continue
			}
			target := dimTarget[dimValue]
			if dimName != want || target == "" {
				t.Errorf("%q: %s %s by %s=%q, want by %s = a !Sub reference", title, ns, metric, dimName, dimValue, want)
				continue
			}
			switch ns {
			case emf.Namespace:
				if target != "ConnectionName" {
					t.Errorf("%q: %s by %s=${%s}, want ${ConnectionName} (what the functions write)", title, metric, dimName, target)
				}
				if _, ok := metricSources[metric]; !ok {
					t.Errorf("%q: %s is not in metricSources: say which package emits it", title, metric)
				}
			case "AWS/SQS":
				if target != "ChangesQueue" && target != "ChangesDeadLetterQueue" {
					t.Errorf("%q: queue ${%s} is not the changes queue or its dead-letter queue (the legacy FIFO queues are unused)", title, target)
				}
			case "AWS/Lambda":
				if _, ok := functionPackages[target]; !ok {
					t.Errorf("%q: ${%s} is not one of the stack's functions", title, target)
				}
			}
			metrics = append(metrics, [3]string{ns, metric, target})
			shown[[3]string{ns, metric, target}] = true
		}
		for _, e := range expressions {
			for _, ref := range regexp.MustCompile(`\b[a-z][A-Za-z0-9_]*\b`).FindAllString(e, -1) {
				if !ids[ref] {
					t.Errorf("%q: expression %q uses %q, which no metric of the widget has as id", title, e, ref)
				}
			}
		}

		// The annotations repeat what the numbers are judged against.
		annotated := func(want float64, yAxis string) bool {
			for _, a := range w.Properties.Annotations.Horizontal {
				if a.Value == want && a.YAxis == yAxis {
					return true
				}
			}
			return false
		}
		for _, m := range metrics {
			switch {
			case m == [3]string{emf.Namespace, "DaysToAccessTokenExpiry", "ConnectionName"}:
				if v := threshold("TokenExpiryAlarm"); !annotated(v, "") {
					t.Errorf("%q: no annotation at the token-expiry alarm's threshold %v", title, v)
				}
			case m == [3]string{"AWS/SQS", "ApproximateAgeOfOldestMessage", "ChangesQueue"}:
				if v := threshold("QueueAgeAlarm"); !annotated(v, "right") {
					t.Errorf("%q: no right-axis annotation at the queue-age alarm's threshold %v", title, v)
				}
			}
		}
		if len(expressions) > 0 && slices.Contains(metrics, [3]string{emf.Namespace, "ListCalls", "ConnectionName"}) && !annotated(maxRecords, "") {
			t.Errorf("%q: records per call without an annotation at MaxRecordsPerRequest (%v)", title, maxRecords)
		}
	}

	for _, m := range dashboardMust {
		if !shown[m] {
			t.Errorf("the dashboard does not show %s %s for %s", m[0], m[1], m[2])
		}
	}

	for name := range metricSources {
		if !shown[[3]string{emf.Namespace, name, "ConnectionName"}] {
			t.Errorf("metricSources lists %s, which the dashboard does not show", name)
		}
	}
}

// TestDashboardMetricsEmitted checks that every EMF metric the dashboard
// reads (TestDashboard proves metricSources lists exactly those) is written
// by the package metricSources names: one subtest per package.
func TestDashboardMetricsEmitted(t *testing.T) {
	root := repoRoot(t)
	byDir := map[string][]string{}
	for _, name := range sortedKeys(metricSources) {
		byDir[metricSources[name]] = append(byDir[metricSources[name]], name)
	}
	for _, dir := range sortedKeys(byDir) {
		t.Run(dir, func(t *testing.T) {
			emitted, err := emittedMetrics(filepath.Join(root, dir))
			if err != nil {
				t.Fatalf("read the metric names %s emits: %v", dir, err)
			}
			missing := slices.DeleteFunc(byDir[dir], func(n string) bool { return emitted[n] })
			if len(missing) > 0 {
				t.Errorf("the dashboard in template.yaml reads metrics %s does not emit (no emf.Metric with these names in its non-test code): %s",
					dir, strings.Join(missing, ", "))
			}
		})
	}
}

// substituteBody turns the DashboardBody's !Sub string into what
// CloudFormation would deploy, with sample values: parameters take their
// default (or "sample-<name>"), pseudo parameters a fixed value, resources
// and attributes "sample-<LogicalId>[-<Attr>]". Every reference must name a
// parameter, a pseudo parameter or a resource (with an attribute the
// dashboard may use). It returns the body and the sample for each reference.
func substituteBody(t *testing.T, tpl template, v any) (string, map[string]string) {
	t.Helper()
	sub := get(map[string]any{"v": v}, "v", "Fn::Sub")
	body, ok := sub.(string)
	if !ok {
		t.Fatalf("DashboardBody is %s, want !Sub with one string (no variable map)", describe(v))
	}
	pseudo := map[string]string{
		"AWS::Region": "eu-central-1", "AWS::StackName": "pinlist-test", "AWS::AccountId": "123456789012",
		"AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com",
	}
	params := asMap(tpl["Parameters"])
	resources := asMap(tpl["Resources"])
	samples := map[string]string{}
	out := regexp.MustCompile(`\$\{([^}]*)\}`).ReplaceAllStringFunc(body, func(m string) string {
		ref := m[2 : len(m)-1]
		if strings.HasPrefix(ref, "!") {
			return "${" + ref[1:] // a literal ${...}
		}
		var val string
		res, attr, hasAttr := strings.Cut(ref, ".")
		switch {
		case pseudo[ref] != "":
			val = pseudo[ref]
		case params[ref] != nil:
			val = fmt.Sprint(stdcmp.Or(get(params, ref, "Default"), any("sample-"+ref)))
		case resources[res] != nil && !hasAttr:
			val = "sample-" + res
		case resources[res] != nil && attr == "QueueName" && get(resources, res, "Type") == "AWS::SQS::Queue":
			val = "sample-" + res + "-" + attr
		default:
			t.Errorf("DashboardBody references ${%s}: not a parameter, pseudo parameter or resource (attribute) it may use", ref)
			return m
		}
		if strings.ContainsAny(val, `"\`) {
			t.Fatalf("sample value %q for ${%s} would need JSON escaping", val, ref)
		}
		samples[ref] = val
		return val
	})
	if samples["AWS::Region"] == "" {
		t.Errorf("DashboardBody never uses ${AWS::Region}: its widgets would show another region")
	}
	return out, samples
}

// parseMetricRow reads one row of a metric widget's "metrics": either
// [{"expression": ..., "id": ...}] or [namespace, name, dimension name,
// dimension value, {options}?] (the stack's metrics have one dimension; the
// "..." shorthand is not used, so every row stands on its own).
func parseMetricRow(row []any) ([4]string, map[string]any, error) {
	var m [4]string
	var opts map[string]any
	if n := len(row); n > 0 {
		if o, ok := row[n-1].(map[string]any); ok {
			opts, row = o, row[:n-1]
		}
	}
	if len(row) == 0 {
		if _, ok := opts["expression"].(string); !ok {
			return m, nil, fmt.Errorf("a metrics row with neither a metric nor an expression")
		}
		if _, ok := opts["id"].(string); !ok {
			return m, nil, fmt.Errorf("expression %v has no id", opts["expression"])
		}
		return m, opts, nil
	}
	if len(row) != 4 {
		return m, nil, fmt.Errorf("metrics row %v: want namespace, name and one dimension", row)
	}
	for i, v := range row {
		s, ok := v.(string)
		if !ok || s == "" || s == "." || s == "..." {
			return m, nil, fmt.Errorf("metrics row %v: element %d is %v, want a string (no shorthand)", row, i, v)
		}
		m[i] = s
	}
	return m, opts, nil
}

// emittedMetrics returns the EMF metric names the non-test Go code in dir
// writes: the Name of every emf.Metric composite literal (also the elements
// of a []emf.Metric literal), and the first argument of every call to a
// function of the package that returns an emf.Metric and takes the name as
// its first (string) parameter, e.g. count("RecordsSent", n). A name is a
// string literal or a package-level string constant.
func emittedMetrics(dir string) (map[string]bool, error) {
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var files []*ast.File
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", e.Name(), err)
		}
		files = append(files, f)
	}

	consts := map[string]string{}
	helpers := map[string]bool{}
	emfName := map[*ast.File]string{}
	for _, f := range files {
		for _, imp := range f.Imports {
			if imp.Path.Value == strconv.Quote("github.com/pinlist/pinlist/internal/emf") {
				emfName[f] = "emf"
				if imp.Name != nil {
					emfName[f] = imp.Name.Name
				}
			}
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.GenDecl:
				if d.Tok != token.CONST {
					continue
				}
				for _, spec := range d.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if i < len(vs.Values) {
							if s, ok := stringLit(vs.Values[i]); ok {
								consts[n.Name] = s
							}
						}
					}
				}
			case *ast.FuncDecl:
				if d.Recv != nil || emfName[f] == "" || d.Type.Results == nil || len(d.Type.Results.List) != 1 ||
					!isSelector(d.Type.Results.List[0].Type, emfName[f], "Metric") || len(d.Type.Params.List) == 0 {
					continue
				}
				if id, ok := d.Type.Params.List[0].Type.(*ast.Ident); ok && id.Name == "string" {
					helpers[d.Name.Name] = true
				}
			}
		}
	}
	name := func(e ast.Expr) (string, bool) {
		if s, ok := stringLit(e); ok {
			return s, true
		}
		if id, ok := e.(*ast.Ident); ok {
			s, ok := consts[id.Name]
			return s, ok
		}
		return "", false
	}
	names := map[string]bool{}
	metricLit := func(cl *ast.CompositeLit) {
		for _, el := range cl.Elts {
			if kv, ok := el.(*ast.KeyValueExpr); ok {
				if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Name" {
					if s, ok := name(kv.Value); ok {
						names[s] = true
					}
				}
			}
		}
	}
	for _, f := range files {
		pkg := emfName[f]
		if pkg == "" {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CompositeLit:
				if isSelector(n.Type, pkg, "Metric") {
					metricLit(n)
				}
				if at, ok := n.Type.(*ast.ArrayType); ok && isSelector(at.Elt, pkg, "Metric") {
					for _, el := range n.Elts {
						if cl, ok := el.(*ast.CompositeLit); ok && cl.Type == nil {
							metricLit(cl)
						}
					}
				}
			case *ast.CallExpr:
				if id, ok := n.Fun.(*ast.Ident); ok && helpers[id.Name] && len(n.Args) > 0 {
					if s, ok := name(n.Args[0]); ok {
						names[s] = true
					}
				}
			}
			return true
		})
	}
	return names, nil
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

func isSelector(e ast.Expr, pkg, name string) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != name {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == pkg
}

// TestEmittedMetrics checks the source reader on the shapes the functions
// use to write their metrics.
func TestEmittedMetrics(t *testing.T) {
	files := map[string]string{
		"a.go": `package p

import "github.com/pinlist/pinlist/internal/emf"

const nameConst = "FromConst"

func count(name string, v int64) emf.Metric { return emf.Metric{Name: name, Value: float64(v), Unit: "Count"} }

func f() {
	_ = []emf.Metric{{Name: "InSlice", Unit: "Count"}, count("ByHelper", 1)}
	_ = emf.Metric{Name: nameConst}
	_ = []struct{ Name string }{{Name: "NotAMetric"}}
	_ = notHelper("NotAHelper")
}

func notHelper(s string) string { return s }
`,
		"b.go": `package p

import m "github.com/pinlist/pinlist/internal/emf"

func g() { _ = append([]m.Metric{}, m.Metric{Name: "ByAlias"}, count("HelperFromOtherFile", 2)) }
`,
		"c.go": `package p

type Metric struct{ Name string }

var _ = Metric{Name: "NotEMF"}
`,
		"p_test.go": `package p

import "github.com/pinlist/pinlist/internal/emf"

var _ = emf.Metric{Name: "OnlyInTest"}
`,
	}
	dir := t.TempDir()
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := emittedMetrics(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"InSlice": true, "ByHelper": true, "FromConst": true, "ByAlias": true, "HelperFromOtherFile": true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("emitted metrics (-want +got):\n%s", diff)
	}
}
