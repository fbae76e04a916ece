package boot_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/boot"
	"github.com/streamwatch/streamwatch/pkg/config"
)

type cfg struct {
	HTTP config.HTTP
}

// TestHealthcheck runs "<binary> healthcheck" against a live /readyz and a
// failing one. It changes os.Args and the environment, so it is not parallel.
func TestHealthcheck(t *testing.T) {
	ready := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" || !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)

	oldArgs := os.Args
	defer func() { os.Args = oldArgs }()
	os.Args = []string{"svc", "healthcheck"}
	run := func() int {
		c := cfg{HTTP: config.HTTP{Addr: ":" + port}} // the preset default, HTTP_ADDR unset
		return boot.Main("svc", &c, func(*cfg) string { return "info" }, nil)
	}
	t.Setenv("HTTP_ADDR", "")
	require.Equal(t, boot.ExitOK, run())
	ready = false
	require.Equal(t, boot.ExitFailed, run())
	t.Setenv("HTTP_ADDR", "127.0.0.1:1")
	require.Equal(t, boot.ExitFailed, run(), "nothing listens there")
}
