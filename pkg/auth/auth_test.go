package auth_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/auth"
	"github.com/streamwatch/streamwatch/pkg/httpserver"
)

func newSecret(t *testing.T) string {
	t.Helper()
	s, err := auth.Generate()
	require.NoError(t, err)
	return s
}

func TestGenerateIsRandomAndPrefixed(t *testing.T) {
	t.Parallel()
	a, b := newSecret(t), newSecret(t)
	require.NotEqual(t, a, b)
	require.True(t, strings.HasPrefix(a, auth.SecretPrefix))
	require.Len(t, a, len(auth.SecretPrefix)+43)
}

func TestParseKeysRoundTrip(t *testing.T) {
	t.Parallel()
	s1, s2 := newSecret(t), newSecret(t)
	text := "# keys; one per line\n\n" + auth.Line("web", s1, "web1", auth.ScopeIngest) + " rate=5 burst=7\n" +
		auth.Line("console", s2, "", auth.ScopeRead, auth.ScopeAdmin)
	keys, err := auth.ParseKeys("test", strings.NewReader(text))
	require.NoError(t, err)
	require.Len(t, keys, 2)
	require.Equal(t, "web", keys[0].Name)
	require.Equal(t, "web1", keys[0].Tenant)
	require.Equal(t, 5.0, keys[0].Rate)
	require.Equal(t, 7, keys[0].Burst)
	require.True(t, keys[0].Has(auth.ScopeIngest))
	require.False(t, keys[0].Has(auth.ScopeRead))
	require.Equal(t, []auth.Scope{auth.ScopeRead, auth.ScopeAdmin}, keys[1].Scopes)

	ring := auth.NewKeyring(keys)
	k, ok := ring.Lookup(s2)
	require.True(t, ok)
	require.Equal(t, "console", k.Name)
	_, ok = ring.Lookup(s2 + "x")
	require.False(t, ok)

	// Entries separated by ';' (an environment variable) parse the same.
	keyLines := text[strings.Index(text, "\n\n")+2:]
	inline, err := auth.ParseKeys("AUTH_KEYS", strings.NewReader(strings.ReplaceAll(keyLines, "\n", ";")))
	require.NoError(t, err)
	require.Equal(t, keys, inline)
}

