package loadgen

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Goals are the load benchmark's targets (issue 8) on the 2-core build
// machine.
type Goals struct {
	Throughput   float64       // identity changes/s sustained end to end, at least
	CallsFactor  float64       // Pinterest write calls / lower bound, at most
	FreshnessP50 time.Duration // at the fixed offered load, at most
	PeakRSS      int64         // bytes, at most
}

// DefaultGoals are issue 8's goals.
var DefaultGoals = Goals{Throughput: 20_000, CallsFactor: 1.05, FreshnessP50: 2 * time.Second, PeakRSS: 256 << 20}

// GoalCheck is one goal against its measurement.
type GoalCheck struct {
	Name     string
	Goal     string
	Measured string
	Met      bool
}

// Check compares a result with the goals.
func (g Goals) Check(r *LoadResult) []GoalCheck {
	factor := ratio(r.WriteCalls, r.LowerBound)
	out := []GoalCheck{
		{"sustained identity changes/s", fmt.Sprintf("≥ %s", thousands(g.Throughput)), thousands(r.Saturation.Throughput), r.Saturation.Throughput >= g.Throughput},
		{"Pinterest write calls / lower bound", fmt.Sprintf("≤ %.2f", g.CallsFactor), fmt.Sprintf("%.2f (%d / %d)", factor, r.WriteCalls, r.LowerBound), factor <= g.CallsFactor},
	}
	if r.Fixed.Bodies > 0 {
		out = append(out, GoalCheck{fmt.Sprintf("freshness p50 at %s changes/s", thousands(r.Fixed.OfferedRate)), fmt.Sprintf("≤ %s", g.FreshnessP50),
			r.Fixed.Freshness.P50.Round(time.Millisecond).String(), r.Fixed.Freshness.N > 0 && r.Fixed.Freshness.P50 <= g.FreshnessP50})
	}
	if r.PeakRSS > 0 {
		out = append(out, GoalCheck{"peak RSS of pinlist serve", fmt.Sprintf("≤ %d MiB", g.PeakRSS>>20), fmt.Sprintf("%.0f MiB", float64(r.PeakRSS)/(1<<20)), r.PeakRSS <= g.PeakRSS})
	}
	return out
}

// Machine describes where a benchmark ran.
type Machine struct {
	Cores     int
	MemoryGiB float64
	CPU       string
	GoVersion string
	OS        string
}

// ThisMachine reads the machine's description (Linux /proc; elsewhere the
// CPU and memory are left unknown).
func ThisMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, CPU: "unknown CPU"}
	if v, ok := procField("/proc/cpuinfo", "model name"); ok {
		m.CPU = v
	}
	if v, ok := procField("/proc/meminfo", "MemTotal"); ok {
		var kb int64
		if _, err := fmt.Sscanf(v, "%d kB", &kb); err == nil {
			m.MemoryGiB = float64(kb) / (1 << 20)
		}
	}
	return m
}

func (m Machine) String() string {
	mem := "unknown memory"
	if m.MemoryGiB > 0 {
		mem = fmt.Sprintf("%.0f GiB", m.MemoryGiB)
	}
	return fmt.Sprintf("%d cores (%s), %s, %s, %s", m.Cores, m.CPU, mem, m.GoVersion, m.OS)
}

