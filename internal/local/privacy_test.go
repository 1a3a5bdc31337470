package local

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// assertNoPlainEmails fails if a plain address from emails appears, in any
// case, in a file of the stack's data directory (the SQLite database, its
// WAL and shared memory, the token files) or in what it printed and logged.
// It looks while the stack runs (the WAL holds the recent writes) and again
// after it closed (the WAL checkpointed into the database).
func assertNoPlainEmails(t *testing.T, s *testStack, emails []string) {
	t.Helper()
	if len(emails) == 0 {
		t.Fatal("no emails to look for: the check would prove nothing")
	}
	check := func(when string) {
		files := dataFiles(t, s.cfg.DataDir)
		if !containsSuffix(files, QueueFile) {
			t.Fatalf("%s: no %s in the data directory (found %v)", when, QueueFile, files)
		}
		sources := map[string][]byte{"stdout": []byte(s.stdout.String()), "logs": []byte(s.logs.String())}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			sources[filepath.Base(f)] = b
		}
		for name, b := range sources {
			lower := bytes.ToLower(b)
			for _, e := range emails {
				if bytes.Contains(lower, []byte(strings.ToLower(e))) {
					t.Errorf("%s: %s contains the plain email %q", when, name, e)
				}
			}
		}
	}
	check("while running")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	check("after close")
}

func dataFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func containsSuffix(files []string, suffix string) bool {
	for _, f := range files {
		if strings.HasSuffix(f, suffix) {
			return true
		}
	}
	return false
}

// TestDataFilesArePrivate: the data directory is 0700 and every file in it
// 0600 (the queue database and its WAL hold hashed identifiers; the token
// files hold secrets).
func TestDataFilesArePrivate(t *testing.T) {
	s := newStack(t, nil)
	var g gen
	p := profile{ids: []ident{g.email(), g.gaid()}, events: []membershipEvent{{audA, "realized", t0}}}
	s.mustAccept(t, body(t, p))
	m := newModel()
	m.add(p)
	waitMembership(t, s.SimulatorURL(), s.AdAccountID(), m.membership())

	info, err := os.Stat(s.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("data directory mode %04o, want no access for group and others", perm)
	}
	files := dataFiles(t, s.cfg.DataDir)
	for _, want := range []string{QueueFile, QueueFile + "-wal", TokenFile, IngestTokenFile} {
		if !containsSuffix(files, string(filepath.Separator)+want) {
			t.Errorf("no %s in the data directory (found %v)", want, files)
		}
	}
	for _, f := range files {
		info, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", filepath.Base(f), perm)
		}
	}
	assertNoPlainEmails(t, s, plainEmails(p))
}
