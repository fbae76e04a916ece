package bench

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseStatCPUHandlesSpacesInTheCommandName(t *testing.T) {
	t.Parallel()
	// utime 250 and stime 50 ticks (fields 14 and 15).
	stat := []byte("1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 123 0 0")
	cpu, err := parseStatCPU(stat)
	require.NoError(t, err)
	require.InDelta(t, 3.0, cpu, 1e-9)
	_, err = parseStatCPU([]byte("1234 (x) S 1 2"))
	require.ErrorContains(t, err, "fields after the command name")
}

func TestParseStatusRSS(t *testing.T) {
	t.Parallel()
	rss, peak, err := parseStatusRSS([]byte("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n"))
	require.NoError(t, err)
	require.EqualValues(t, 1024<<10, rss)
	require.EqualValues(t, 2048<<10, peak)
	_, _, err = parseStatusRSS([]byte("Name:\tx\nVmRSS:\t1 kB\n"))
	require.ErrorContains(t, err, "missing")
}

func TestReadProcOfThisProcess(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	st, err := ReadProc(os.Getpid())
	require.NoError(t, err)
	require.Positive(t, st.RSSBytes)
	require.GreaterOrEqual(t, st.PeakRSSBytes, st.RSSBytes)
}

func TestParsePerfReport(t *testing.T) {
	t.Parallel()
	self := []byte("# Samples: 1K\n#\n    12.50%  [.] runtime.mallocgc\n     3.00%  [k] do_syscall_64\n\n")
	require.Equal(t, []ProfileEntry{{12.5, "runtime.mallocgc"}, {3, "do_syscall_64"}}, parsePerfReport(self, false, 10))
	children := []byte("    99.00%     0.00%  [.] runtime.goexit.abi0  -  -\n    80.00%     0.00%  [.] main.run  -  -\n    40.00%    12.50%  [.] runtime.mallocgc\n")
	require.Equal(t, []ProfileEntry{{80, "main.run"}}, parsePerfReport(children, true, 1), "goroutine entry frames are left out")
}
