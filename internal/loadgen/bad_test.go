package loadgen

import (
	"os"
	"path/filepath"
	"testing"
)

const corpusDir = "../../testdata/bad"

// TestBadCorpusIsComplete checks the manifest: at least 40 cases, every
// committed file used by a case, every error case with a code and a path,
// and the seeds BadCorpus hands the fuzz targets.
func TestBadCorpusIsComplete(t *testing.T) {
	cases, err := LoadBadCases(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 40 {
		t.Fatalf("%d cases, want at least 40", len(cases))
	}
	used := map[string]bool{BadManifest: true}
	for _, c := range cases {
		used[c.File] = true
		if c.Status >= 400 && (c.Code == "" || c.ErrorPath == nil) {
			t.Errorf("case %q: an error case needs code and errorPath", c.Name)
		}
		if len(c.Body) == 0 && c.File != "empty.json" {
			t.Errorf("case %q: empty body", c.Name)
		}
	}
	files, err := os.ReadDir(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !used[f.Name()] {
			t.Errorf("%s is in the corpus but no case uses it", filepath.Join(corpusDir, f.Name()))
		}
	}
	seeds, err := BadCorpus(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(seeds) < 40 {
		t.Fatalf("%d fuzz seeds, want one per committed body (at least 40)", len(seeds))
	}
	for _, s := range seeds {
		if len(s) > maxSeedBytes {
			t.Fatalf("a seed of %d bytes", len(s))
		}
	}
}

func TestGenerateBad(t *testing.T) {
	for name, check := range map[string]func([]byte) bool{
		"body-10mb":       func(b []byte) bool { return len(b) > 10<<20 },
		"identities-100k": func(b []byte) bool { return len(b) > 4<<20 && len(b) < 5<<20 },
		"huge-string":     func(b []byte) bool { return len(b) > 4<<20 && len(b) < 5<<20 },
		"profiles-10001":  func(b []byte) bool { return len(b) == 2+10_001*2+10_000 },
		"audiences-1001":  func(b []byte) bool { return len(b) > 1001*60 },
		"deep-100k":       func(b []byte) bool { return len(b) == 200_000 },
	} {
		b, err := GenerateBad(name)
		if err != nil || !check(b) {
			t.Errorf("GenerateBad(%q): %d bytes, %v", name, len(b), err)
		}
	}
	if _, err := GenerateBad("nope"); err == nil {
		t.Error("an unknown name was generated")
	}
}
