package boot

import (
	"io"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/stretchr/testify/require"
)

// TestSetMemoryLimit checks that a container's memory limit becomes 90 %
// of it as the runtime's soft limit, unless GOMEMLIMIT is set or
// AUTOMEMLIMIT is off, and that no limit leaves the runtime unlimited. It
// changes the process's memory limit and environment, so it is not
// parallel; it restores both.
func TestSetMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	for _, name := range []string{"GOMEMLIMIT", "AUTOMEMLIMIT"} {
		t.Setenv(name, "") // restored after the test
		require.NoError(t, os.Unsetenv(name))
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	const gib = 1 << 30

	setMemoryLimit(logger, memlimit.Limit(10*gib))
	require.Equal(t, int64(9*gib), debug.SetMemoryLimit(-1), "90 % of the container's limit")

	setMemoryLimit(logger, func() (uint64, error) { return 0, memlimit.ErrNoLimit })
	require.Equal(t, int64(math.MaxInt64), debug.SetMemoryLimit(-1), "no container limit: unlimited")

	debug.SetMemoryLimit(123 << 20)
	t.Setenv("GOMEMLIMIT", "123MiB")
	setMemoryLimit(logger, memlimit.Limit(gib))
	require.Equal(t, int64(123<<20), debug.SetMemoryLimit(-1), "GOMEMLIMIT wins")
	require.NoError(t, os.Unsetenv("GOMEMLIMIT"))

	t.Setenv("AUTOMEMLIMIT", "off")
	setMemoryLimit(logger, memlimit.Limit(gib))
	require.Equal(t, int64(123<<20), debug.SetMemoryLimit(-1), "AUTOMEMLIMIT=off leaves it")
}
