package rules

import (
	"encoding/json"
	"errors"
	"fmt"
)

// ChangeSchema is the schema metadata of records on the rules topic.
const ChangeSchema = "rules.change.v1"

// Change operations.
const (
	OpUpsert = "upsert"
	OpDelete = "delete"
)

// Change is one record of the rules topic: a rule created or updated
// (upsert, Rule set) or deleted (delete, Rule nil), keyed by rule id (the
// rule name). The query service's admin API publishes it; every detector
// instance reads the whole topic. The latest change per id wins; rules
// from the topic override the rules file for the ids they name, and a
// delete of a file rule disables it.
//
// JSON: {"v":1,"op":"upsert","id":"high_error_rate","rule":{...Rule...},"at":1763719200000}
type Change struct {
	V  int    `json:"v"`
	Op string `json:"op"`
	ID string `json:"id"`
	// Rule is the rule (JSON field names as the YAML keys); its name must
	// equal ID.
	Rule *Rule `json:"rule,omitempty"`
	// At is when the change was made, ms (informational).
	At int64 `json:"at,omitempty"`
}

// ErrBadChange is wrapped by DecodeChange errors: the record is poison.
var ErrBadChange = errors.New("invalid rule change")

// DecodeChange decodes and validates a rules topic record; an upserted
// rule is compiled.
func DecodeChange(payload []byte) (Change, error) {
	var c Change
	if err := json.Unmarshal(payload, &c); err != nil {
		return Change{}, fmt.Errorf("%w: %w", ErrBadChange, err)
	}
	switch {
	case c.V != 1:
		return Change{}, fmt.Errorf("%w: version %d (this build reads 1)", ErrBadChange, c.V)
	case c.ID == "":
		return Change{}, fmt.Errorf("%w: missing id", ErrBadChange)
	case c.Op == OpDelete:
		c.Rule = nil
	case c.Op == OpUpsert:
		if c.Rule == nil {
			return Change{}, fmt.Errorf("%w: upsert of %q without a rule", ErrBadChange, c.ID)
		}
		if c.Rule.Name != c.ID {
			return Change{}, fmt.Errorf("%w: rule name %q differs from id %q", ErrBadChange, c.Rule.Name, c.ID)
		}
		if err := c.Rule.Compile(); err != nil {
			return Change{}, fmt.Errorf("%w: rule %q: %w", ErrBadChange, c.ID, err)
		}
	default:
		return Change{}, fmt.Errorf("%w: unknown op %q (upsert or delete)", ErrBadChange, c.Op)
	}
	return c, nil
}

// EncodeChange encodes a change record.
func EncodeChange(c Change) ([]byte, error) {
	c.V = 1
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode rule change %q: %w", c.ID, err)
	}
	return b, nil
}

// Merge returns the file rules overridden by topic changes: an upsert
// replaces (or adds) the rule with its id, a delete removes it. File rules
// keep their order; topic-only rules follow, sorted by id.
func Merge(file []Rule, topic map[string]*Rule) []Rule {
	out := make([]Rule, 0, len(file)+len(topic))
	seen := map[string]bool{}
	for _, r := range file {
		seen[r.Name] = true
		if t, ok := topic[r.Name]; ok {
			if t != nil {
				out = append(out, *t)
			}
			continue
		}
		out = append(out, r)
	}
	var extra []string
	for id, r := range topic {
		if !seen[id] && r != nil {
			extra = append(extra, id)
		}
	}
	sortStrings(extra)
	for _, id := range extra {
		out = append(out, *topic[id])
	}
	return out
}
