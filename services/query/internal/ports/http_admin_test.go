package ports_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/rules"
	"github.com/streamwatch/streamwatch/pkg/silences"
	"github.com/streamwatch/streamwatch/services/query/internal/ports"
)

// send serves method target with body and decodes the JSON answer.
func (e *env) send(t *testing.T, method, target, body string, out any) int {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	e.http.ServeHTTP(rec, req)
	if out != nil {
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), out), rec.Body.String())
	}
	return rec.Code
}

// nextRecord returns the next record the API published on topic, after
// checking its key and schema, and projects it like the service's
// projector would.
func nextRecord(t *testing.T, e *env, ch <-chan *message.Message, key, schema string, project func(*message.Message) error) *message.Message {
	t.Helper()
	select {
	case m := <-ch:
		m.Ack()
		require.Equal(t, key, m.Metadata.Get(messaging.MetaKey))
		require.Equal(t, schema, m.Metadata.Get(messaging.MetaSchema))
		if project != nil {
			m.SetContext(context.Background())
			require.NoError(t, project(m))
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatalf("no record on the topic")
		return nil
	}
}

const ruleJSON = `{"name":"too_many_404","metric":"requests_by_status","match":{"status":"404"},"op":">","threshold":50,"severity":"warning"}`

func TestAdminRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	topic, err := e.pubsub.Subscribe(ctx, messaging.TopicRules)
	require.NoError(t, err)

	var resp ports.RuleChangeResponse
	require.Equal(t, http.StatusAccepted, e.send(t, http.MethodPost, "/api/v1/rules", ruleJSON, &resp))
	require.Equal(t, "too_many_404", resp.Change.ID)
	m := nextRecord(t, e, topic, "too_many_404", rules.ChangeSchema, e.proj.HandleRuleChange)
	c, err := rules.DecodeChange(m.Payload)
	require.NoError(t, err, "the detector can read what the API published")
	require.Equal(t, rules.OpUpsert, c.Op)
	require.InDelta(t, 50, c.Rule.Threshold, 0)

	var list ports.RulesResponse
	require.Equal(t, http.StatusOK, e.get(t, "/api/v1/rules", &list))
	require.Len(t, list.Rules, 1)
	var got map[string]any
	require.Equal(t, http.StatusOK, e.get(t, "/api/v1/rules/too_many_404", &got))
	require.Equal(t, "requests_by_status", got["metric"])

	// Update through PUT, then delete.
	require.Equal(t, http.StatusAccepted, e.send(t, http.MethodPut, "/api/v1/rules/too_many_404",
		strings.Replace(ruleJSON, `"threshold":50`, `"threshold":70`, 1), &resp))
	nextRecord(t, e, topic, "too_many_404", rules.ChangeSchema, e.proj.HandleRuleChange)
	require.Equal(t, http.StatusOK, e.get(t, "/api/v1/rules/too_many_404", &got))
	require.InDelta(t, 70, got["threshold"], 0)
	require.Equal(t, http.StatusAccepted, e.send(t, http.MethodDelete, "/api/v1/rules/too_many_404", "", &resp))
	nextRecord(t, e, topic, "too_many_404", rules.ChangeSchema, e.proj.HandleRuleChange)
	require.Equal(t, http.StatusNotFound, e.get(t, "/api/v1/rules/too_many_404", &got))

	// Bad input: 400 with a message, nothing published.
	for _, tc := range []struct{ method, target, body, want string }{
		{http.MethodPost, "/api/v1/rules", `{"name":"x","metric":"requests","op":"<>","threshold":1}`, "op"},
		{http.MethodPost, "/api/v1/rules", `not json`, "body"},
		{http.MethodPost, "/api/v1/rules", ``, "empty body"},
		{http.MethodPut, "/api/v1/rules/other", ruleJSON, "differs"},
		{http.MethodPut, "/api/v1/rules/x';DROP%20TABLE%20rules;--", ruleJSON, "id"},
		{http.MethodDelete, "/api/v1/rules/Bad-Name", "", "id"},
	} {
		var body map[string]any
		require.Equal(t, http.StatusBadRequest, e.send(t, tc.method, tc.target, tc.body, &body), "%s %s", tc.method, tc.target)
		require.Equal(t, "bad_request", body["code"])
		require.Contains(t, body["message"], tc.want, "%s %s", tc.method, tc.target)
	}
	select {
	case m := <-topic:
		t.Fatalf("bad input published %s", m.Payload)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestAdminSilencesAndAcks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	topic, err := e.pubsub.Subscribe(ctx, messaging.TopicSilences)
	require.NoError(t, err)
	acks, err := e.pubsub.Subscribe(ctx, messaging.TopicAcks)
	require.NoError(t, err)

	now := time.Now().UnixMilli()
	body := `{"matchers":[{"name":"rule","value":"high_request_rate_client"},{"name":"client_ip","op":"=~","value":"10\\..*"}],` +
		`"starts_at":` + jsonInt(now) + `,"ends_at":` + jsonInt(now+3_600_000) + `,"created_by":"ops","comment":"maintenance"}`
	var resp ports.SilenceResponse
	require.Equal(t, http.StatusAccepted, e.send(t, http.MethodPost, "/api/v1/silences", body, &resp))
	id := resp.Silence.ID
	require.NotEmpty(t, id)
	m := nextRecord(t, e, topic, id, silences.Schema, e.proj.HandleSilence)
	var sl silences.Silence
	require.NoError(t, json.Unmarshal(m.Payload, &sl))
	require.NoError(t, sl.Validate(), "the notifier can read what the API published")

	var list ports.SilencesResponse
	require.Equal(t, http.StatusOK, e.get(t, "/api/v1/silences?state=active", &list))
	require.Len(t, list.Silences, 1)
	require.Equal(t, http.StatusAccepted, e.send(t, http.MethodDelete, "/api/v1/silences/"+id, "", &resp))
	nextRecord(t, e, topic, id, silences.Schema, e.proj.HandleSilence)
	require.Equal(t, http.StatusOK, e.get(t, "/api/v1/silences?state=active", &list))
	require.Empty(t, list.Silences)
	require.Equal(t, http.StatusOK, e.get(t, "/api/v1/silences?state=expired", &list))
	require.Len(t, list.Silences, 1)

	var ack ports.AckResponse
	require.Equal(t, http.StatusAccepted, e.send(t, http.MethodPost, "/api/v1/alerts/00ff00ff00ff00ff/ack", `{"by":"ops","comment":"on it"}`, &ack))
	nextRecord(t, e, acks, "00ff00ff00ff00ff", silences.AckSchema, nil)

	for _, tc := range []struct{ method, target, body, want string }{
		{http.MethodPost, "/api/v1/silences", `{"matchers":[],"created_by":"ops","ends_at":5}`, "no matchers"},
		{http.MethodPost, "/api/v1/silences", `{"matchers":[{"name":"a","value":"b"}],"created_by":"ops","ends_at":5,"bogus":1}`, "unknown field"},
		{http.MethodPost, "/api/v1/silences", `{"matchers":[{"name":"a","op":"=~","value":"("}],"created_by":"ops","ends_at":5}`, "matcher"},
		{http.MethodPut, "/api/v1/silences/a'%20OR%20'1'='1", `{}`, "id"},
		{http.MethodGet, "/api/v1/silences?state=deleted", ``, "state"},
		{http.MethodPost, "/api/v1/alerts/xyz/ack", `{"by":"ops"}`, "fingerprint"},
		{http.MethodPost, "/api/v1/alerts/abc/ack", `{}`, "missing by"},
	} {
		var body map[string]any
		require.Equal(t, http.StatusBadRequest, e.send(t, tc.method, tc.target, tc.body, &body), "%s %s", tc.method, tc.target)
		require.Contains(t, body["message"], tc.want, "%s %s", tc.method, tc.target)
	}
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }
