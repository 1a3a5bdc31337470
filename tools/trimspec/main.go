// Command trimspec writes the part of Pinterest's OpenAPI description that the
// Pinterest simulator (internal/pinterestsim) serves and validates against.
//
// It keeps the operations the simulator implements, every component they
// reference (followed transitively), the security schemes and tags they name,
// and the MIT licence notice, and it rewrites the OAuth token request schema so
// that its grant_type discriminator is enforced (see patchTokenRequest). The
// output is deterministic, so a test can check that the committed copy is
// current. Run it through `go generate ./internal/pinterestsim`.
//
// Its source is the copy of Pinterest's description vendored unmodified in
// third_party/pinterest-api-v5 (openapi.json and its LICENSE); it writes
// internal/pinterestsim/openapi (openapi.json and LICENSE.openapi). Both are
// the defaults, found from the enclosing module's root, so it needs no flags.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Operations are the operationIds the simulator serves; everything else in the
// source description is dropped.
var operations = []string{
	"customer_lists/create",
	"customer_lists/list",
	"customer_lists/get",
	"customer_lists/update",
	"audiences/create",
	"audiences/list",
	"audiences/get",
	"audiences/update",
	"oauth/token",
}

// The file names inside the source and destination folders: the description
// keeps its name; the licence is LICENSE in the vendored folder and
// LICENSE.openapi beside the trimmed copy (which the simulator embeds).
const (
	specFile       = "openapi.json"
	srcLicenseFile = "LICENSE"
	licenseFile    = "LICENSE.openapi"
)

// The default folders, relative to the module root.
const (
	defaultSrc = "third_party/pinterest-api-v5"
	defaultDst = "internal/pinterestsim/openapi"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "trimspec:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("trimspec", flag.ContinueOnError)
	fs.SetOutput(stderr)
	src := fs.String("src", "", "folder holding Pinterest's "+specFile+" and its "+srcLicenseFile+
		" (default: <module root>/"+defaultSrc+")")
	dst := fs.String("dst", "", "folder to write the trimmed "+specFile+" and "+licenseFile+
		" into (default: <module root>/"+defaultDst+")")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: trimspec takes only -src and -dst", fs.Args())
	}
	if *src == "" || *dst == "" {
		wd, err := os.Getwd()
		if err != nil {
			return fmt.Errorf("find the working directory for the default folders: %w", err)
		}
		root, err := moduleRoot(wd)
		if err != nil {
			return fmt.Errorf("find the default folders (or pass -src and -dst): %w", err)
		}
		if *src == "" {
			*src = filepath.Join(root, defaultSrc)
		}
		if *dst == "" {
			*dst = filepath.Join(root, defaultDst)
		}
	}
	files, err := Generate(*src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dst, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", *dst, err)
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		path := filepath.Join(*dst, name)
		if err := os.WriteFile(path, files[name], 0o644); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return nil
}

// moduleRoot returns the nearest directory at or above dir that holds a
// go.mod.
func moduleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("make %s absolute: %w", dir, err)
	}
	for start := dir; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("look for go.mod in %s: %w", dir, err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod at or above %s", start)
		}
		dir = parent
	}
}

// Generate reads the source description and licence in srcDir and returns the
// files to commit, by file name.
func Generate(srcDir string) (map[string][]byte, error) {
	raw, err := os.ReadFile(filepath.Join(srcDir, specFile))
	if err != nil {
		return nil, fmt.Errorf("read source description: %w", err)
	}
	license, err := os.ReadFile(filepath.Join(srcDir, srcLicenseFile))
	if err != nil {
		return nil, fmt.Errorf("read source licence: %w", err)
	}
	trimmed, err := Trim(raw)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{specFile: trimmed, licenseFile: license}, nil
}

