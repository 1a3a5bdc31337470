package main

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

func TestCutShape(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantShape string
		wantRest  []string
	}{
		{"no shape", []string{"--profiles", "10"}, "", []string{"--profiles", "10"}},
		{"separate value", []string{"--profiles", "10", "--shape", "aws", "-v"}, "aws", []string{"--profiles", "10", "-v"}},
		{"joined value", []string{"--shape=aws", "--seed", "2"}, "aws", []string{"--seed", "2"}},
		{"single dash", []string{"-shape", "aws"}, "aws", []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			shape, rest := cutShape(tc.args)
			if shape != tc.wantShape || !slices.Equal(rest, tc.wantRest) {
				t.Errorf("cutShape(%q) = %q, %q; want %q, %q", tc.args, shape, rest, tc.wantShape, tc.wantRest)
			}
		})
	}
}

func TestLoadShapeRejectsOtherShapes(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"load", "--shape", "gcp"}, &stdout, &stderr)
	if !errors.Is(err, errUsage) {
		t.Fatalf("pinlist load --shape gcp: %v, want a usage error", err)
	}
}