func TestParseKeysErrorsNameTheProblem(t *testing.T) {
	t.Parallel()
	s := newSecret(t)
	good := auth.Line("a", s, "", auth.ScopeRead)
	digest := strings.Fields(good)[2]
	for _, tc := range []struct{ name, in, want string }{
		{"too few fields", "a read", `want "NAME SCOPES sha256:HEX`},
		{"bad name", "a/b read " + digest, "key name must match"},
		{"unknown scope", "a write " + digest, `unknown scope "write"`},
		{"secret instead of digest", "a read " + s, "is a secret, not its digest"},
		{"not sha256", "a read md5:00", "must be sha256:<64 hex digits>"},
		{"short digest", "a read sha256:abcd", "not 64 hex digits"},
		{"bad option", "a read " + digest + " tenant", `option "tenant" is not name=value`},
		{"unknown option", "a read " + digest + " color=red", `unknown option "color"`},
		{"bad rate", "a read " + digest + " rate=fast", `rate "fast"`},
		{"bad burst", "a read " + digest + " burst=0", `burst "0"`},
		{"duplicate name", good + "\n" + auth.Line("a", newSecret(t), "", auth.ScopeRead), `key name "a" used twice`},
		{"duplicate secret", good + "\n" + auth.Line("b", s, "", auth.ScopeRead), `same secret as key "a"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := auth.ParseKeys("keys.txt", strings.NewReader(tc.in))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.Contains(t, err.Error(), "keys.txt line ")
			require.NotContains(t, err.Error(), s, "a secret must never appear in an error")
			require.NotContains(t, err.Error(), strings.TrimPrefix(digest, "sha256:"), "a digest must never appear in an error")
		})
	}
}

func TestConfigRefusesToStartWithoutKeys(t *testing.T) {
	t.Parallel()
	_, err := auth.NewGuard(auth.Config{Mode: auth.ModeKeys, RateLimit: 1, RateBurst: 1}, nil)
	require.ErrorContains(t, err, "no API keys configured")
	require.ErrorContains(t, err, "AUTH_MODE=off")
	_, err = auth.NewGuard(auth.Config{Mode: "maybe"}, nil)
	require.ErrorContains(t, err, `AUTH_MODE: "maybe"`)
	_, err = auth.NewGuard(auth.Config{Mode: auth.ModeOff}, nil)
	require.NoError(t, err)
	_, err = auth.NewGuard(auth.Config{Mode: auth.ModeKeys, Keys: "# only a comment"}, nil)
	require.ErrorContains(t, err, "no API keys")
}

func TestConfigReadsFileAndInline(t *testing.T) {
	t.Parallel()
	s1, s2 := newSecret(t), newSecret(t)
	path := filepath.Join(t.TempDir(), "keys")
	require.NoError(t, os.WriteFile(path, []byte(auth.Line("f", s1, "", auth.ScopeRead)+"\n"), 0o600))
	ring, err := auth.Config{Mode: auth.ModeKeys, KeysFile: path, Keys: auth.Line("i", s2, "", auth.ScopeAdmin)}.Keyring()
	require.NoError(t, err)
	require.Equal(t, 2, ring.Len())
	_, err = auth.Config{Mode: auth.ModeKeys, KeysFile: path, Keys: auth.Line("f", s2, "", auth.ScopeAdmin)}.Keyring()
	require.ErrorContains(t, err, `key name "f" is in both`)
	_, err = auth.Config{Mode: auth.ModeKeys, KeysFile: path + ".missing"}.Keyring()
	require.ErrorContains(t, err, "AUTH_KEYS_FILE")
}

// server runs an echo server on loopback with a read endpoint (cookie
// allowed), an admin endpoint and the login middleware, logging to logs.
type server struct {
	url  string
	logs *bytes.Buffer
}

func newServer(t *testing.T, cfg auth.Config) server {
	t.Helper()
	logs := &bytes.Buffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	g, err := auth.NewGuard(cfg, logger)
	require.NoError(t, err)
	e := httpserver.New(logger, nil)
	e.GET("/", func(c echo.Context) error { return c.String(http.StatusOK, "page") }, g.Login(auth.ScopeRead))
	e.GET("/read", func(c echo.Context) error { return c.String(http.StatusOK, auth.FromContext(c).Name) }, g.Require(auth.ScopeRead, true))
	e.POST("/read", func(c echo.Context) error { return c.String(http.StatusOK, "posted") }, g.Require(auth.ScopeRead, true))
	e.POST("/admin", func(c echo.Context) error { return c.String(http.StatusOK, "changed") }, g.Require(auth.ScopeAdmin, false))
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return server{url: srv.URL, logs: logs}
}

func do(t *testing.T, method, url string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
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

func TestRequireChecksKeyAndScope(t *testing.T) {
	t.Parallel()
	reader, admin := newSecret(t), newSecret(t)
	srv := newServer(t, auth.Config{Mode: auth.ModeKeys, Keys: auth.Line("reader", reader, "", auth.ScopeRead) + ";" +
		auth.Line("ops", admin, "", auth.ScopeRead, auth.ScopeAdmin), RateLimit: 1000, RateBurst: 1000})
	bad := "swk_" + strings.Repeat("A", 43)

	for _, tc := range []struct {
		name   string
		method string
		path   string
		header http.Header
		status int
		body   string
	}{
		{"no key", "GET", "/read", nil, 401, "missing API key"},
		{"unknown bearer", "GET", "/read", http.Header{"Authorization": {"Bearer " + bad}}, 401, "invalid API key"},
		{"unknown x-api-key", "GET", "/read", http.Header{"X-Api-Key": {bad}}, 401, "invalid API key"},
		{"basic scheme", "GET", "/read", http.Header{"Authorization": {"Basic " + bad}}, 401, "must be \\\"Bearer"},
		{"bearer", "GET", "/read", http.Header{"Authorization": {"Bearer " + reader}}, 200, "reader"},
		{"bearer lower-case scheme", "GET", "/read", http.Header{"Authorization": {"bearer " + reader}}, 200, "reader"},
		{"x-api-key", "GET", "/read", http.Header{"X-Api-Key": {admin}}, 200, "ops"},
		{"read key on admin", "POST", "/admin", http.Header{"X-Api-Key": {reader}}, 403, `lacks scope \"admin\"`},
		{"admin key on admin", "POST", "/admin", http.Header{"X-Api-Key": {admin}}, 200, "changed"},
		{"cookie on GET", "GET", "/read", http.Header{"Cookie": {auth.CookieName + "=" + reader}}, 200, "reader"},
		{"cookie on POST", "POST", "/read", http.Header{"Cookie": {auth.CookieName + "=" + reader}}, 401, "missing API key"},
		{"cookie on admin", "POST", "/admin", http.Header{"Cookie": {auth.CookieName + "=" + admin}}, 401, "missing API key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, tc.method, srv.url+tc.path, tc.header)
			require.Equal(t, tc.status, resp.StatusCode, body)
			require.Contains(t, body, tc.body)
			if tc.status == 401 {
				require.Equal(t, `Bearer realm="streamwatch"`, resp.Header.Get("WWW-Authenticate"))
				require.Contains(t, body, `"code":"unauthorized"`)
			}
			require.NotContains(t, body, bad, "the answer must not repeat a key")
			require.NotContains(t, body, reader)
			require.NotContains(t, body, admin)
		})
	}
	require.NotContains(t, srv.logs.String(), bad, "the log must not contain a key")
	require.NotContains(t, srv.logs.String(), reader)
}