// Trim returns the trimmed, patched description as indented JSON.
func Trim(raw []byte) ([]byte, error) {
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("decode source description: %w", err)
	}
	paths, ok := doc["paths"].(map[string]any)
	if !ok {
		return nil, errors.New("source description has no paths object")
	}
	components, ok := doc["components"].(map[string]any)
	if !ok {
		return nil, errors.New("source description has no components object")
	}

	keptPaths, found := keepOperations(paths)
	for _, id := range operations {
		if !found[id] {
			return nil, fmt.Errorf("operation %q not found in the source description", id)
		}
	}

	// Follow $refs from the kept paths through the components until no new
	// component turns up.
	refs := map[string]bool{}
	queue := collectRefs(keptPaths, nil)
	for len(queue) > 0 {
		ref := queue[0]
		queue = queue[1:]
		if refs[ref] {
			continue
		}
		refs[ref] = true
		node, err := resolve(components, ref)
		if err != nil {
			return nil, err
		}
		queue = collectRefs(node, queue)
	}
	keptComponents := map[string]any{}
	for ref := range refs {
		kind, name, _ := splitRef(ref)
		section, _ := keptComponents[kind].(map[string]any)
		if section == nil {
			section = map[string]any{}
			keptComponents[kind] = section
		}
		node, _ := resolve(components, ref)
		section[name] = node
	}

	schemes, tags := securityAndTags(keptPaths)
	if src, ok := components["securitySchemes"].(map[string]any); ok {
		kept := map[string]any{}
		for name := range schemes {
			if s, ok := src[name]; ok {
				kept[name] = s
			}
		}
		keptComponents["securitySchemes"] = kept
	}

	schemas, _ := keptComponents["schemas"].(map[string]any)
	if err := patchTokenRequest(schemas); err != nil {
		return nil, err
	}

	out := map[string]any{
		"openapi":    doc["openapi"],
		"info":       doc["info"],
		"servers":    doc["servers"],
		"paths":      keptPaths,
		"components": keptComponents,
		"x-pinlist-trimmed": "Generated by tools/trimspec from Pinterest's v5/openapi.json: only the operations " +
			strings.Join(operations, ", ") + " and what they reference; OauthAccessTokenRequest rewritten as a oneOf " +
			"over its grant types so the discriminator is enforced. Do not edit by hand: run go generate ./internal/pinterestsim.",
	}
	if srcTags, ok := doc["tags"].([]any); ok {
		var keptTags []any
		for _, t := range srcTags {
			if m, ok := t.(map[string]any); ok && tags[fmt.Sprint(m["name"])] {
				keptTags = append(keptTags, t)
			}
		}
		out["tags"] = keptTags
	}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return nil, fmt.Errorf("encode trimmed description: %w", err)
	}
	return buf.Bytes(), nil
}

// keepOperations returns the paths object reduced to the wanted operations
// (path-level parameters kept) and which operationIds it found.
func keepOperations(paths map[string]any) (map[string]any, map[string]bool) {
	want := map[string]bool{}
	for _, id := range operations {
		want[id] = true
	}
	found := map[string]bool{}
	kept := map[string]any{}
	for path, item := range paths {
		pathItem, ok := item.(map[string]any)
		if !ok {
			continue
		}
		keptItem := map[string]any{}
		for key, value := range pathItem {
			op, ok := value.(map[string]any)
			if !ok || !isMethod(key) {
				continue
			}
			if id, _ := op["operationId"].(string); want[id] {
				keptItem[key] = op
				found[id] = true
			}
		}
		if len(keptItem) == 0 {
			continue
		}
		if params, ok := pathItem["parameters"]; ok {
			keptItem["parameters"] = params
		}
		kept[path] = keptItem
	}
	return kept, found
}

func isMethod(key string) bool {
	switch key {
	case "get", "put", "post", "delete", "options", "head", "patch", "trace":
		return true
	}
	return false
}

