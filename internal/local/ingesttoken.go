package local

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strings"
)

// ingestTokenBytes is the entropy of a generated ingest token (256 bits).
const ingestTokenBytes = 32

// Where the ingest token came from, for the start banner.
const (
	ingestTokenConfigured = "configured" // PINLIST_INGEST_TOKEN
	ingestTokenStored     = "stored"     // read from the data directory
	ingestTokenGenerated  = "generated"  // made now and stored
)

// loadIngestToken returns the ingest token and where it came from: the
// configured one, else the one stored at path, else a new random one stored
// there (0600, created exclusively, so two starts never store different
// tokens). Errors name the file, never its content.
func loadIngestToken(path, configured string) (tok, origin string, err error) {
	if configured != "" {
		return configured, ingestTokenConfigured, nil
	}
	tok, err = readIngestToken(path)
	if err == nil {
		return tok, ingestTokenStored, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", "", err
	}
	var b [ingestTokenBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	tok = base64.RawURLEncoding.EncodeToString(b[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Another start stored one first: use that.
		tok, err = readIngestToken(path)
		return tok, ingestTokenStored, err
	}
	if err != nil {
		return "", "", fmt.Errorf("store the ingest token: %w", err)
	}
	_, werr := f.WriteString(tok + "\n")
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(path)
		return "", "", fmt.Errorf("store the ingest token in %s: %w", path, err)
	}
	return tok, ingestTokenGenerated, nil
}

// readIngestToken reads a stored ingest token. Like ssh with a private key,
// it refuses a file other users may read rather than quietly tightening it.
func readIngestToken(path string) (string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("read the ingest token: %w", err)
	}
	if perm := info.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return "", fmt.Errorf("read the ingest token: %s has mode %04o, want 0600 (run chmod 600 %s)", path, perm, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read the ingest token: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" || strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return "", fmt.Errorf("read the ingest token: %s does not hold one token of printable characters (delete it to have a new one generated)", path)
	}
	return tok, nil
}
