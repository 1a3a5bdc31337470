package infra

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pinlist/pinlist/internal/config"
)

// requiredEnv is what each function needs from the template
// (ARCHITECTURE.md, "Configuration by environment").
var requiredEnv = map[string][]string{
	"IngestFunction":  {config.EnvQueueURL, config.EnvIngestTokenSecretID},
	"ApplyFunction":   {config.EnvLedgerTable},
	"UploadFunction":  {config.EnvAPIBaseURL, config.EnvAdAccountID, config.EnvTokenSecretID, config.EnvMaxRecordsPerRequest, config.EnvLedgerTable},
	"RefreshFunction": {config.EnvAPIBaseURL, config.EnvTokenSecretID, config.EnvRefreshBefore, config.EnvAlertTopicARN},
}

// everyFunctionEnv is set on all functions (Globals).
var everyFunctionEnv = []string{config.EnvConnectionName, config.EnvLogLevel}

// localOnlyEnv are names the code reads that the template must NOT set: they
// configure the local runner (pinlist serve), or hold a secret that in AWS
// comes from Secrets Manager instead. Add a name here, with its reason, only
// when it truly has no meaning in Lambda.
var localOnlyEnv = map[string]string{
	config.EnvAddr:        "listen address of pinlist serve",
	config.EnvDataDir:     "queue database and token file of pinlist serve",
	config.EnvIngestToken: "the ingest token itself; in AWS it is read from the secret named by PINLIST_INGEST_TOKEN_SECRET_ID",
}

// envNamePattern is what pinlist's own environment names look like.
var envNamePattern = regexp.MustCompile(`^(PINLIST|PINTEREST)_[A-Z0-9_]+$`)

// envUse is one place the code names an environment variable.
type envUse struct {
	name string
	pos  string // file:line
	fn   string // the function whose package under functions/ names it, or ""
}

// scanEnvNames lists the string literals in the non-test Go files under
// functions/ and internal/ that look like pinlist environment names, and the
// references from functions/<name>/ to internal/config's Env* constants.
func scanEnvNames(t *testing.T, root string) []envUse {
	t.Helper()
	fset := token.NewFileSet()
	configConsts := map[string]string{} // Env* constant -> value
	type parsed struct {
		path string
		file *ast.File
	}
	var files []parsed
	for _, dir := range []string{"functions", "internal"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			files = append(files, parsed{path, f})
			return nil
		})
		if err != nil {
			t.Fatalf("scan %s for environment names: %v", dir, err)
		}
	}

	var uses []envUse
	for _, pf := range files {
		rel, _ := filepath.Rel(root, pf.path)
		fn := functionOf(rel)
		isConfig := filepath.ToSlash(filepath.Dir(rel)) == "internal/config"
		ast.Inspect(pf.file, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.ValueSpec:
				if isConfig {
					for i, name := range x.Names {
						if i < len(x.Values) {
							if lit, ok := x.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
								if v, err := strconv.Unquote(lit.Value); err == nil && envNamePattern.MatchString(v) {
									configConsts[name.Name] = v
								}
							}
						}
					}
				}
			case *ast.BasicLit:
				if x.Kind != token.STRING {
					return true
				}
				v, err := strconv.Unquote(x.Value)
				if err == nil && envNamePattern.MatchString(v) {
					uses = append(uses, envUse{name: v, pos: relPos(root, fset.Position(x.Pos())), fn: fn})
				}
			}
			return true
		})
	}

	// functions/<name>/ referring to config.EnvX needs X set on that function.
	for _, pf := range files {
		rel, _ := filepath.Rel(root, pf.path)
		fn := functionOf(rel)
		if fn == "" {
			continue
		}
		local := ""
		for _, imp := range pf.file.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "github.com/pinlist/pinlist/internal/config" {
				local = "config"
				if imp.Name != nil {
					local = imp.Name.Name
				}
			}
		}
		if local == "" {
			continue
		}
		ast.Inspect(pf.file, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == local {
				if v, ok := configConsts[sel.Sel.Name]; ok {
					uses = append(uses, envUse{name: v, pos: relPos(root, fset.Position(sel.Pos())), fn: fn})
				}
			}
			return true
		})
	}
	return uses
}

// functionOf returns the logical ID of the function whose package holds the
// file at rel (a path under functions/), or "".
func functionOf(rel string) string {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	if len(parts) < 3 || parts[0] != "functions" {
		return ""
	}
	for id, pkg := range functionPackages {
		if pkg == parts[1] {
			return id
		}
	}
	return ""
}

// relPos renders a position relative to the repository root.
func relPos(root string, p token.Position) string {
	if rel, err := filepath.Rel(root, p.Filename); err == nil {
		p.Filename = filepath.ToSlash(rel)
	}
	return p.String()
}

// functionEnv returns the names of the environment variables a function gets
// (Globals merged).
func functionEnv(t *testing.T, tpl template, id string) []string {
	t.Helper()
	vars := asMap(get(tpl.functionProps(t, id), "Environment", "Variables"))
	return sortedKeys(vars)
}

func TestTemplateEnvironment(t *testing.T) {
	tpl := loadTemplate(t)
	root := repoRoot(t)

	setAnywhere := map[string]bool{}
	envOf := map[string][]string{}
	for id := range functionPackages {
		envOf[id] = functionEnv(t, tpl, id)
		for _, n := range envOf[id] {
			setAnywhere[n] = true
		}
	}

	for id, names := range requiredEnv {
		t.Run(id, func(t *testing.T) {
			for _, n := range append(slices.Clone(names), everyFunctionEnv...) {
				if !slices.Contains(envOf[id], n) {
					t.Errorf("%s does not set %s", id, n)
				}
			}
			for _, n := range envOf[id] {
				if _, ok := localOnlyEnv[n]; ok {
					t.Errorf("%s sets %s, a local-only name (%s)", id, n, localOnlyEnv[n])
				}
			}
		})
	}

	uses := scanEnvNames(t, root)
	known := map[string]bool{}
	for _, u := range uses {
		known[u.name] = true
	}

	t.Run("every name the code reads is set", func(t *testing.T) {
		if !known[config.EnvQueueURL] {
			t.Fatalf("the scan found no %s in functions/ or internal/; the scan is broken", config.EnvQueueURL)
		}
		for _, u := range uses {
			if _, local := localOnlyEnv[u.name]; local {
				continue
			}
			switch {
			case u.fn != "" && !slices.Contains(envOf[u.fn], u.name):
				t.Errorf("%s: %s reads %s, but template.yaml does not set it for %s", u.pos, u.fn, u.name, u.fn)
			case !setAnywhere[u.name]:
				t.Errorf("%s: the code reads %s, but template.yaml sets it for no function (set it, or add it to localOnlyEnv in infra/env_test.go with the reason)", u.pos, u.name)
			}
		}
	})

	t.Run("every name the template sets is read by the code", func(t *testing.T) {
		for _, n := range sortedKeys(setAnywhere) {
			if !known[n] {
				t.Errorf("template.yaml sets %s, which no Go file under functions/ or internal/ names (a typo?)", n)
			}
		}
	})
}