// procField is the value of the first "name : value" line of a /proc file.
func procField(path, name string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// WriteText prints a result for a person at a terminal: an AEP result
// against DefaultBudgetGoals, a bulk one against goals.
func WriteText(w io.Writer, r *LoadResult, goals Goals) {
	if r.Shape == ShapeAEP {
		WriteBudgetText(w, r, DefaultBudgetGoals)
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Load benchmark results")
	for _, p := range []PhaseResult{r.Fixed, r.Saturation} {
		if p.Bodies == 0 {
			continue
		}
		fmt.Fprintf(w, "  %s: %d bodies, %d profiles, %d identity changes\n", p.Name, p.Bodies, p.Profiles, p.Changes)
		if p.OfferedRate > 0 {
			fmt.Fprintf(w, "    offered %s changes/s; posted at %s/s\n", thousands(p.OfferedRate), thousands(p.PostedRate))
		} else {
			fmt.Fprintf(w, "    posted at %s changes/s over %s\n", thousands(p.PostedRate), p.Posting.Round(time.Millisecond))
		}
		fmt.Fprintf(w, "    end to end: %s changes/s (all in the simulator after %s)\n", thousands(p.Throughput), p.Converged.Round(time.Millisecond))
		fmt.Fprintf(w, "    ingest latency: p50 %s, p99 %s (%d requests, %d retried)\n", ms(p.Ingest.P50), ms(p.Ingest.P99), p.Ingest.N, p.Retries)
		fmt.Fprintf(w, "    freshness: p50 %s, p99 %s (%d markers)\n", ms(p.Freshness.P50), ms(p.Freshness.P99), p.Freshness.N)
		fmt.Fprintf(w, "    Pinterest list writes: %d for a lower bound of %d (%.2f×); %d queue messages (%.1f changes and %.2f list writes each)\n",
			p.WriteCalls, p.LowerBound, ratio(p.WriteCalls, p.LowerBound), p.Messages, ratio(p.Changes, p.Messages), ratio(p.WriteCalls, p.Messages))
	}
	fmt.Fprintf(w, "  Pinterest calls: %d customer list writes (create + update) for a lower bound of %d at %d records per call; all calls: %s\n",
		r.WriteCalls, r.LowerBound, r.MaxRecords, callList(r.Calls))
	fmt.Fprintf(w, "  lists: %d, distinct identifiers: %d\n", r.Lists, r.Identifiers)
	if r.PeakRSS > 0 {
		fmt.Fprintf(w, "  peak RSS of pinlist serve: %.0f MiB\n", float64(r.PeakRSS)/(1<<20))
	}
	fmt.Fprintln(w, "Goals:")
	for _, c := range goals.Check(r) {
		verdict := "met"
		if !c.Met {
			verdict = "MISSED"
		}
		fmt.Fprintf(w, "  %-40s goal %-10s measured %-22s %s\n", c.Name, c.Goal, c.Measured, verdict)
	}
}

// Markdown is the benchmark's "## Load" section for docs/BENCHMARKS.md.
// notes, when not empty, is appended as written (analysis of missed goals).
// An AEP result is written against DefaultBudgetGoals.
func Markdown(title string, r *LoadResult, goals Goals, m Machine, command string, when time.Time, notes string) string {
	if r.Shape == ShapeAEP {
		return BudgetMarkdown(title, r, DefaultBudgetGoals, m, command, when, notes)
	}
	var b strings.Builder
	b.WriteString("## " + title + "\n\n")
	b.WriteString("`pinlist load` (`internal/loadgen`) posts generated AEP bodies to a `pinlist serve` that uploads to a\n")
	b.WriteString("separate `pinlist sim`, three processes on one machine; `make bench-load` builds the binary,\n")
	b.WriteString("starts the two servers on loopback ports, runs it and stops them. The traffic: emails (some\n")
	b.WriteString("upper-case or padded), GAIDs, IDFAs, a few other namespaces and opt-outs, 20 audiences, 10 % of the\n")
	b.WriteString("memberships exits of earlier joins. First a fixed offered load, then saturation; each phase ends\n")
	b.WriteString("when the simulator holds exactly the membership an independent oracle computed from the bodies.\n\n")
	b.WriteString("```sh\n" + command + "\n```\n\n")
	fmt.Fprintf(&b, "Machine: %s; %s.\n\n", m, when.UTC().Format("2006-01-02"))
	b.WriteString("| goal | target | measured | |\n|---|---|---|---|\n")
	for _, c := range goals.Check(r) {
		verdict := "met"
		if !c.Met {
			verdict = "**missed**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", c.Name, c.Goal, c.Measured, verdict)
	}
	b.WriteString("\n| phase | bodies | profiles | changes | queue messages | posted/s | end-to-end/s | ingest p50 / p99 | freshness p50 / p99 (n) | list writes / lower bound |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range []PhaseResult{r.Fixed, r.Saturation} {
		if p.Bodies == 0 {
			continue
		}
		name := p.Name
		if p.OfferedRate > 0 {
			name += fmt.Sprintf(" (%s/s offered)", thousands(p.OfferedRate))
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %s | %s | %s / %s | %s / %s (%d) | %d / %d = %.2f× |\n", name, p.Bodies, p.Profiles, p.Changes, p.Messages,
			thousands(p.PostedRate), thousands(p.Throughput), ms(p.Ingest.P50), ms(p.Ingest.P99),
			ms(p.Freshness.P50), ms(p.Freshness.P99), p.Freshness.N, p.WriteCalls, p.LowerBound, ratio(p.WriteCalls, p.LowerBound))
	}
	fmt.Fprintf(&b, "\nPinterest calls: %d customer list writes (create + update) against a lower bound of %d\n", r.WriteCalls, r.LowerBound)
	fmt.Fprintf(&b, "(for each of the %d lists and each operation, ceil(records / %d)); all calls: %s.\n", r.Lists, r.MaxRecords, callList(r.Calls))
	if r.PeakRSS > 0 {
		fmt.Fprintf(&b, "Peak RSS of `pinlist serve` (VmHWM): %.0f MiB.\n", float64(r.PeakRSS)/(1<<20))
	}
	b.WriteString("Freshness is from a marker's POST (a one-profile body beside the load) until the simulator's\n")
	b.WriteString("inspection route lists it, read every tenth of the marker's age (10–250 ms); throughput counts\n")
	b.WriteString("identity changes (one identifier joining or leaving one audience's list) from the first POST\n")
	b.WriteString("until the simulator holds them all.\n")
	if r.WriteCalls > int(goals.CallsFactor*float64(r.LowerBound)) {
		b.WriteString("\n" + callsExplanation(r) + "\n")
	}
	if notes = strings.TrimSpace(notes); notes != "" {
		b.WriteString("\n" + notes + "\n")
	}
	return b.String()
}

// UpdateSection replaces the "## <title>" section of the Markdown file at
// path (up to the next "## " heading) with section, or appends it when the
// file has none. section starts with its own heading. A "### Notes"
// subsection of the old section, written by hand, is kept at the end of the
// new one.
func UpdateSection(path, title, section string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("update %s: %w", path, err)
	}
	if err := os.WriteFile(path, []byte(ReplaceSection(string(old), title, section)), 0o644); err != nil {
		return fmt.Errorf("update %s: %w", path, err)
	}
	return nil
}

// notesHeading starts the hand-written part of a section that
// ReplaceSection keeps.
const notesHeading = "### Notes"

// ReplaceSection is UpdateSection on a document in memory.
func ReplaceSection(doc, title, section string) string {
	section = strings.TrimRight(section, "\n") + "\n"
	lines := strings.SplitAfter(doc, "\n")
	heading := "## " + title
	start := slices.IndexFunc(lines, func(l string) bool { return strings.TrimRight(l, "\r\n") == heading })
	if start < 0 {
		return strings.TrimRight(doc, "\n") + "\n\n" + section
	}
	end := len(lines)
	inFence := false
	notes := -1
	for i := start + 1; i < len(lines); i++ {
		if strings.HasPrefix(lines[i], "```") {
			inFence = !inFence
		}
		if inFence {
			continue
		}
		if strings.HasPrefix(lines[i], "## ") {
			end = i
			break
		}
		if strings.TrimRight(lines[i], "\r\n") == notesHeading && notes < 0 {
			notes = i
		}
	}
	if notes >= 0 {
		section += "\n" + strings.TrimRight(strings.Join(lines[notes:end], ""), "\n") + "\n"
	}
	out := strings.Join(lines[:start], "") + section
	if end < len(lines) {
		out += "\n" + strings.Join(lines[end:], "")
	}
	return out
}

func callList(calls map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(calls)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, calls[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func ms(d time.Duration) string {
	switch {
	case d == 0:
		return "–"
	case d < 10*time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

// callsExplanation says, from the run's own numbers, why the connector made
// more list writes than the lower bound.
func callsExplanation(r *LoadResult) string {
	var b strings.Builder
	b.WriteString("Why more list writes than the lower bound: the ledger sends changes in flush rounds. A round runs\n")
	b.WriteString("as soon as a batch has been recorded, and it makes a call for every list and operation with\n")
	b.WriteString("changes pending, however few (up to the records a call takes). While changes trickle in, each\n")
	b.WriteString("call carries what arrived for its list since the round before, so list writes follow the rounds,\n")
	b.WriteString("not the records:")
	for _, p := range []PhaseResult{r.Fixed, r.Saturation} {
		if p.WriteCalls == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%s: %d list writes in %s carried %.1f changes each.", p.Name, p.WriteCalls,
			p.Converged.Round(100*time.Millisecond), ratio(p.Changes, p.WriteCalls))
	}
	b.WriteString("\nThe lower bound counts each list's records once over the whole run, as if every change were held\n")
	b.WriteString("back until the end; a connector that must deliver a change within seconds cannot reach it while\n")
	b.WriteString("changes trickle in.")
	return b.String()
}

func ratio(a, b int) float64 { return float64(a) / float64(max(b, 1)) }

// thousands formats x rounded, with thousands separators.
func thousands(x float64) string {
	s := fmt.Sprintf("%.0f", x)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}
