package profiles_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/profiles"
)

func TestParseInput(t *testing.T) {
	t.Parallel()
	recv := time.UnixMilli(1_763_719_200_000)
	cases := []struct {
		name    string
		body    string
		typ     profiles.Type
		id      string
		want    profiles.Profile
		wantErr string
	}{
		{name: "user from path", body: `{"segment":"gold","plan":"pro","country":"de","signup_date":"2024-02-29","attributes":{"ab_group":"b"}}`,
			typ: profiles.TypeUser, id: "u1",
			want: profiles.Profile{V: 1, Type: "user", ID: "u1", UpdatedAt: recv.UnixMilli(), Segment: "gold", Plan: "pro", Country: "DE", SignupDate: "2024-02-29", Attributes: map[string]string{"ab_group": "b"}}},
		{name: "product in body", body: `{"type":"product","id":"p9","category":"books","price":12.5}`,
			want: profiles.Profile{V: 1, Type: "product", ID: "p9", UpdatedAt: recv.UnixMilli(), Category: "books", Price: 12.5}},
		{name: "service", body: `{"team":"payments","tier":"1"}`, typ: profiles.TypeService, id: "checkout",
			want: profiles.Profile{V: 1, Type: "service", ID: "checkout", UpdatedAt: recv.UnixMilli(), Team: "payments", Tier: "1"}},
		{name: "attribute of another type", body: `{"category":"books"}`, typ: profiles.TypeUser, id: "u1", wantErr: `field "category": is a product attribute, not one of a user`},
		{name: "bad country", body: `{"country":"Germany"}`, typ: profiles.TypeUser, id: "u1", wantErr: `field "country": "Germany" is not an ISO 3166-1 alpha-2 code`},
		{name: "bad date", body: `{"signup_date":"2024-13-01"}`, typ: profiles.TypeUser, id: "u1", wantErr: `field "signup_date": "2024-13-01" is not a date YYYY-MM-DD`},
		{name: "negative price", body: `{"type":"product","id":"p","price":-1}`, wantErr: `field "price": negative`},
		{name: "bad attribute key", body: `{"attributes":{"Bad-Key":"x"}}`, typ: profiles.TypeUser, id: "u1", wantErr: `field "attributes.Bad-Key": key must match`},
		{name: "unknown field", body: `{"segmnt":"gold"}`, typ: profiles.TypeUser, id: "u1", wantErr: `field "segmnt": unknown field`},
		{name: "collector field refused", body: `{"updated_at":1}`, typ: profiles.TypeUser, id: "u1", wantErr: `field "updated_at": unknown field`},
		{name: "unknown type", body: `{"type":"shop","id":"s"}`, wantErr: `field "type": unknown type "shop" (one of user, product, service)`},
		{name: "missing id", body: `{"type":"user"}`, wantErr: `field "id": missing`},
		{name: "path and body differ", body: `{"id":"u2"}`, typ: profiles.TypeUser, id: "u1", wantErr: `field "id": "u2" differs from the path's "u1"`},
		{name: "several problems", body: `{"type":"user","id":"u","country":"x","plan":"` + strings.Repeat("a", 300) + `"}`, wantErr: `field "plan": longer than 256 bytes`},
		{name: "wrong json type", body: `{"type":"product","id":"p","price":"12"}`, wantErr: `field "price": expected float64, got string`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := profiles.ParseInput([]byte(tc.body), tc.typ, tc.id, recv)
			if tc.wantErr != "" {
				require.Error(t, err)
				require.ErrorIs(t, err, profiles.ErrInvalid)
				require.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	t.Parallel()
	p := profiles.Profile{V: 1, Type: profiles.TypeUser, ID: "u1", UpdatedAt: 5, Segment: "gold", Attributes: map[string]string{"k": "v"}}
	b, err := profiles.Encode(&p)
	require.NoError(t, err)
	got, err := profiles.Decode(b)
	require.NoError(t, err)
	require.Equal(t, p, got)

	_, err = profiles.Decode([]byte(`{"v":2,"type":"user","id":"u1"}`))
	require.ErrorIs(t, err, profiles.ErrInvalid)
	require.Contains(t, err.Error(), "unsupported schema version 2")
	_, err = profiles.Decode([]byte(`{`))
	require.ErrorIs(t, err, profiles.ErrInvalid)
}

func TestKeys(t *testing.T) {
	t.Parallel()
	require.Equal(t, "user/a/b", profiles.Key(profiles.TypeUser, "a/b"))
	typ, id, err := profiles.ParseKey("user/a/b")
	require.NoError(t, err)
	require.Equal(t, profiles.TypeUser, typ)
	require.Equal(t, "a/b", id)
	for _, bad := range []string{"user", "shop/x", "service/"} {
		_, _, err := profiles.ParseKey(bad)
		require.Error(t, err, bad)
		require.True(t, errors.Is(err, profiles.ErrInvalid))
	}
}
