package loadgen

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// PeakRSS is a process's peak resident set size in bytes: VmHWM in
// /proc/PID/status (Linux only).
func PeakRSS(pid int) (int64, error) {
	return procStatusKB(pid, "VmHWM")
}

// procStatusKB reads a "Name:  123 kB" field of /proc/PID/status, in bytes.
func procStatusKB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read the memory of process %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		num, unit, _ := strings.Cut(strings.TrimSpace(rest), " ")
		kb, err := strconv.ParseInt(num, 10, 64)
		if err != nil || unit != "kB" {
			return 0, fmt.Errorf("read the memory of process %d: %s is %q", pid, field, rest)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read the memory of process %d: %w", pid, err)
	}
	return 0, fmt.Errorf("read the memory of process %d: no %s in /proc/%d/status", pid, field, pid)
}