func TestRateLimitAnswers429WithRetryAfter(t *testing.T) {
	t.Parallel()
	slow, fast := newSecret(t), newSecret(t)
	srv := newServer(t, auth.Config{Mode: auth.ModeKeys, RateLimit: 0.5, RateBurst: 3,
		Keys: auth.Line("slow", slow, "", auth.ScopeRead) + ";" + auth.Line("fast", fast, "", auth.ScopeRead) + " rate=-1"})
	h := http.Header{"X-Api-Key": {slow}}
	for i := range 3 {
		resp, body := do(t, "GET", srv.url+"/read", h)
		require.Equal(t, 200, resp.StatusCode, "request %d within the burst: %s", i, body)
	}
	resp, body := do(t, "GET", srv.url+"/read", h)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.Contains(t, body, `"code":"rate_limited"`)
	require.Contains(t, body, `\"slow\"`)
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	require.NoError(t, err, "Retry-After %q", resp.Header.Get("Retry-After"))
	require.Equal(t, 2, secs, "one token every 2 s at 0.5 req/s")

	// Buckets are per key: another key is not affected, and rate=-1 exempts.
	for range 10 {
		resp, _ := do(t, "GET", srv.url+"/read", http.Header{"X-Api-Key": {fast}})
		require.Equal(t, 200, resp.StatusCode)
	}
	// A refused request does not consume a token: still 429, not deeper debt.
	resp, _ = do(t, "GET", srv.url+"/read", h)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.Equal(t, "2", resp.Header.Get("Retry-After"))
}

func TestModeOffAdmitsEveryoneButStillLimitsPerIP(t *testing.T) {
	t.Parallel()
	srv := newServer(t, auth.Config{Mode: auth.ModeOff, RateLimit: 0.1, RateBurst: 2})
	for range 2 {
		resp, body := do(t, "POST", srv.url+"/admin", nil)
		require.Equal(t, 200, resp.StatusCode, body)
	}
	resp, _ := do(t, "POST", srv.url+"/admin", nil)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.Contains(t, srv.logs.String(), "AUTH_MODE=off")
}

func TestLoginSetsCookieAndDropsKeyFromURL(t *testing.T) {
	t.Parallel()
	reader, ingest := newSecret(t), newSecret(t)
	srv := newServer(t, auth.Config{Mode: auth.ModeKeys, RateLimit: 100, RateBurst: 100,
		Keys: auth.Line("reader", reader, "", auth.ScopeRead) + ";" + auth.Line("web", ingest, "", auth.ScopeIngest)})

	resp, _ := do(t, "GET", srv.url+"/?range=latest&key="+reader, nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/?range=latest", resp.Header.Get("Location"))
	var ck *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == auth.CookieName {
			ck = c
		}
	}
	require.NotNil(t, ck)
	require.True(t, ck.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, ck.SameSite)
	require.Equal(t, reader, ck.Value)

	resp, body := do(t, "GET", srv.url+"/read", http.Header{"Cookie": {ck.String()}})
	require.Equal(t, 200, resp.StatusCode, body)

	resp, body = do(t, "GET", srv.url+"/?key=swk_nope", nil)
	require.Equal(t, 401, resp.StatusCode)
	require.NotContains(t, body, "swk_nope")
	resp, _ = do(t, "GET", srv.url+"/?key="+ingest, nil)
	require.Equal(t, 403, resp.StatusCode)
	resp, body = do(t, "GET", srv.url+"/", nil)
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "page", body)
}
