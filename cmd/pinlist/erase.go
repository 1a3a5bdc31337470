package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/pinlist/pinlist/internal/config"
	"github.com/pinlist/pinlist/internal/ingest"
	"github.com/pinlist/pinlist/internal/local"
)

func init() {
	register(command{name: "erase", summary: "erase people (GDPR art. 17) from every list through the running ingest API", run: runErase})
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string { return fmt.Sprintf("%d values", len(*m)) }

func (m *multiFlag) Set(v string) error {
	*m = append(*m, v)
	return nil
}

// eraseTimeout bounds the request to the ingest API.
const eraseTimeout = 30 * time.Second

func runErase(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	env, err := config.FromEnv()
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	fs := newFlagSet("erase", stderr,
		"Erases people from every pinlist list of their identifier's type, and from the ledger (GDPR",
		"article 17): it posts them to the ingest API's POST /v1/erasure (pinlist serve's, or the AWS",
		"deployment's with --ingest-url), where they are normalised and hashed as profiles are. The",
		"removal runs through the queue like any change, so it is retried until Pinterest has it. Give",
		"each flag as often as needed. The identifiers are never printed or stored in plain; mind that",
		"a command line may be kept in your shell's history.",
		"",
	)
	var emails, gaids, idfas multiFlag
	fs.Var(&emails, "email", "an email address to erase (repeatable)")
	fs.Var(&gaids, "gaid", "a Google advertising ID to erase (repeatable)")
	fs.Var(&idfas, "idfa", "an Apple advertising ID to erase (repeatable)")
	ingestURL := fs.String("ingest-url", "http://"+env.Addr, "base URL of the ingest API (pinlist serve's, or the AWS deployment's)")
	dataDir := fs.String("data-dir", env.DataDir, "data directory of pinlist serve, whose ingest token is used ($"+config.EnvDataDir+")")
	tokenFile := fs.String("ingest-token-file", "", "file holding the ingest token (default $"+config.EnvIngestToken+", else the token in --data-dir)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(emails)+len(gaids)+len(idfas) == 0 {
		fs.Usage()
		return fmt.Errorf("%w: give at least one --email, --gaid or --idfa", errUsage)
	}
	tok, err := eraseToken(env, *tokenFile, *dataDir)
	if err != nil {
		return err
	}
	idMap := map[string][]map[string]string{}
	for ns, vals := range map[string][]string{"email": emails, "gaid": gaids, "idfa": idfas} {
		for _, v := range vals {
			idMap[ns] = append(idMap[ns], map[string]string{"id": v})
		}
	}
	body, err := json.Marshal(map[string]any{"identityMap": idMap})
	if err != nil {
		return fmt.Errorf("encode the erasure request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, eraseTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(*ingestURL, "/")+ingest.PathErasure, bytes.NewReader(body))
	defer clear(body) // the plain identifiers: kept no longer than the request
	if err != nil {
		return fmt.Errorf("%w: --ingest-url: %v", errUsage, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("post the erasure to %s (is pinlist serve running?): %w", *ingestURL, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read the erasure answer: %w", err)
	}
	if resp.StatusCode != http.StatusAccepted {
		// The answer names paths and reasons, never an identifier.
		return fmt.Errorf("the ingest API refused the erasure: %s: %s", resp.Status, strings.TrimSpace(string(answer)))
	}
	var got struct {
		Erased   int            `json:"identifiersErased"`
		Failed   map[string]int `json:"failed"`
		Excluded map[string]int `json:"excluded"`
	}
	if err := json.Unmarshal(answer, &got); err != nil {
		return fmt.Errorf("read the erasure answer: %w", err)
	}
	fmt.Fprintf(stdout, "erasure accepted: %d identifiers erased from every list of their type", got.Erased)
	if n := total(got.Failed) + total(got.Excluded); n > 0 {
		fmt.Fprintf(stdout, " (%d not usable: failed %v, excluded %v)", n, got.Failed, got.Excluded)
	}
	fmt.Fprintln(stdout, "\nthe upload step sends the removals to Pinterest; the ledger keeps only a guard of the hashes for PINLIST_ERASURE_GUARD.")
	return nil
}

// eraseToken is the ingest token: from the file given, $PINLIST_INGEST_TOKEN,
// or pinlist serve's data directory.
func eraseToken(env config.Config, file, dataDir string) (string, error) {
	if file == "" && env.IngestToken != "" {
		return env.IngestToken, nil
	}
	if file == "" {
		file = local.IngestTokenPath(dataDir)
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%w: no ingest token at %s: give --ingest-token-file or set $%s", errUsage, file, config.EnvIngestToken)
	}
	if err != nil {
		return "", fmt.Errorf("read the ingest token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("read the ingest token: %s is empty", file)
	}
	return tok, nil
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
