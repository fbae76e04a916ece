package ports_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/auth"
	"github.com/streamwatch/streamwatch/pkg/httpserver"
	"github.com/streamwatch/streamwatch/services/query/internal/app"
	"github.com/streamwatch/streamwatch/services/query/internal/ports"
)

// noAuth is the guard of tests that are not about access: every request
// has every scope.
func noAuth() *auth.Guard {
	g, err := auth.NewGuard(auth.Config{Mode: auth.ModeOff}, nil)
	if err != nil {
		panic(err)
	}
	return g
}

type keys struct{ read, admin, ingest string }

// authServer serves the API with real keys on a loopback server. The
// application is empty: requests that pass the guard fail validation (400)
// or find no storage (503), which is enough to tell admitted from refused.
func authServer(t *testing.T) (*httptest.Server, *echo.Echo, keys) {
	t.Helper()
	var k keys
	for _, p := range []*string{&k.read, &k.admin, &k.ingest} {
		s, err := auth.Generate()
		require.NoError(t, err)
		*p = s
	}
	g, err := auth.NewGuard(auth.Config{Mode: auth.ModeKeys, RateLimit: 1000, RateBurst: 1000, Keys: strings.Join([]string{
		auth.Line("viewer", k.read, "", auth.ScopeRead),
		auth.Line("ops", k.admin, "", auth.ScopeRead, auth.ScopeAdmin),
		auth.Line("web", k.ingest, "", auth.ScopeIngest),
	}, ";")}, nil)
	require.NoError(t, err)
	e := httpserver.New(slog.New(slog.DiscardHandler), nil)
	ports.NewHTTPServer(app.Application{}, ports.StreamConfig{}, g).Register(e)
	e.GET("/", func(c echo.Context) error { return c.String(http.StatusOK, "dashboard") })
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv, e, k
}

func call(t *testing.T, srv *httptest.Server, method, path string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader("{}"))
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func bearer(key string) http.Header { return http.Header{"Authorization": {"Bearer " + key}} }

// Every API route refuses a request without a key, so a route added later
// cannot be left open by mistake.
func TestEveryAPIRouteNeedsAKey(t *testing.T) {
	t.Parallel()
	srv, e, _ := authServer(t)
	n := 0
	for _, r := range e.Routes() {
		if !strings.HasPrefix(r.Path, "/api/v1/") {
			continue
		}
		path := strings.NewReplacer(":id", "x", ":fingerprint", "ab").Replace(r.Path)
		resp, body := call(t, srv, r.Method, path, nil)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s %s: %s", r.Method, r.Path, body)
		n++
	}
	require.GreaterOrEqual(t, n, 20)
	for _, open := range []string{"/api/openapi.json", "/healthz"} {
		resp, body := call(t, srv, http.MethodGet, open, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", open, body)
	}
}

func TestReadAndAdminScopes(t *testing.T) {
	t.Parallel()
	srv, _, k := authServer(t)
	admitted := func(code int) bool {
		return code != http.StatusUnauthorized && code != http.StatusForbidden
	}
	for _, tc := range []struct {
		method, path string
		header       http.Header
		admitted     bool
	}{
		{"GET", "/api/v1/series", bearer(k.read), true},
		{"GET", "/api/v1/alerts/recent", http.Header{"X-Api-Key": {k.admin}}, true},
		{"GET", "/api/v1/rules", bearer(k.read), true},
		{"GET", "/api/v1/series", bearer(k.ingest), false},
		{"POST", "/api/v1/rules", bearer(k.read), false},
		{"POST", "/api/v1/rules", bearer(k.admin), true},
		{"PUT", "/api/v1/rules/x", bearer(k.read), false},
		{"DELETE", "/api/v1/rules/x", bearer(k.read), false},
		{"POST", "/api/v1/silences", bearer(k.read), false},
		{"DELETE", "/api/v1/silences/x", bearer(k.read), false},
		{"POST", "/api/v1/alerts/ab/ack", bearer(k.read), false},
		{"POST", "/api/v1/batch/runs", bearer(k.read), false},
		{"POST", "/api/v1/batch/runs", bearer(k.admin), true},
		// The dashboard cookie authorizes reads, never changes.
		{"GET", "/api/v1/series", http.Header{"Cookie": {auth.CookieName + "=" + k.read}}, true},
		{"POST", "/api/v1/rules", http.Header{"Cookie": {auth.CookieName + "=" + k.admin}}, false},
	} {
		resp, body := call(t, srv, tc.method, tc.path, tc.header)
		require.Equal(t, tc.admitted, admitted(resp.StatusCode), "%s %s: %d %s", tc.method, tc.path, resp.StatusCode, body)
		for _, secret := range []string{k.read, k.admin, k.ingest} {
			require.NotContains(t, body, secret)
		}
	}
}

func TestDashboardLoginSetsTheReadCookie(t *testing.T) {
	t.Parallel()
	srv, _, k := authServer(t)
	resp, _ := call(t, srv, "GET", "/?range=latest&key="+k.read, nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/?range=latest", resp.Header.Get("Location"))
	cookies := resp.Cookies()
	require.Len(t, cookies, 1)
	require.True(t, cookies[0].HttpOnly)

	resp, body := call(t, srv, "GET", "/api/v1/series?metric=requests&from=0&to=60000&step=1m", http.Header{"Cookie": {cookies[0].String()}})
	require.NotEqual(t, http.StatusUnauthorized, resp.StatusCode, body)

	resp, body = call(t, srv, "GET", "/?key=swk_unknown", nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.NotContains(t, body, "swk_unknown")
	resp, _ = call(t, srv, "GET", "/?key="+k.ingest, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "an ingest key does not open the dashboard")
	resp, body = call(t, srv, "GET", "/", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "dashboard", body, "the page itself is open; its data needs the key")
}
