package token

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// ErrInsecureFile is returned by FileStore.Load for a token file that users
// other than its owner may read or write.
var ErrInsecureFile = errors.New("token file is open to other users")

// FileStore keeps the token as JSON in one file, mode 0600 (the local stack's
// store, under PINLIST_DATA_DIR).
//
// Save replaces the file atomically: it writes a temporary file in the same
// directory, syncs it, renames it over Path and syncs the directory, so a
// reader or a crash sees the old token or the new one, never a mix. A fresh
// refresh token is therefore never half-written.
//
// Load refuses (ErrInsecureFile) a file whose mode gives group or others any
// access, like ssh with a private key: the token may already have been read,
// so pinlist says so rather than quietly tightening the mode. `chmod 600` or
// a new `pinlist connect` (Save always writes 0600) fixes it. The check is
// skipped on Windows, which has no such mode bits.
type FileStore struct {
	Path string
}

var _ Store = FileStore{}

// Load reads the token; ErrNotFound when the file does not exist or holds no
// token.
func (s FileStore) Load(ctx context.Context) (Token, error) {
	if err := ctx.Err(); err != nil {
		return Token{}, fmt.Errorf("load token from %s: %w", s.Path, err)
	}
	f, err := os.Open(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return Token{}, fmt.Errorf("load token from %s: %w", s.Path, ErrNotFound)
	}
	if err != nil {
		return Token{}, fmt.Errorf("load token: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return Token{}, fmt.Errorf("load token: %w", err)
	}
	if perm := info.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return Token{}, fmt.Errorf("load token from %s: %w: mode %04o, want 0600 (run chmod 600 %s)", s.Path, ErrInsecureFile, perm, s.Path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxStored+1))
	if err != nil {
		return Token{}, fmt.Errorf("load token: %w", err)
	}
	if len(data) > maxStored {
		return Token{}, fmt.Errorf("load token from %s: %w: over %d bytes", s.Path, ErrInvalid, maxStored)
	}
	t, err := decode(data)
	if err != nil {
		return Token{}, fmt.Errorf("load token from %s: %w", s.Path, err)
	}
	return t, nil
}

// Save validates t and replaces the file with it (mode 0600), creating the
// directory (0700) when missing. An invalid token is refused and the file
// left as it was.
func (s FileStore) Save(ctx context.Context, t Token) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("save token to %s: %w", s.Path, err)
	}
	if err := t.Validate(); err != nil {
		return fmt.Errorf("save token to %s: %w", s.Path, err)
	}
	data, err := encode(t, true)
	if err != nil {
		return fmt.Errorf("save token to %s: encode: %w", s.Path, err)
	}
	if err := writeFileAtomic(s.Path, data); err != nil {
		return fmt.Errorf("save token: %w", err)
	}
	return nil
}

// writeFileAtomic replaces path with data, mode 0600, through a synced
// temporary file in the same directory and a rename.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp") // mode 0600
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable. Windows cannot open a directory for
// syncing; there the rename is as durable as the file system makes it.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
