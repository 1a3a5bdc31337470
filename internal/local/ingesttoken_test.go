package local

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadIngestToken(t *testing.T) {
	t.Run("configured wins and nothing is stored", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), IngestTokenFile)
		tok, origin, err := loadIngestToken(path, "from-env")
		if err != nil || tok != "from-env" || origin != ingestTokenConfigured {
			t.Fatalf("= %q, %q, %v", tok, origin, err)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("a configured token was stored: %v", err)
		}
	})
	t.Run("generated once, 0600, then reused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), IngestTokenFile)
		tok, origin, err := loadIngestToken(path, "")
		if err != nil || origin != ingestTokenGenerated {
			t.Fatalf("first start = %q, %v", origin, err)
		}
		if len(tok) < 43 || strings.ContainsAny(tok, " \n") {
			t.Errorf("generated token %q is short or has white space", tok)
		}
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("token file mode %04o, want 0600", perm)
		}
		again, origin, err := loadIngestToken(path, "")
		if err != nil || again != tok || origin != ingestTokenStored {
			t.Errorf("second start = %q, %q, %v; want the stored token", again, origin, err)
		}
		other, _, err := loadIngestToken(filepath.Join(t.TempDir(), IngestTokenFile), "")
		if err != nil || other == tok {
			t.Errorf("two data directories got the same token (%v)", err)
		}
	})
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		wantErr string
	}{
		{"readable by others", "secret-token\n", 0o644, "mode 0644"},
		{"empty", "\n", 0o600, "does not hold one token"},
		{"two words", "a b\n", 0o600, "does not hold one token"},
	}
	for _, tc := range tests {
		t.Run("refuses a file that is "+tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), IngestTokenFile)
			if err := os.WriteFile(path, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, _, err := loadIngestToken(path, "")
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one saying %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "secret-token") {
				t.Errorf("the error quotes the file: %v", err)
			}
		})
	}
}

// TestBannerPrintsAGeneratedTokenOnce: the first start shows the generated
// token; later starts point at the file instead.
func TestBannerPrintsAGeneratedTokenOnce(t *testing.T) {
	first := newStack(t, nil)
	first.PrintBanner()
	out := first.stdout.String()
	for _, want := range []string{first.IngestURL(), first.IngestToken(), first.SimulatorURL() + "/_sim/state", "data dir:", "try:",
		"status page:   " + first.IngestURL() + "/status\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("first banner lacks %q:\n%s", want, out)
		}
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second := newStack(t, func(c *Config) { c.DataDir = first.cfg.DataDir })
	if second.IngestToken() != first.IngestToken() {
		t.Fatal("the second start has another ingest token")
	}
	second.PrintBanner()
	out = second.stdout.String()
	if strings.Contains(out, second.IngestToken()) {
		t.Errorf("the second banner shows the token again:\n%s", out)
	}
	if !strings.Contains(out, IngestTokenPath(first.cfg.DataDir)) {
		t.Errorf("the second banner does not say where the token is:\n%s", out)
	}
	if strings.Contains(first.logs.String()+second.logs.String(), first.IngestToken()) {
		t.Error("the ingest token was logged")
	}
}
