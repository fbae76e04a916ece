package ports

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/labstack/echo/v4"

	"github.com/streamwatch/streamwatch/pkg/httpserver"
	"github.com/streamwatch/streamwatch/pkg/rules"
	"github.com/streamwatch/streamwatch/pkg/silences"
	"github.com/streamwatch/streamwatch/services/query/internal/app/command"
	"github.com/streamwatch/streamwatch/services/query/internal/domain/window"
)

// MaxAdminBody bounds an admin request body, in bytes.
const MaxAdminBody = 1 << 20

var (
	silenceIDRule   = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,128}$`)
	fingerprintRule = regexp.MustCompile(`^[0-9a-f]{1,64}$`)
	silenceParams   = map[string]bool{"state": false}
	noParams        = map[string]bool{}
)

// RuleChangeResponse answers a rule write: the change as published on the
// rules topic (202 Accepted: the detector and GET /api/v1/rules see it
// once they have consumed it).
type RuleChangeResponse struct {
	Change rules.Change `json:"change"`
}

// RulesResponse is the body of GET /api/v1/rules: the rules set through
// this API (the rules topic), latest version each, by id.
type RulesResponse struct {
	Rules []json.RawMessage `json:"rules"`
}

// SilenceResponse answers a silence write with the record published.
type SilenceResponse struct {
	Silence silences.Silence `json:"silence"`
}

// SilencesResponse is the body of GET /api/v1/silences.
type SilencesResponse struct {
	Silences []json.RawMessage `json:"silences"`
}

// AckResponse answers an acknowledgement with the record published.
type AckResponse struct {
	Ack silences.Ack `json:"ack"`
}

// registerAdmin adds the admin routes to g: reads behind read, changes
// behind admin.
func (s *HTTPServer) registerAdmin(g *echo.Group, read, admin echo.MiddlewareFunc) {
	g.GET("/rules", s.listRules, read)
	g.GET("/rules/:id", s.getRule, read)
	g.POST("/rules", s.createRule, admin)
	g.PUT("/rules/:id", s.putRule, admin)
	g.DELETE("/rules/:id", s.deleteRule, admin)
	g.GET("/silences", s.listSilences, read)
	g.GET("/silences/:id", s.getSilence, read)
	g.POST("/silences", s.createSilence, admin)
	g.PUT("/silences/:id", s.putSilence, admin)
	g.DELETE("/silences/:id", s.expireSilence, admin)
	g.POST("/alerts/:fingerprint/ack", s.ackAlert, admin)
}

func readBody(c echo.Context) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(c.Request().Body, MaxAdminBody+1))
	if err != nil {
		return nil, httpserver.Error(http.StatusBadRequest, "read body: %v", err)
	}
	if len(b) > MaxAdminBody {
		return nil, httpserver.Error(http.StatusRequestEntityTooLarge, "body larger than %d bytes", MaxAdminBody)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, httpserver.Error(http.StatusBadRequest, "empty body (a JSON object is expected)")
	}
	return b, nil
}

// decodeStrict decodes a JSON object, refusing unknown fields and
// trailing data.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return httpserver.Error(http.StatusBadRequest, "body: %v", err)
	}
	if dec.More() {
		return httpserver.Error(http.StatusBadRequest, "body: data after the JSON object")
	}
	return nil
}

// adminError maps command errors: invalid input → 400, the rest as is.
func adminError(err error) error {
	if errors.Is(err, command.ErrInvalidInput) {
		return httpserver.Error(http.StatusBadRequest, "%s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return err
}

func checkRuleID(id string) error {
	if !window.ValidName(id) {
		return badRequest(window.InvalidParam("id", "%q is not a rule name (^[a-z_][a-z0-9_]*$)", id))
	}
	return nil
}

func (s *HTTPServer) listRules(c echo.Context) error {
	if err := checkParams(c.QueryParams(), noParams); err != nil {
		return badRequest(err)
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), queryTimeout)
	defer cancel()
	list, err := s.app.Queries.Admin.Rules(ctx, "")
	if err != nil {
		return err
	}
	if list == nil {
		list = []json.RawMessage{}
	}
	return c.JSON(http.StatusOK, RulesResponse{Rules: list})
}

func (s *HTTPServer) getRule(c echo.Context) error {
	id := c.Param("id")
	if err := checkRuleID(id); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), queryTimeout)
	defer cancel()
	list, err := s.app.Queries.Admin.Rules(ctx, id)
	if err != nil {
		return err
	}
	if len(list) == 0 {
		return httpserver.Error(http.StatusNotFound, "rule %s not found (only rules set through this API are listed)", id)
	}
	return c.JSONBlob(http.StatusOK, list[0])
}

func (s *HTTPServer) createRule(c echo.Context) error {
	b, err := readBody(c)
	if err != nil {
		return err
	}
	var probe struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return httpserver.Error(http.StatusBadRequest, "body: %v", err)
	}
	return s.upsertRule(c, probe.Name, b)
}

func (s *HTTPServer) putRule(c echo.Context) error {
	b, err := readBody(c)
	if err != nil {
		return err
	}
	return s.upsertRule(c, c.Param("id"), b)
}

func (s *HTTPServer) upsertRule(c echo.Context, id string, body []byte) error {
	if err := checkRuleID(id); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), queryTimeout)
	defer cancel()
	change, err := s.app.Commands.Admin.UpsertRule(ctx, id, body)
	if err != nil {
		return adminError(err)
	}
	return c.JSON(http.StatusAccepted, RuleChangeResponse{Change: change})
}

func (s *HTTPServer) deleteRule(c echo.Context) error {
	id := c.Param("id")
	if err := checkRuleID(id); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), queryTimeout)
	defer cancel()
	change, err := s.app.Commands.Admin.DeleteRule(ctx, id)
	if err != nil {
		return adminError(err)
	}
	return c.JSON(http.StatusAccepted, RuleChangeResponse{Change: change})
}

func (s *HTTPServer) listSilences(c echo.Context) error {
	params := c.QueryParams()
	if err := checkParams(params, silenceParams); err != nil {
		return badRequest(err)
	}
	state := params.Get("state")
	switch state {
	case "", "all", "active", "expired":
	default:
		return badRequest(window.InvalidParam("state", "%q is not active, expired or all", state))
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), queryTimeout)
	defer cancel()
	list, err := s.app.Queries.Admin.Silences(ctx, "")
	if err != nil {
		return err
	}
	now := time.Now().UnixMilli()
	out := []json.RawMessage{}
	for _, raw := range list {
		var sl silences.Silence
		if json.Unmarshal(raw, &sl) != nil {
			continue
		}
		active := sl.Op != silences.OpExpire && (sl.EndsAt == 0 || sl.EndsAt > now)
		if (state == "active" && !active) || (state == "expired" && active) {
			continue
		}
		out = append(out, raw)
	}
	return c.JSON(http.StatusOK, SilencesResponse{Silences: out})
}

func (s *HTTPServer) getSilence(c echo.Context) error {
	id := c.Param("id")
	if !silenceIDRule.MatchString(id) {
		return badRequest(window.InvalidParam("id", "%q is not a silence id ([A-Za-z0-9_.:-], 1..128)", id))
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), queryTimeout)
	defer cancel()
	list, err := s.app.Queries.Admin.Silences(ctx, id)
	if err != nil {
		return err
	}
	if len(list) == 0 {
		return httpserver.Error(http.StatusNotFound, "silence %s not found", id)
	}
	return c.JSONBlob(http.StatusOK, list[0])
}

func (s *HTTPServer) createSilence(c echo.Context) error {
	return s.upsertSilence(c, "")
}

func (s *HTTPServer) putSilence(c echo.Context) error {
	return s.upsertSilence(c, c.Param("id"))
}

// upsertSilence decodes a silence (v, op and updated_at are set by the
// API); pathID, when set, must equal the body's id if it has one. A
// silence without id gets a UUID.
func (s *HTTPServer) upsertSilence(c echo.Context, pathID string) error {
	b, err := readBody(c)
	if err != nil {
		return err
	}
	var sl silences.Silence
	if err := decodeStrict(b, &sl); err != nil {
		return err
	}
	switch {
	case pathID != "" && sl.ID != "" && sl.ID != pathID:
		return httpserver.Error(http.StatusBadRequest, "body id %q differs from the path id %q", sl.ID, pathID)
	case pathID != "":
		sl.ID = pathID
	case sl.ID == "":
		sl.ID = watermill.NewUUID()
	}
	if !silenceIDRule.MatchString(sl.ID) {
		return badRequest(window.InvalidParam("id", "%q is not a silence id ([A-Za-z0-9_.:-], 1..128)", sl.ID))
	}
	if sl.Op != "" && sl.Op != silences.OpUpsert {
		return httpserver.Error(http.StatusBadRequest, "op %q: use DELETE to expire a silence", sl.Op)
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), queryTimeout)
	defer cancel()
	out, err := s.app.Commands.Admin.UpsertSilence(ctx, sl)
	if err != nil {
		return adminError(err)
	}
	return c.JSON(http.StatusAccepted, SilenceResponse{Silence: out})
}

func (s *HTTPServer) expireSilence(c echo.Context) error {
	id := c.Param("id")
	if !silenceIDRule.MatchString(id) {
		return badRequest(window.InvalidParam("id", "%q is not a silence id ([A-Za-z0-9_.:-], 1..128)", id))
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), queryTimeout)
	defer cancel()
	out, err := s.app.Commands.Admin.ExpireSilence(ctx, id)
	if err != nil {
		return adminError(err)
	}
	return c.JSON(http.StatusAccepted, SilenceResponse{Silence: out})
}

func (s *HTTPServer) ackAlert(c echo.Context) error {
	fp := c.Param("fingerprint")
	if !fingerprintRule.MatchString(fp) {
		return badRequest(window.InvalidParam("fingerprint", "%q is not an alert fingerprint (hex)", fp))
	}
	b, err := readBody(c)
	if err != nil {
		return err
	}
	var body struct {
		ID       string `json:"id"`
		StartsAt int64  `json:"starts_at"`
		By       string `json:"by"`
		Comment  string `json:"comment"`
	}
	if err := decodeStrict(b, &body); err != nil {
		return err
	}
	if body.ID == "" {
		body.ID = fmt.Sprintf("%s|%d|%s", fp, body.StartsAt, watermill.NewUUID())
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), queryTimeout)
	defer cancel()
	out, err := s.app.Commands.Admin.Acknowledge(ctx, silences.Ack{ID: body.ID, Fingerprint: fp, StartsAt: body.StartsAt, By: body.By, Comment: body.Comment})
	if err != nil {
		return adminError(err)
	}
	return c.JSON(http.StatusAccepted, AckResponse{Ack: out})
}
