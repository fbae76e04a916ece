// Package dashboard serves Streamwatch's live monitoring page: static assets
// built from web/dashboard (npm ci && npm run build) into dist/ and embedded
// in the query binary, so the service stays one binary.
package dashboard

import (
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"

	"github.com/labstack/echo/v4"
)

//go:embed dist
var dist embed.FS

// files are the assets served, by URL path.
var files = map[string]string{
	"/":           "index.html",
	"/index.html": "index.html",
	"/app.js":     "app.js",
	"/style.css":  "style.css",
}

// Register serves the dashboard on e: GET / (and /index.html), /app.js and
// /style.css. Only these paths are registered, so unknown paths keep the
// API's JSON 404. Assets are revalidated on every load (Cache-Control:
// no-cache), since they change with the binary.
func Register(e *echo.Echo) {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // the embed directive guarantees dist exists
	}
	for route, name := range files {
		e.GET(route, func(c echo.Context) error {
			b, err := fs.ReadFile(sub, name)
			if err != nil {
				return echo.NewHTTPError(http.StatusNotFound, "dashboard asset "+name+" missing from this build")
			}
			ctype := mime.TypeByExtension(path.Ext(name))
			if ctype == "" {
				ctype = "application/octet-stream"
			}
			c.Response().Header().Set("Cache-Control", "no-cache")
			c.Response().Header().Set("X-Content-Type-Options", "nosniff")
			return c.Blob(http.StatusOK, ctype, b)
		})
	}
}