// collectRefs appends every "$ref" value found under node to refs, and the
// targets of discriminator mappings (references too, though not "$ref"s).
func collectRefs(node any, refs []string) []string {
	switch v := node.(type) {
	case map[string]any:
		for key, child := range v {
			if s, ok := child.(string); ok && key == "$ref" {
				refs = append(refs, s)
				continue
			}
			if disc, ok := child.(map[string]any); ok && key == "discriminator" {
				mapping, _ := disc["mapping"].(map[string]any)
				for _, target := range mapping {
					refs = append(refs, fmt.Sprint(target))
				}
				continue
			}
			refs = collectRefs(child, refs)
		}
	case []any:
		for _, child := range v {
			refs = collectRefs(child, refs)
		}
	}
	return refs
}

// splitRef splits "#/components/KIND/NAME".
func splitRef(ref string) (kind, name string, ok bool) {
	rest, ok := strings.CutPrefix(ref, "#/components/")
	if !ok {
		return "", "", false
	}
	kind, name, ok = strings.Cut(rest, "/")
	if !ok || strings.Contains(name, "/") {
		return "", "", false
	}
	return kind, name, true
}

func resolve(components map[string]any, ref string) (any, error) {
	kind, name, ok := splitRef(ref)
	if !ok {
		return nil, fmt.Errorf("unsupported $ref %q (only #/components/KIND/NAME)", ref)
	}
	section, _ := components[kind].(map[string]any)
	node, ok := section[name]
	if !ok {
		return nil, fmt.Errorf("$ref %q does not resolve", ref)
	}
	return node, nil
}

// securityAndTags returns the security scheme names and tags the kept
// operations use.
func securityAndTags(paths map[string]any) (schemes, tags map[string]bool) {
	schemes, tags = map[string]bool{}, map[string]bool{}
	for _, item := range paths {
		for key, value := range item.(map[string]any) {
			op, ok := value.(map[string]any)
			if !ok || !isMethod(key) {
				continue
			}
			security, _ := op["security"].([]any)
			for _, req := range security {
				for name := range req.(map[string]any) {
					schemes[name] = true
				}
			}
			opTags, _ := op["tags"].([]any)
			for _, t := range opTags {
				tags[fmt.Sprint(t)] = true
			}
		}
	}
	return schemes, tags
}

// patchTokenRequest rewrites OauthAccessTokenRequest. Upstream it has a
// discriminator on grant_type but no oneOf, so a validator checks only that
// grant_type is one of the enum values and never the per-grant required
// fields (a refresh request without refresh_token passes). As a object with
// oneOf over the mapped schemas plus the same discriminator, each grant's own
// schema is enforced. "type": "object" must stay: kin-openapi decodes an
// urlencoded body only against an object schema.
func patchTokenRequest(schemas map[string]any) error {
	const name = "OauthAccessTokenRequest"
	req, ok := schemas[name].(map[string]any)
	if !ok {
		return fmt.Errorf("schema %s not found", name)
	}
	disc, ok := req["discriminator"].(map[string]any)
	if !ok {
		return fmt.Errorf("schema %s has no discriminator", name)
	}
	mapping, ok := disc["mapping"].(map[string]any)
	if !ok || len(mapping) == 0 {
		return fmt.Errorf("schema %s: discriminator has no mapping", name)
	}
	var oneOf []any
	for _, grant := range slices.Sorted(maps.Keys(mapping)) {
		ref := fmt.Sprint(mapping[grant])
		_, target, ok := splitRef(ref)
		if !ok {
			return fmt.Errorf("schema %s: bad mapping %q", name, ref)
		}
		if _, ok := schemas[target]; !ok {
			return fmt.Errorf("schema %s: mapping target %s was not kept", name, target)
		}
		oneOf = append(oneOf, map[string]any{"$ref": ref})
	}
	schemas[name] = map[string]any{
		"description":   req["description"],
		"title":         req["title"],
		"type":          "object",
		"oneOf":         oneOf,
		"discriminator": disc,
	}
	return nil
}
