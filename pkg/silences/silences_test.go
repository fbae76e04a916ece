package silences_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/silences"
)

func TestMatchers(t *testing.T) {
	t.Parallel()
	labels := map[string]string{"service": "db", "severity": "warning"}
	cases := []struct {
		name, op, value, label string
		want                   bool
	}{
		{"eq", "=", "db", "service", true},
		{"default op is eq", "", "db", "service", true},
		{"eq miss", "=", "d", "service", false},
		{"neq", "!=", "api", "service", true},
		{"regex anchored", "=~", "d", "service", false},
		{"regex", "=~", "db|cache", "service", true},
		{"not regex", "!~", "warn.*", "severity", false},
		{"missing label equals empty", "=", "", "env", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			m, err := silences.NewMatcher(c.label, c.op, c.value)
			require.NoError(t, err)
			require.Equal(t, c.want, m.Matches(labels))
		})
	}
	_, err := silences.NewMatcher("x", "=~", "(")
	require.ErrorContains(t, err, "x=~")
	_, err = silences.NewMatcher("x", "~", "a")
	require.ErrorContains(t, err, "unknown operator")
}

func TestDecodedRegexMatcherCompilesLazily(t *testing.T) {
	t.Parallel()
	var s silences.Silence
	require.NoError(t, json.Unmarshal([]byte(`{"v":1,"id":"s1","matchers":[{"name":"service","op":"=~","value":"db|cache"}],
		"starts_at":1,"ends_at":2,"created_by":"alice"}`), &s))
	require.NoError(t, s.Validate())
	require.True(t, s.Matchers.Matches(map[string]string{"service": "cache"}))
	require.False(t, s.Matchers.Matches(map[string]string{"service": "cache2"}))
}

func TestSilenceAndAckValidation(t *testing.T) {
	t.Parallel()
	s := silences.Silence{V: 2, Op: "delete", StartsAt: 5, EndsAt: 3}
	err := s.Validate()
	require.ErrorContains(t, err, "schema version 2")
	require.ErrorContains(t, err, "missing id")
	require.ErrorContains(t, err, `unknown op "delete"`)
	s = silences.Silence{V: 1, ID: "s", StartsAt: 5, EndsAt: 3, Matchers: silences.Matchers{{Name: "a", Op: "=~", Value: "("}}}
	err = s.Validate()
	require.ErrorContains(t, err, "missing created_by")
	require.ErrorContains(t, err, "ends_at 3 not after starts_at 5")
	require.ErrorContains(t, err, "a=~")
	s = silences.Silence{V: 1, ID: "s", CreatedBy: "a", Matchers: silences.Matchers{{Name: "a", Value: "b"}}}
	require.ErrorContains(t, s.Validate(), "ends_at required unless until_resolved")
	s.UntilResolved = true
	require.NoError(t, s.Validate())
	require.NoError(t, (&silences.Silence{V: 1, ID: "s", Op: silences.OpExpire}).Validate())

	a := silences.Ack{V: 1}
	err = a.Validate()
	require.ErrorContains(t, err, "missing id")
	require.ErrorContains(t, err, "missing fingerprint")
	require.ErrorContains(t, err, "missing by")
}
