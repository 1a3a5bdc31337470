package token

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}

func TestFileStoreRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // created by Save
	s := FileStore{Path: filepath.Join(dir, "token.json")}
	want := sampleToken()
	if err := s.Save(t.Context(), want); err != nil {
		t.Fatalf("Save: %v", err)
	}
	got, err := s.Load(t.Context())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s", diff)
	}
	for path, want := range map[string]os.FileMode{s.Path: 0o600, dir: 0o700} {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatalf("stat %s: %v", path, err)
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s mode %04o, want %04o", path, got, want)
		}
	}
}

func TestFileStoreLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string // "" with mode 0: no file
		mode    os.FileMode
		wantErr error
	}{
		{"no file", "", 0, ErrNotFound},
		{"empty file", "", 0o600, ErrNotFound},
		{"placeholder", "{}\n", 0o600, ErrNotFound},
		{"not JSON", "access_token=pina_FAKEACCESSTOKEN0123456789", 0o600, ErrInvalid},
		{"readable by the group", `{"access_token":"pina_FAKEACCESSTOKEN0123456789"}`, 0o640, ErrInsecureFile},
		{"readable by everyone", `{"access_token":"pina_FAKEACCESSTOKEN0123456789"}`, 0o644, ErrInsecureFile},
		{"writable by others", `{"access_token":"pina_FAKEACCESSTOKEN0123456789"}`, 0o602, ErrInsecureFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "token.json")
			if tt.mode != 0 {
				if err := os.WriteFile(path, []byte(tt.content), tt.mode); err != nil {
					t.Fatalf("write: %v", err)
				}
				if err := os.Chmod(path, tt.mode); err != nil { // past the umask
					t.Fatalf("chmod: %v", err)
				}
			}
			_, err := FileStore{Path: path}.Load(t.Context())
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Load = %v, want %v", err, tt.wantErr)
			}
			for _, secret := range secretValues {
				if err != nil && (strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "pina_")) {
					t.Fatalf("Load error shows the token: %v", err)
				}
			}
		})
	}
}

// TestFileStoreSaveReplacesAtomically: a reader holding the old file open
// still reads the whole old token after a Save (the file was replaced by a
// rename, not rewritten in place), the new file is 0600 even where the old one
// was not, and no temporary file is left behind.
func TestFileStoreSaveReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	s := FileStore{Path: filepath.Join(dir, "token.json")}
	old := sampleToken()
	if err := s.Save(t.Context(), old); err != nil {
		t.Fatalf("first Save: %v", err)
	}
	before := readFile(t, s.Path)
	reader, err := os.Open(s.Path)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer reader.Close()
	if err := os.Chmod(s.Path, 0o644); err != nil {
		t.Fatalf("chmod: %v", err)
	}

	next := sampleToken()
	next.AccessToken, next.RefreshToken = "pina_NEXT", "pinr_NEXT"
	if err := s.Save(t.Context(), next); err != nil {
		t.Fatalf("second Save: %v", err)
	}
	held, err := io.ReadAll(reader)
	if err != nil {
		t.Fatalf("read the old file: %v", err)
	}
	if string(held) != before {
		t.Fatalf("the open old file changed under its reader:\n%s\nwant\n%s", held, before)
	}
	got, err := s.Load(t.Context())
	if err != nil || got.RefreshToken != "pinr_NEXT" {
		t.Fatalf("Load after Save = %v, %v; want the new token", got, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read dir: %v", err)
	}
	if len(entries) != 1 || entries[0].Name() != "token.json" {
		t.Fatalf("directory holds %v, want only token.json", entries)
	}
}

func TestFileStoreSaveRefusesAnInvalidToken(t *testing.T) {
	s := FileStore{Path: filepath.Join(t.TempDir(), "token.json")}
	good := sampleToken()
	if err := s.Save(t.Context(), good); err != nil {
		t.Fatalf("Save: %v", err)
	}
	bad := good
	bad.RefreshToken = ""
	if err := s.Save(t.Context(), bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Save without a refresh token = %v, want ErrInvalid", err)
	}
	got, err := s.Load(t.Context())
	if err != nil || got.RefreshToken != good.RefreshToken {
		t.Fatalf("Load after a refused Save = %v, %v; want the earlier token", got, err)
	}
}

func TestFileStoreSaveFailsWhenTheDirectoryCannotBeMade(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatalf("write: %v", err)
	}
	err := FileStore{Path: filepath.Join(blocker, "token.json")}.Save(t.Context(), sampleToken())
	if err == nil {
		t.Fatal("Save under a regular file: want an error")
	}
}

// TestFileStoreConcurrentSaveAndLoad: readers racing writers only ever see a
// whole token, one of those written.
func TestFileStoreConcurrentSaveAndLoad(t *testing.T) {
	s := FileStore{Path: filepath.Join(t.TempDir(), "token.json")}
	a, b := sampleToken(), sampleToken()
	b.AccessToken, b.AccessTokenExpiresAt = "pina_B", b.AccessTokenExpiresAt.Add(time.Hour)
	if err := s.Save(t.Context(), a); err != nil {
		t.Fatalf("Save: %v", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	wg.Go(func() {
		for i := range 30 {
			if err := s.Save(t.Context(), []Token{a, b}[i%2]); err != nil {
				errs <- err
				return
			}
		}
	})
	for range 2 {
		wg.Go(func() {
			for range 60 {
				got, err := s.Load(t.Context())
				if err != nil {
					errs <- err
					return
				}
				if !cmp.Equal(got, a) && !cmp.Equal(got, b) {
					errs <- errors.New("loaded a token that was never saved: " + got.String())
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
