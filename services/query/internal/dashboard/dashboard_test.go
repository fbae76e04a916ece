package dashboard_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/services/query/internal/dashboard"
)

func TestServesTheEmbeddedPage(t *testing.T) {
	t.Parallel()
	e := echo.New()
	dashboard.Register(e)
	for _, tc := range []struct{ path, ctype, contains string }{
		{"/", "text/html", `<script type="module" src="app.js">`},
		{"/index.html", "text/html", "Streamwatch"},
		{"/app.js", "javascript", "/api/v1/series"},
		{"/style.css", "text/css", "--accent"},
	} {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		require.Equal(t, http.StatusOK, rec.Code, tc.path)
		require.Contains(t, rec.Header().Get("Content-Type"), tc.ctype, tc.path)
		require.True(t, strings.Contains(rec.Body.String(), tc.contains), tc.path)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/nope", nil))
	require.Equal(t, http.StatusNotFound, rec.Code, "the dashboard does not swallow other paths")
}
