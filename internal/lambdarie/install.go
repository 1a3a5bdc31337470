// Package lambdarie runs a built Lambda bootstrap on the host under the AWS
// Lambda Runtime Interface Emulator (aws-lambda-rie, the runtime that
// `sam local invoke` runs inside its container), with no container, and
// invokes it over the emulator's HTTP API.
//
// The emulator is built with `go install` at a pinned version and cached
// ([Install]); a function is built for the host ([Build]) and started under
// its own emulator on free 127.0.0.1 ports ([Start]). The runtime tests and
// the `make invoke-*` targets use it.
//
// Two things differ from invoking a function in AWS: a handler error still
// answers HTTP 200, so [Function.Invoke] reads the body and returns a
// [*FunctionError]; and a function that fails while starting answers 502
// with an empty body (its log says why).
package lambdarie

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Module and Version pin the emulator that [Install] builds. The tagged
// releases are not served by the Go module proxy; this pseudo-version is.
const (
	Module  = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"
	Version = "v0.0.0-20261030222936-bef5c4ba774d"
)

// binName is the emulator's executable name.
const binName = "aws-lambda-rie"

// outputTail bounds how much of a go command's output an error quotes.
const outputTail = 4 << 10

// DefaultCacheDir is where [Install] keeps the emulator when the caller has
// no better place: the user's cache directory (~/.cache/pinlist on Linux),
// else the temporary directory.
func DefaultCacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "pinlist")
}

// Cached returns the path [Install] uses under cacheDir, and whether an
// executable is there already.
func Cached(cacheDir string) (path string, ok bool) {
	path = filepath.Join(cacheDir, binName, Version, binName)
	fi, err := os.Stat(path)
	return path, err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Install returns the path of aws-lambda-rie at [Version] under cacheDir,
// building it first with `go install Module@Version` when it is not there
// (about a minute with a cold module cache; it needs the Go module proxy).
// Concurrent installs are safe: each builds into its own directory and
// renames the result into place.
func Install(ctx context.Context, cacheDir string) (string, error) {
	path, ok := Cached(cacheDir)
	if ok {
		return path, nil
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create the emulator's cache directory: %w", err)
	}
	tmp, err := os.MkdirTemp(dir, "install-")
	if err != nil {
		return "", fmt.Errorf("create a directory to install the emulator into: %w", err)
	}
	defer os.RemoveAll(tmp)

	cmd := exec.CommandContext(ctx, "go", "install", Module+"@"+Version)
	cmd.Dir = tmp // outside any module or workspace
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s@%s (needs Go on PATH and the Go module proxy): %w\n%s",
			Module, Version, err, tail(out))
	}
	if err := os.Rename(filepath.Join(tmp, binName), path); err != nil {
		return "", fmt.Errorf("move the built emulator into %s: %w", dir, err)
	}
	return path, nil
}

// Build compiles the main package pkg (such as ./functions/ingest) of the
// module in moduleDir into the executable out, for the host, the way the
// Lambda runtime provided.al2023 wants it: static (CGO_ENABLED=0) and with
// the lambda.norpc tag.
func Build(ctx context.Context, moduleDir, pkg, out string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("create the directory for %s's bootstrap: %w", pkg, err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "lambda.norpc", "-o", out, pkg)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s for the host: %w\n%s", pkg, err, tail(output))
	}
	return nil
}

// ModuleDir returns the directory of the go.mod that encloses dir.
func ModuleDir(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("find the module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("find the module root: %w", err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find the module root: no go.mod in this directory or any parent")
		}
		dir = parent
	}
}

// tail is the end of a command's output, for an error message.
func tail(out []byte) []byte {
	out = bytes.TrimSpace(out)
	if len(out) > outputTail {
		out = append([]byte("…"), out[len(out)-outputTail:]...)
	}
	return out
}
