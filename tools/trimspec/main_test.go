package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// sourceDir is Pinterest's description as laid beside the repository (it is
// always there for developers and CI: ../shared next to the clone).
const sourceDir = "../../../shared/pinterest"

// committedDir is where go generate writes the trimmed copy.
const committedDir = "../../internal/pinterestsim/openapi"

func TestCommittedSpecIsCurrent(t *testing.T) {
	if _, err := os.Stat(filepath.Join(sourceDir, specFile)); err != nil {
		t.Fatalf("the source description must be beside the repository at %s (shared/pinterest next to the clone): %v", sourceDir, err)
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

func TestRunRequiresFlags(t *testing.T) {
	var stderr bytes.Buffer
	if err := run(nil, &stderr); err == nil {
		t.Error("run without -src/-dst succeeded; want an error")
	}
}
