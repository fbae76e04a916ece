package ports

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/streamwatch/streamwatch/pkg/auth"
	"github.com/streamwatch/streamwatch/pkg/httpserver"
	"github.com/streamwatch/streamwatch/pkg/profiles"
	"github.com/streamwatch/streamwatch/services/collector/internal/app"
)

// ProfilesServer serves the profile endpoints (docs/join.md): PUT and
// DELETE /v1/profiles/{type}/{id} and bulk NDJSON POST /v1/profiles. Safe
// for concurrent use.
type ProfilesServer struct {
	app   *app.ProfilesHandler
	guard *auth.Guard
	// base reads bodies and maps errors exactly as the ingest endpoints.
	base *HTTPServer
}

// NewProfilesServer returns the profile handlers; bodies larger than
// maxBodyBytes are refused with 413, and guard admits requests (an API key
// with the ingest scope).
func NewProfilesServer(h *app.ProfilesHandler, maxBodyBytes int64, guard *auth.Guard) *ProfilesServer {
	return &ProfilesServer{app: h, guard: guard, base: &HTTPServer{maxBodyBytes: maxBodyBytes, guard: guard}}
}

// Register adds the profile endpoints to e, behind
// guard.Require(auth.ScopeIngest) as the ingest endpoints.
func (s *ProfilesServer) Register(e *echo.Echo) {
	ingest := s.guard.Require(auth.ScopeIngest, false)
	e.PUT("/v1/profiles/:type/:id", s.PutProfile, ingest)
	e.DELETE("/v1/profiles/:type/:id", s.DeleteProfile, ingest)
	e.POST("/v1/profiles", s.PostProfiles, ingest)
}

// PutProfile handles PUT /v1/profiles/{type}/{id} with a JSON object of the
// type's attributes (user: segment, plan, country, signup_date; product:
// category, price; service: team, tier; any: attributes). It answers 200
// with the published profile (schema v1, with updated_at) once Kafka
// acknowledged it; 400 naming the field for a bad type, id or attribute;
// 413 and 503 as POST /v1/events.
func (s *ProfilesServer) PutProfile(c echo.Context) error {
	typ, id, err := pathKey(c)
	if err != nil {
		return err
	}
	body, err := s.base.body(c)
	if err != nil {
		return err
	}
	p, err := s.app.Put(c.Request().Context(), typ, id, body)
	if err != nil {
		return s.error(c, err)
	}
	return c.JSON(http.StatusOK, p)
}

// DeleteProfile handles DELETE /v1/profiles/{type}/{id}: it publishes a
// tombstone and answers 204 once Kafka acknowledged it (also for a profile
// that never existed); 400 for a bad type or id, 503 as POST /v1/events.
func (s *ProfilesServer) DeleteProfile(c echo.Context) error {
	typ, id, err := pathKey(c)
	if err != nil {
		return err
	}
	if err := s.app.Delete(c.Request().Context(), typ, id); err != nil {
		return s.error(c, err)
	}
	return c.NoContent(http.StatusNoContent)
}

// PostProfiles handles POST /v1/profiles: NDJSON, one profile per line with
// "type", "id" and the attributes. Answers as POST /v1/events: 202
// {"accepted": n, "rejected": [{"index": line index, "error": "..."}]},
// 400 when no line was valid or the body had none, 413, 503.
func (s *ProfilesServer) PostProfiles(c echo.Context) error {
	body, err := s.base.body(c)
	if err != nil {
		return err
	}
	res, err := s.app.Ingest(c.Request().Context(), body)
	if err != nil {
		return s.error(c, err)
	}
	return respond(c, res, func(r app.Rejection) EventRejection {
		return EventRejection{Index: r.Position, Error: r.ErrorMessage()}
	})
}

func (s *ProfilesServer) error(c echo.Context, err error) error {
	if app.IsInvalidProfile(err) {
		return httpserver.Error(http.StatusBadRequest, "%s", app.Rejection{Err: err}.ErrorMessage())
	}
	return s.base.httpError(c, err)
}

// pathKey returns the type and the (unescaped) id of the request path.
func pathKey(c echo.Context) (profiles.Type, string, error) {
	id := c.Param("id")
	if c.Request().URL.RawPath != "" { // the router matched the escaped path
		u, err := url.PathUnescape(id)
		if err != nil {
			return "", "", httpserver.Error(http.StatusBadRequest, "id %q is not a valid escaped path segment", id)
		}
		id = u
	}
	typ := profiles.Type(c.Param("type"))
	if !typ.Valid() {
		names := make([]string, len(profiles.Types))
		for i, t := range profiles.Types {
			names[i] = string(t)
		}
		return "", "", httpserver.Error(http.StatusBadRequest, "unknown profile type %q (one of %s)", typ, strings.Join(names, ", "))
	}
	return typ, id, nil
}
