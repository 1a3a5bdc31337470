package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sourceDir is Pinterest's description as vendored in the repository.
const sourceDir = "../../" + defaultSrc

// committedDir is where go generate writes the trimmed copy.
const committedDir = "../../" + defaultDst

func TestCommittedSpecIsCurrent(t *testing.T) {
	if _, err := os.Stat(filepath.Join(sourceDir, specFile)); err != nil {
		t.Fatalf("the vendored source description is missing at %s: %v", sourceDir, err)
	}
	want, err := Generate(sourceDir)
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	for name, content := range want {
		got, err := os.ReadFile(filepath.Join(committedDir, name))
		if err != nil {
			t.Fatalf("read committed %s: %v", name, err)
		}
		if !bytes.Equal(got, content) {
			t.Errorf("%s/%s is out of date with tools/trimspec; run: go generate ./internal/pinterestsim", committedDir, name)
		}
	}
}

func TestTrim(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(sourceDir, specFile))
	if err != nil {
		t.Fatalf("read source description: %v", err)
	}
	out, err := Trim(raw)
	if err != nil {
		t.Fatalf("trim: %v", err)
	}
	again, err := Trim(raw)
	if err != nil {
		t.Fatalf("trim again: %v", err)
	}
	if !bytes.Equal(out, again) {
		t.Error("two runs gave different output; the output must be deterministic")
	}

	var doc struct {
		Info struct {
			License struct{ Name string } `json:"license"`
		} `json:"info"`
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("decode output: %v", err)
	}
	if doc.Info.License.Name != "MIT" {
		t.Errorf("licence = %q, want the MIT notice kept", doc.Info.License.Name)
	}
	var ids []string
	for _, item := range doc.Paths {
		for key, raw := range item {
			if !isMethod(key) {
				continue
			}
			var op struct {
				OperationID string `json:"operationId"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("decode operation: %v", err)
			}
			ids = append(ids, op.OperationID)
		}
	}
	slices.Sort(ids)
	wantIDs := slices.Sorted(slices.Values(operations))
	if !slices.Equal(ids, wantIDs) {
		t.Errorf("operations = %v, want %v", ids, wantIDs)
	}
	tokenReq := doc.Components.Schemas["OauthAccessTokenRequest"]
	if tokenReq["type"] != "object" {
		t.Errorf("OauthAccessTokenRequest type = %v, want object", tokenReq["type"])
	}
	if oneOf, _ := tokenReq["oneOf"].([]any); len(oneOf) != 3 {
		t.Errorf("OauthAccessTokenRequest oneOf has %d entries, want 3", len(oneOf))
	}
	for _, name := range []string{"OauthAccessTokenRequestCode", "OauthAccessTokenRequestRefresh", "CustomerListRequest", "AudienceRule"} {
		if _, ok := doc.Components.Schemas[name]; !ok {
			t.Errorf("schema %s missing from the trimmed description", name)
		}
	}
	if len(out) > 200_000 {
		t.Errorf("trimmed description is %d bytes; expected well under 200 KB", len(out))
	}
}

func TestSplitRef(t *testing.T) {
	tests := []struct {
		name, ref, kind, item string
		ok                    bool
	}{
		{name: "schema", ref: "#/components/schemas/Error", kind: "schemas", item: "Error", ok: true},
		{name: "parameter", ref: "#/components/parameters/query_bookmark", kind: "parameters", item: "query_bookmark", ok: true},
		{name: "external", ref: "other.json#/components/schemas/X"},
		{name: "nested", ref: "#/components/schemas/X/properties/y"},
		{name: "no name", ref: "#/components/schemas"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, item, ok := splitRef(tt.ref)
			if kind != tt.kind || item != tt.item || ok != tt.ok {
				t.Errorf("splitRef(%q) = %q, %q, %v; want %q, %q, %v", tt.ref, kind, item, ok, tt.kind, tt.item, tt.ok)
			}
		})
	}
}

// TestVendoredSource pins what third_party/pinterest-api-v5 holds: version
// 5.23.0 of the description, unmodified (its SHA-256 is the upstream file's,
// pinterest/api-description v5/openapi.json at tag v5.23.0), and the MIT
// licence it names.
func TestVendoredSource(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(sourceDir, specFile))
	if err != nil {
		t.Fatalf("read vendored description: %v", err)
	}
	const upstreamSHA256 = "537bde5a50b181d653840bed4fb4735d753b5be4ce98bc8192de258cee67b142"
	if got := fmt.Sprintf("%x", sha256.Sum256(raw)); got != upstreamSHA256 {
		t.Errorf("vendored %s has SHA-256 %s, want %s (upstream v5.23.0, unmodified); if you updated it, update this test, third_party/pinterest-api-v5/README.md and run go generate ./internal/pinterestsim", specFile, got, upstreamSHA256)
	}
	var doc struct {
		Info struct {
			Version string
			License struct{ Name string }
		}
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("decode vendored description: %v", err)
	}
	if doc.Info.Version != "5.23.0" || doc.Info.License.Name != "MIT" {
		t.Errorf("vendored description: version %q licence %q, want 5.23.0 and MIT", doc.Info.Version, doc.Info.License.Name)
	}
	license, err := os.ReadFile(filepath.Join(sourceDir, srcLicenseFile))
	if err != nil {
		t.Fatalf("read vendored licence: %v", err)
	}
	for _, want := range []string{"Copyright © 2021 Pinterest, Inc.", "Permission is hereby granted, free of charge"} {
		if !strings.Contains(string(license), want) {
			t.Errorf("vendored %s lacks %q", srcLicenseFile, want)
		}
	}
}

// TestRunWritesWhatIsCommitted runs the command as go generate does, into a
// temporary folder, and compares with the committed copy.
func TestRunWritesWhatIsCommitted(t *testing.T) {
	dst := t.TempDir()
	var stderr bytes.Buffer
	if err := run([]string{"-src", sourceDir, "-dst", dst}, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	for _, name := range []string{specFile, licenseFile} {
		got, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil {
			t.Fatalf("read written %s: %v", name, err)
		}
		want, err := os.ReadFile(filepath.Join(committedDir, name))
		if err != nil {
			t.Fatalf("read committed %s: %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("run wrote a %s that differs from %s/%s", name, committedDir, name)
		}
	}
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "unknown flag", args: []string{"-nope"}, want: "flag provided but not defined"},
		{name: "stray argument", args: []string{"-src", sourceDir, "-dst", "x", "extra"}, want: "unexpected arguments"},
		{name: "missing source", args: []string{"-src", "no-such-dir", "-dst", "x"}, want: "read source description"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(tt.args, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run(%q) = %v, want an error containing %q", tt.args, err, tt.want)
			}
		})
	}
}

func TestModuleRoot(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	tests := []struct {
		name, dir, want string
		wantErr         bool
	}{
		{name: "from this package", dir: ".", want: root},
		{name: "from the simulator (go generate's directory)", dir: "../../internal/pinterestsim", want: root},
		{name: "from the root", dir: root, want: root},
		{name: "outside any module", dir: outside, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := moduleRoot(tt.dir)
			if tt.wantErr {
				if err == nil {
					t.Errorf("moduleRoot(%s) = %s, want an error", tt.dir, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("moduleRoot(%s) = %s, %v; want %s", tt.dir, got, err, tt.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(root, defaultSrc, specFile)); err != nil {
		t.Errorf("default -src does not hold %s: %v", specFile, err)
	}
	if _, err := os.Stat(filepath.Join(root, defaultDst, specFile)); err != nil {
		t.Errorf("default -dst does not hold %s: %v", specFile, err)
	}
}
