package httpserver_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/config"
	"github.com/streamwatch/streamwatch/pkg/httpserver"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// serve runs Serve in the background until the test ends and waits until
// cfg.Addr answers.
func serve(t *testing.T, e *echo.Echo, cfg config.HTTP) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- httpserver.Serve(ctx, e, cfg) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", cfg.Addr)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}, 5*time.Second, 10*time.Millisecond)
}

func TestServeMovesOpsPathsToHealthAddr(t *testing.T) {
	t.Parallel()
	e := httpserver.New(nil, nil)
	e.GET("/api", func(c echo.Context) error { return c.String(http.StatusOK, "api") })
	cfg := config.HTTP{Addr: freeAddr(t), HealthAddr: freeAddr(t), ShutdownTimeout: time.Second}
	serve(t, e, cfg)

	code, body := get(t, "http://"+cfg.Addr+"/api")
	require.Equal(t, 200, code)
	require.Equal(t, "api", body)
	code, body = get(t, "http://"+cfg.Addr+"/healthz")
	require.Equal(t, 404, code, "health moved away from the main listener")
	require.Contains(t, body, "not_found")

	code, _ = get(t, "http://"+cfg.HealthAddr+"/healthz")
	require.Equal(t, 200, code)
	code, _ = get(t, "http://"+cfg.HealthAddr+"/readyz")
	require.Equal(t, 200, code)
	code, _ = get(t, "http://"+cfg.HealthAddr+"/api")
	require.Equal(t, 404, code, "the health listener serves no API")
}

func TestServeWithoutHealthAddrServesEverything(t *testing.T) {
	t.Parallel()
	e := httpserver.New(nil, nil)
	cfg := config.HTTP{Addr: freeAddr(t)}
	serve(t, e, cfg)
	code, _ := get(t, "http://"+cfg.Addr+"/healthz")
	require.Equal(t, 200, code)
}

func TestServeReportsAddressInUse(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	err = httpserver.Serve(context.Background(), httpserver.New(nil, nil), config.HTTP{Addr: freeAddr(t), HealthAddr: ln.Addr().String()})
	require.ErrorContains(t, err, "listen "+ln.Addr().String())
}

// A client that sends half a request and stalls is disconnected once the
// read timeout has passed (slowloris), instead of holding a connection.
func TestServeDropsStalledClients(t *testing.T) {
	t.Parallel()
	e := httpserver.New(nil, nil)
	e.POST("/in", func(c echo.Context) error {
		_, err := io.ReadAll(c.Request().Body)
		return err
	})
	cfg := config.HTTP{Addr: freeAddr(t), ReadTimeout: 200 * time.Millisecond}
	serve(t, e, cfg)
	conn, err := net.Dial("tcp", cfg.Addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte("POST /in HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npartial"))
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	// The server gives up on the body: it answers an error or closes; either
	// way the read ends well before our own 10 s deadline.
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		require.GreaterOrEqual(t, resp.StatusCode, 400)
		_ = resp.Body.Close()
	} else {
		var ne net.Error
		require.False(t, errorsAs(err, &ne) && ne.Timeout(), "the server should have dropped the stalled request, got %v", err)
	}
}

func errorsAs(err error, target *net.Error) bool {
	ne, ok := err.(net.Error) //nolint:errorlint // a direct net.Error from the conn
	if ok {
		*target = ne
	}
	return ok
}

func TestCORSAllowsOnlyConfiguredOrigins(t *testing.T) {
	t.Parallel()
	e := httpserver.New(nil, nil)
	e.Use(httpserver.CORS([]string{"https://ops.example"}))
	e.GET("/api", func(c echo.Context) error { return c.String(http.StatusOK, "api") })
	e.POST("/ingest", func(c echo.Context) error { return c.NoContent(http.StatusAccepted) })
	srv := httptest.NewServer(e)
	defer srv.Close()
	preflight := func(origin string) *http.Response {
		req, err := http.NewRequest(http.MethodOptions, srv.URL+"/ingest", nil)
		require.NoError(t, err)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp
	}
	resp := preflight("https://ops.example")
	require.Less(t, resp.StatusCode, 300, "preflight of a POST-only route")
	require.Equal(t, "https://ops.example", resp.Header.Get("Access-Control-Allow-Origin"))
	require.Contains(t, strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), "authorization")
	resp = preflight("https://evil.example")
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))

	// No origins configured: no CORS headers at all.
	e2 := httpserver.New(nil, nil)
	e2.Use(httpserver.CORS(nil))
	e2.GET("/api", func(c echo.Context) error { return c.String(http.StatusOK, "api") })
	srv2 := httptest.NewServer(e2)
	defer srv2.Close()
	req, err := http.NewRequest(http.MethodGet, srv2.URL+"/api", nil)
	require.NoError(t, err)
	req.Header.Set("Origin", "https://ops.example")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
}

// A response that takes longer than the write timeout is cut off, except
// an event stream, which stays open.
func TestServeWriteTimeoutSparesEventStreams(t *testing.T) {
	t.Parallel()
	e := httpserver.New(nil, nil)
	e.GET("/slow", func(c echo.Context) error {
		w := c.Response()
		w.WriteHeader(http.StatusOK)
		for range 6 {
			if _, err := w.Write([]byte("tick\n")); err != nil {
				return nil
			}
			w.Flush()
			time.Sleep(100 * time.Millisecond)
		}
		return nil
	})
	cfg := config.HTTP{Addr: freeAddr(t), WriteTimeout: 250 * time.Millisecond}
	serve(t, e, cfg)
	read := func(accept string) string {
		req, err := http.NewRequest(http.MethodGet, "http://"+cfg.Addr+"/slow", nil)
		require.NoError(t, err)
		req.Header.Set("Accept", accept)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body) // a cut-off stream ends with an error
		return string(b)
	}
	require.Less(t, strings.Count(read("application/json"), "tick"), 6, "the write deadline cut the slow response")
	require.Equal(t, 6, strings.Count(read("text/event-stream"), "tick"), "an event stream has no write deadline")
}

// A handler that needs longer than the write timeout extends its own
// deadline, through every wrapper (here echo and a context-deriving
// middleware, as otelhttp is).
func TestExtendWriteDeadline(t *testing.T) {
	t.Parallel()
	e := httpserver.New(nil, nil)
	e.GET("/long", func(c echo.Context) error {
		if !httpserver.ExtendWriteDeadline(c.Request().Context(), 5*time.Second) {
			return c.String(http.StatusInternalServerError, "no controller")
		}
		time.Sleep(400 * time.Millisecond)
		return c.String(http.StatusOK, "done")
	})
	wrapped := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		e.ServeHTTP(w, r.WithContext(ctx))
	})
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- httpserver.Serve(ctx, wrapped, config.HTTP{Addr: addr, WriteTimeout: 100 * time.Millisecond})
	}()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}, 5*time.Second, 10*time.Millisecond)
	code, body := get(t, "http://"+addr+"/long")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "done", body)
	require.False(t, httpserver.ExtendWriteDeadline(context.Background(), time.Second))
}
