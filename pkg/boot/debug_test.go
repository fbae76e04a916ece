package boot_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/boot"
	"github.com/streamwatch/streamwatch/pkg/testutil/redistest"
)

// profile GETs url and returns its body, failing the test unless the
// answer is 200 OK.
func profile(t *testing.T, client *http.Client, url string) string {
	t.Helper()
	resp, err := client.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, url)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(body)
}

// TestMainServesProfilesOnDebugAddr runs Main with DEBUG_ADDR set: while
// the service runs, the address serves Go's runtime profiles and nothing
// else; after Main returns, nothing listens there. It changes the
// environment, so it is not parallel.
func TestMainServesProfilesOnDebugAddr(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	t.Setenv(boot.DebugAddrEnv, addr)
	client := &http.Client{Timeout: 5 * time.Second}
	ran := false
	code := boot.Main("svc", &cfg{}, func(*cfg) string { return "error" }, func(ctx context.Context, _ cfg, _ *slog.Logger) error {
		ran = true
		require.Contains(t, profile(t, client, "http://"+addr+"/debug/pprof/heap?debug=1"), "heap profile:")
		require.Contains(t, profile(t, client, "http://"+addr+"/debug/pprof/goroutine?debug=1"), "goroutine profile:")
		require.Contains(t, profile(t, client, "http://"+addr+"/debug/pprof/"), "allocs")
		resp, err := client.Get("http://" + addr + "/metrics")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNotFound, resp.StatusCode, "only the profiles are served there")
		return nil
	})
	require.True(t, ran)
	require.Equal(t, boot.ExitOK, code)
	_, err := net.DialTimeout("tcp", addr, time.Second)
	require.Error(t, err, "the debug listener is closed when the service stops")
}

// TestMainRunsWhenDebugAddrIsTaken: a debug address that cannot be bound
// is logged and the service runs without it.
func TestMainRunsWhenDebugAddrIsTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	t.Setenv(boot.DebugAddrEnv, ln.Addr().String())
	ran := false
	code := boot.Main("svc", &cfg{}, func(*cfg) string { return "error" }, func(context.Context, cfg, *slog.Logger) error {
		ran = true
		return nil
	})
	require.True(t, ran)
	require.Equal(t, boot.ExitOK, code)
}
