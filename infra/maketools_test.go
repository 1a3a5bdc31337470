package infra

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The fake python3 and pip below stand in for the real ones so that the
// Makefile's install path (check-tools) runs without PyPI. Every call appends
// its arguments to $FAKE_LOG. The mode in $FAKE_MODE says how far it gets:
// "venv-fails" (python3 -m venv fails, as without python3-venv), "pip-fails"
// (pip cannot reach an index) or "works" (pip "installs" moto_server and
// cfn-lint as scripts that log their own arguments).
const fakePython = `#!/bin/bash
echo "python3 $*" >>"$FAKE_LOG"
if [ "$1" = -c ]; then
	# The PATH's python3 has no aws-sam-translator; the venv's has it once pip ran.
	[ -f "$(dirname "$0")/.installed" ]; exit
fi
if [ "$1 $2" != "-m venv" ]; then echo "fake python3: unexpected call: $*" >&2; exit 2; fi
if [ "$FAKE_MODE" = venv-fails ]; then
	echo "The virtual environment was not created successfully because ensurepip is not available." >&2; exit 1
fi
mkdir -p "$3/bin" && echo "home = /nowhere" >"$3/pyvenv.cfg" &&
	cp "$0" "$3/bin/python3" && cp "$(dirname "$0")/fake-pip" "$3/bin/pip"
`

const fakePip = `#!/bin/bash
echo "pip $*" >>"$FAKE_LOG"
if [ "$FAKE_MODE" = pip-fails ]; then
	echo "ERROR: Could not find a version that satisfies the requirement moto[server] (from versions: none)" >&2; exit 1
fi
bin=$(dirname "$0")
for t in moto_server cfn-lint; do
	printf '#!/bin/bash\necho "%s $*" >>"$FAKE_LOG"\n' "$t" >"$bin/$t" && chmod +x "$bin/$t"
done
touch "$bin/.installed"
`

