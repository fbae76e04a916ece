package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports (sysconf(_SC_CLK_TCK) needs
// cgo, and the kernel fixes USER_HZ at 100 for user space).
const clockTicks = 100

// ProcStat is one reading of a process's resource use.
type ProcStat struct {
	// CPUSeconds is user + system CPU time since the process started.
	CPUSeconds float64 `json:"cpu_s"`
	// RSSBytes is the resident set size now (VmRSS).
	RSSBytes int64 `json:"rss_bytes"`
	// PeakRSSBytes is the largest resident set size since the process
	// started (VmHWM).
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
}

// ReadProc reads /proc/<pid>/stat and /proc/<pid>/status. Errors name the
// file (a process that exited gives a not-exist error).
func ReadProc(pid int) (ProcStat, error) {
	dir := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return ProcStat{}, err
	}
	cpu, err := parseStatCPU(stat)
	if err != nil {
		return ProcStat{}, fmt.Errorf("%s/stat: %w", dir, err)
	}
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return ProcStat{}, err
	}
	rss, peak, err := parseStatusRSS(status)
	if err != nil {
		return ProcStat{}, fmt.Errorf("%s/status: %w", dir, err)
	}
	return ProcStat{CPUSeconds: cpu, RSSBytes: rss, PeakRSSBytes: peak}, nil
}

// parseStatCPU returns utime + stime in seconds from the contents of
// /proc/<pid>/stat (proc(5)): fields 14 and 15, counted after the command
// name, which is in parentheses and may itself contain spaces.
func parseStatCPU(stat []byte) (float64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("no ')' after the command name")
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the command name, want at least 13", len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("utime %q or stime %q is not a number", f[11], f[12])
	}
	return float64(utime+stime) / clockTicks, nil
}

// parseStatusRSS returns VmRSS and VmHWM in bytes from the contents of
// /proc/<pid>/status (given in kB).
func parseStatusRSS(status []byte) (rss, peak int64, err error) {
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("%s: unexpected value %q", name, val)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", name, err)
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			peak = kb << 10
		}
		found++
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("VmRSS or VmHWM missing")
	}
	return rss, peak, nil
}

// LoadAvg returns the 1, 5 and 15-minute load averages from /proc/loadavg.
func LoadAvg() ([3]float64, error) {
	var la [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return la, err
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return la, fmt.Errorf("/proc/loadavg: %q", b)
	}
	for i := range la {
		if la[i], err = strconv.ParseFloat(f[i], 64); err != nil {
			return la, fmt.Errorf("/proc/loadavg: %w", err)
		}
	}
	return la, nil
}
