package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// pinlistBin is the pinlist binary TestMain built for this test binary.
var pinlistBin string

// TestMain builds cmd/pinlist once into a temporary directory, the way this
// test binary was built (with -race under go test -race: the build reuses
// the packages the test compiled, and the processes run under the detector
// too), and removes it at the end.
func TestMain(m *testing.M) {
	code, err := runTests(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		code = 1
	}
	os.Exit(code)
}

func runTests(m *testing.M) (int, error) {
	gotool, err := exec.LookPath("go")
	if err != nil {
		return 0, fmt.Errorf("the go tool is not on PATH (install Go from https://go.dev/dl/): %w", err)
	}
	dir, err := os.MkdirTemp("", "pinlist-chaos-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	pinlistBin = filepath.Join(dir, "pinlist")
	args := append(append([]string{"build"}, buildFlags...), "-o", pinlistBin, "github.com/pinlist/pinlist/cmd/pinlist")
	if out, err := exec.Command(gotool, args...).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("go build the pinlist binary: %w\n%s", err, out)
	}
	return m.Run(), nil
}
