package service_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/profiles"
	"github.com/streamwatch/streamwatch/services/collector/internal/service"
)

// TestProfilesThroughKafka writes profiles with PUT, the bulk NDJSON
// endpoint and DELETE on the wired service and reads the profiles topic
// back: one record per profile keyed "<type>/<id>" in the key's partition,
// valid profile values, a null value for the delete, and per-line
// rejections that do not stop the valid lines.
func TestProfilesThroughKafka(t *testing.T) {
	t.Parallel()
	skipShort(t)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, messaging.TopicEventsRaw, messaging.TopicProfiles))
	require.NoError(t, err)
	t.Cleanup(cluster.Close)
	svc, err := service.New(newConfig(cluster.ListenAddrs()), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, svc.Close()) })
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)

	do := func(method, path, body string) (int, string) {
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}

	code, body := do(http.MethodPut, "/v1/profiles/user/u%2F1", `{"segment":"gold","plan":"pro","country":"de","signup_date":"2024-01-31"}`)
	require.Equal(t, http.StatusOK, code, body)
	var put profiles.Profile
	require.NoError(t, json.Unmarshal([]byte(body), &put))
	require.Equal(t, "u/1", put.ID, "the id is unescaped")
	require.Equal(t, "DE", put.Country)
	require.Positive(t, put.UpdatedAt)

	for _, tc := range []struct{ method, path, body, want string }{
		{http.MethodPut, "/v1/profiles/shop/x", `{}`, `unknown profile type \"shop\" (one of user, product, service)`},
		{http.MethodPut, "/v1/profiles/user/u1", `{"category":"books"}`, `field \"category\": is a product attribute, not one of a user`},
		{http.MethodPut, "/v1/profiles/product/p1", `{"price":"cheap"}`, `field \"price\": expected float64, got string`},
		{http.MethodDelete, "/v1/profiles/team/x", ``, `unknown profile type \"team\"`},
		{http.MethodPost, "/v1/profiles", "\n\n", `no profiles`},
		{http.MethodPost, "/v1/profiles", `{"type":"user"}`, `field \"id\": missing`},
	} {
		code, body := do(tc.method, tc.path, tc.body)
		require.Equal(t, http.StatusBadRequest, code, "%s %s: %s", tc.method, tc.path, body)
		require.Contains(t, body, tc.want, "%s %s", tc.method, tc.path)
	}

	code, body = do(http.MethodPost, "/v1/profiles", strings.Join([]string{
		`{"type":"product","id":"p1","category":"books","price":12.5}`,
		`{"type":"service","id":"checkout","team":"payments","tier":"1"}`,
		``,
		`{"type":"user","id":"u2","country":"Germany"}`,
		`not json`,
		`{"type":"user","id":"u2","segment":"free","attributes":{"ab_test":"b"}}`,
	}, "\n"))
	require.Equal(t, http.StatusAccepted, code, body)
	var res struct {
		Accepted int `json:"accepted"`
		Rejected []struct {
			Index int    `json:"index"`
			Error string `json:"error"`
		} `json:"rejected"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &res))
	require.Equal(t, 3, res.Accepted)
	require.Len(t, res.Rejected, 2)
	require.Equal(t, 3, res.Rejected[0].Index)
	require.Contains(t, res.Rejected[0].Error, `field "country": "Germany" is not an ISO 3166-1 alpha-2 code`)
	require.Equal(t, 4, res.Rejected[1].Index)
	require.Contains(t, res.Rejected[1].Error, "malformed JSON")

	code, body = do(http.MethodDelete, "/v1/profiles/user/u%2F1", "")
	require.Equal(t, http.StatusNoContent, code, body)

	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics(messaging.TopicProfiles),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < 5 {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "consumed %d of 5 records", len(recs))
		fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
	}
	byKey := map[string][]*kgo.Record{}
	for _, r := range recs {
		require.Equal(t, messaging.PartitionFor(string(r.Key), partitions), r.Partition, "record %s", r.Key)
		byKey[string(r.Key)] = append(byKey[string(r.Key)], r)
	}
	require.Len(t, byKey["user/u/1"], 2)
	first, err := profiles.Decode(byKey["user/u/1"][0].Value)
	require.NoError(t, err)
	require.Equal(t, put, first)
	require.Nil(t, byKey["user/u/1"][1].Value, "DELETE writes a tombstone (null value)")
	p1, err := profiles.Decode(byKey["product/p1"][0].Value)
	require.NoError(t, err)
	require.Equal(t, "books", p1.Category)
	require.InDelta(t, 12.5, p1.Price, 0)
	u2, err := profiles.Decode(byKey["user/u2"][0].Value)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"ab_test": "b"}, u2.Attributes)
	require.Len(t, byKey["service/checkout"], 1)
}
