package local

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// EnvStatusScreenshot, when set, is where TestStatusPageInChromium saves its
// wide-screen screenshot (make screenshot sets it to docs/status.png);
// otherwise it goes to the test's temporary directory.
const EnvStatusScreenshot = "PINLIST_STATUS_SCREENSHOT"

// chromiumTimeout bounds one headless Chromium run (the machine may be
// loaded; a cold start takes seconds).
const chromiumTimeout = 2 * time.Minute

// findChromium returns the Chromium (or Chrome) binary. Without one the
// test fails in CI (CI=true), where it is required, and is skipped
// elsewhere with how to install it.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is required in CI for the status page's browser test: apt-get install -y chromium (.ci/run installs it)")
	}
	t.Skip("chromium not found: install it to run the status page's browser test (Debian/Ubuntu: sudo apt-get install chromium; macOS: brew install --cask chromium)")
	return ""
}

// runChromium runs headless Chromium with args, with its own profile
// directory, and returns its stdout. Chromium's helper processes are in its
// process group, which is killed (by the group's ID) when it overruns.
func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), chromiumTimeout)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
		"--hide-scrollbars", "--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, lastLines(stderr.String(), 20))
	}
	return stdout.Bytes()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestStatusPageInChromium starts a stack, posts examples/profiles.json,
// waits for the lists, and reads /status in headless Chromium as a person
// would see it: the numbers on the page are those of the status report
// (ReadStatus's JSON, what pinlist status --json prints). It saves a
// wide-screen and a phone-sized screenshot.
func TestStatusPageInChromium(t *testing.T) {
	chromium := findChromium(t)
	s := newStack(t, nil)
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "profiles.json"))
	if err != nil {
		t.Fatal(err)
	}
	s.mustAccept(t, example)
	var report Status
	waitFor(t, "the example's lists, applied and counted", func() bool {
		pr, err := s.Progress(t.Context())
		if err != nil || pr.Received == 0 || pr.Applied != pr.Received || pr.Queued+pr.InFlight > 0 {
			return false
		}
		report = s.ReadStatus(t.Context())
		if report.Queue == nil || report.Token == nil || len(report.Lists) == 0 {
			return false
		}
		for _, l := range report.Lists {
			if l.Members == nil || *l.Members == 0 {
				return false
			}
		}
		return true
	})
	// Compare with the JSON form, as pinlist status --json prints it.
	raw, err := json.Marshal(report)
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		AdAccountID string `json:"adAccountId"`
		Token       struct {
			AccountDaysLeft     float64 `json:"accountDaysLeft"`
			AccessTokenDaysLeft float64 `json:"accessTokenDaysLeft"`
		} `json:"token"`
		Queue struct {
			Depth       int `json:"depth"`
			DeadLetters int `json:"deadLetters"`
		} `json:"queue"`
		Lists []struct {
			ID         string `json:"id"`
			Name       string `json:"name"`
			AudienceID string `json:"audience_id"`
			ListType   string `json:"list_type"`
			Members    int    `json:"members"`
		} `json:"lists"`
	}
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}

	url := s.IngestURL() + PathStatus
	dom := string(runChromium(t, chromium, "--dump-dom", url))
	if !strings.Contains(dom, "Pinterest connection") {
		t.Fatalf("Chromium's DOM of %s is not the status page:\n%s", url, dom)
	}
	for id, wantValue := range map[string]string{
		"ad-account":        want.AdAccountID,
		"account-days-left": fmt.Sprintf("%.1f", want.Token.AccountDaysLeft),
		"access-days-left":  fmt.Sprintf("%.1f", want.Token.AccessTokenDaysLeft),
		"queue-depth":       fmt.Sprint(want.Queue.Depth),
		"dead-letters":      fmt.Sprint(want.Queue.DeadLetters),
	} {
		m := regexp.MustCompile(`id="` + id + `">([^<]*)<`).FindStringSubmatch(dom)
		if m == nil || m[1] != wantValue {
			t.Errorf("the page shows %s = %v, want %q as in the status JSON", id, m, wantValue)
		}
	}
	rows := map[string]listRow{}
	for _, r := range listRows(dom) {
		rows[r.id] = r
	}
	if len(rows) != len(want.Lists) {
		t.Errorf("the page shows %d lists, the status JSON %d", len(rows), len(want.Lists))
	}
	var changed int // adds and removes
	for _, l := range want.Lists {
		r, ok := rows[l.AudienceID+"/"+l.ListType]
		if !ok {
			t.Errorf("the page lacks list %s (%s)", l.ID, l.Name)
			continue
		}
		if r.fields["members"] != fmt.Sprint(l.Members) {
			t.Errorf("list %s (%s): the page shows %s members, the status JSON %d", l.ID, l.Name, r.fields["members"], l.Members)
		}
		if !strings.Contains(l.Name, " "+r.typ) {
			t.Errorf("list %s (%s) is shown as type %q", l.ID, l.Name, r.typ)
		}
		for _, f := range []string{"adds", "removes"} {
			var n int
			if _, err := fmt.Sscan(r.fields[f], &n); err != nil {
				t.Errorf("list %s: %s = %q, not a number", l.ID, f, r.fields[f])
			}
			changed += n
		}
	}
	if pr, err := s.Progress(t.Context()); err != nil || int64(changed) != pr.Applied {
		t.Errorf("the page's adds and removes sum to %d, the stack applied %d changes (%v)", changed, pr.Applied, err)
	}
	assertNoIdentifiers(t, dom, []string{"ada.lovelace@example.com", "ada@example.org", "grace.hopper@example.com", "alan.turing@example.com"}, nil)

	shot := os.Getenv(EnvStatusScreenshot)
	if shot == "" {
		shot = filepath.Join(t.TempDir(), "status.png")
	}
	phone := filepath.Join(t.TempDir(), "status-phone.png")
	for _, sc := range []struct{ path, size string }{{shot, "1280,1600"}, {phone, "390,1400"}} {
		runChromium(t, chromium, "--screenshot="+sc.path, "--window-size="+sc.size, url)
		png, err := os.ReadFile(sc.path)
		if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
			t.Fatalf("no PNG screenshot at %s (%v)", sc.path, err)
		}
		t.Logf("screenshot at %s: %s", sc.size, sc.path)
	}
}