// TestMakeInstallsPythonTools runs the Makefile's check-tools (and cfn-lint,
// whose recipe uses the tools the way test's does) with a PATH that holds only
// make, bash, a few coreutils and, per case, fake python3/moto_server/cfn-lint,
// and HOME in a temporary directory. It proves that missing tools are
// installed into the cache's virtual environment with python3 -m venv and pip,
// that the recipes then find them there, that a second run installs nothing,
// that tools already on PATH are used as they are, and that each failure
// fails loudly naming the tools and what to install.
func TestMakeInstallsPythonTools(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is not on PATH: %v", err)
	}
	// The commands the recipes and the fakes run, linked into one directory
	// so that PATH can hold them without whatever else shares their folders
	// (moto_server and cfn-lint, on this machine).
	sys := t.TempDir()
	for _, name := range []string{"make", "bash", "sh", "mkdir", "dirname", "cp", "chmod", "touch", "rm"} {
		p, err := exec.LookPath(name)
		if err != nil {
			t.Fatalf("%s is not on PATH: %v", name, err)
		}
		if err := os.Symlink(p, filepath.Join(sys, name)); err != nil {
			t.Fatalf("link %s: %v", name, err)
		}
	}

	tests := []struct {
		name string
		// python: put the fake python3 on PATH; mode: its FAKE_MODE.
		python bool
		mode   string
		// onPath: fake moto_server and cfn-lint already on PATH, and a
		// python3 that imports aws-sam-translator.
		onPath bool
		// xdg: set XDG_CACHE_HOME (else the cache is $HOME/.cache).
		xdg    bool
		target string
		// wantOK: make succeeds; wantStderr: substrings of its stderr;
		// wantLog: lines the fakes logged, in order ("VENV" stands for the
		// expected virtual environment's path).
		wantOK     bool
		wantStderr []string
		wantLog    []string
		// wantVenv: the virtual environment exists afterwards.
		wantVenv bool
	}{
		{
			name:       "no python3",
			target:     "check-tools",
			wantStderr: []string{"missing: moto_server cfn-lint aws-sam-translator", "python3, needed to install them into VENV, is not on PATH", "apt-get install python3 python3-venv", "pip install 'moto[server]' cfn-lint"},
		},
		{
			name: "venv module missing", python: true, mode: "venv-fails",
			target:     "check-tools",
			wantStderr: []string{"installing 'moto[server]' cfn-lint into VENV", "missing: moto_server cfn-lint aws-sam-translator", "python3 -m venv VENV failed", "apt-get install python3-venv"},
			wantLog:    []string{"python3 -m venv VENV"},
		},
		{
			name: "no PyPI", python: true, mode: "pip-fails",
			target:     "check-tools",
			wantStderr: []string{"Could not find a version", "missing: moto_server cfn-lint aws-sam-translator", "pip install 'moto[server]' cfn-lint into VENV failed (it needs PyPI"},
			wantLog:    []string{"python3 -m venv VENV", "pip install --disable-pip-version-check --quiet moto[server] cfn-lint"},
			wantVenv:   true,
		},
		{
			name: "installs into HOME's cache and the recipe uses it", python: true, mode: "works",
			target:     "cfn-lint",
			wantOK:     true,
			wantStderr: []string{"installing 'moto[server]' cfn-lint into VENV", "installed moto_server and cfn-lint into VENV/bin"},
			wantLog:    []string{"python3 -m venv VENV", "pip install --disable-pip-version-check --quiet moto[server] cfn-lint", "cfn-lint template.yaml"},
			wantVenv:   true,
		},
		{
			name: "installs into XDG_CACHE_HOME", python: true, mode: "works", xdg: true,
			target:     "check-tools",
			wantOK:     true,
			wantStderr: []string{"installed moto_server and cfn-lint into VENV/bin"},
			wantLog:    []string{"python3 -m venv VENV", "pip install --disable-pip-version-check --quiet moto[server] cfn-lint"},
			wantVenv:   true,
		},
		{
			name: "tools already on PATH", python: true, onPath: true,
			target:  "cfn-lint",
			wantOK:  true,
			wantLog: []string{"cfn-lint template.yaml"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			home := t.TempDir()
			fake := t.TempDir()
			logPath := filepath.Join(t.TempDir(), "calls.log")
			venv := filepath.Join(home, ".cache", "pinlist", "venv")
			env := []string{
				"PATH=" + fake + string(os.PathListSeparator) + sys,
				"HOME=" + home,
				"FAKE_LOG=" + logPath,
				"FAKE_MODE=" + tt.mode,
				"LC_ALL=C",
			}
			if tt.xdg {
				xdg := t.TempDir()
				env = append(env, "XDG_CACHE_HOME="+xdg)
				venv = filepath.Join(xdg, "pinlist", "venv")
			}
			if tt.python {
				writeExec(t, filepath.Join(fake, "python3"), fakePython)
				writeExec(t, filepath.Join(fake, "fake-pip"), fakePip)
			}
			if tt.onPath {
				if err := os.WriteFile(filepath.Join(fake, ".installed"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
				for _, name := range []string{"moto_server", "cfn-lint"} {
					writeExec(t, filepath.Join(fake, name), "#!/bin/bash\necho \""+name+" $*\" >>\"$FAKE_LOG\"\n")
				}
			}

			runs := 1
			if tt.wantOK {
				runs = 2 // the second run must find everything and install nothing
			}
			for run := 1; run <= runs; run++ {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				cmd := exec.CommandContext(ctx, filepath.Join(sys, "make"), "-s", "--no-print-directory", "-C", root, tt.target, "GO="+goBin)
				cmd.Env = env // no MAKEFLAGS or MAKELEVEL from an enclosing make
				var stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stderr, &stderr
				err := cmd.Run()
				cancel()
				out := strings.ReplaceAll(stderr.String(), venv, "VENV")
				if (err == nil) != tt.wantOK {
					t.Fatalf("run %d: make %s: err = %v, want success %v; output:\n%s", run, tt.target, err, tt.wantOK, out)
				}
				if run == 1 {
					for _, want := range tt.wantStderr {
						if !strings.Contains(out, want) {
							t.Errorf("make %s output lacks %q; output:\n%s", tt.target, want, out)
						}
					}
				} else if strings.Contains(out, "install") {
					t.Errorf("second make %s talked about installing; output:\n%s", tt.target, out)
				}
			}

			raw, err := os.ReadFile(logPath)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(strings.ReplaceAll(string(raw), venv, "VENV")), "\n") {
				if line != "" && !strings.HasPrefix(line, "python3 -c ") { // import checks: how often is not the contract
					got = append(got, line)
				}
			}
			want := tt.wantLog
			if tt.wantOK && tt.target == "cfn-lint" {
				want = append(want, "cfn-lint template.yaml") // the second run lints again, installing nothing
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("the fakes were asked:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if _, err := os.Stat(filepath.Join(venv, "pyvenv.cfg")); (err == nil) != tt.wantVenv {
				t.Errorf("virtual environment %s: stat err = %v, want it there: %v", venv, err, tt.wantVenv)
			}
		})
	}
}

func writeExec(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}
