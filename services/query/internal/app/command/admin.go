package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/rules"
	"github.com/streamwatch/streamwatch/pkg/silences"
)

// ErrInvalidInput is wrapped when an admin request is invalid (the API
// answers 400 with the message).
var ErrInvalidInput = errors.New("invalid input")

// RecordPublisher publishes one record to a topic.
type RecordPublisher interface {
	// PublishRecord returns nil once the broker has the record.
	PublishRecord(ctx context.Context, topic, key, schema string, payload []byte) error
}

// AdminStore keeps the rules and silences projections.
type AdminStore interface {
	InsertRuleChange(ctx context.Context, id string, deleted bool, atMs int64, record []byte) error
	InsertSilence(ctx context.Context, s silences.Silence, record []byte) error
}

// AdminHandler turns admin requests into records on the rules, silences
// and acks topics (the detector and the notifier build their
// configuration from them), and projects those topics back for reading.
// Safe for concurrent use.
type AdminHandler struct {
	pub   RecordPublisher
	store AdminStore
	now   func() time.Time
}

// NewAdminHandler returns a handler publishing with pub (nil: publishing
// fails) and projecting into store.
func NewAdminHandler(pub RecordPublisher, store AdminStore) AdminHandler {
	return AdminHandler{pub: pub, store: store, now: time.Now}
}

var errNoPublisher = errors.New("admin publishing is not configured")

// UpsertRule validates rule (the JSON of a pkg/rules.Rule, whose name must
// be id) exactly as the detector will (rules.DecodeChange compiles it)
// and publishes the upsert. Errors wrap ErrInvalidInput for a bad rule.
func (h AdminHandler) UpsertRule(ctx context.Context, id string, rule json.RawMessage) (rules.Change, error) {
	at := h.now().UnixMilli()
	payload, err := json.Marshal(struct {
		V    int             `json:"v"`
		Op   string          `json:"op"`
		ID   string          `json:"id"`
		Rule json.RawMessage `json:"rule"`
		At   int64           `json:"at"`
	}{1, rules.OpUpsert, id, rule, at})
	if err != nil {
		return rules.Change{}, fmt.Errorf("%w: rule is not JSON: %w", ErrInvalidInput, err)
	}
	c, err := rules.DecodeChange(payload)
	if err != nil {
		return rules.Change{}, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	return c, h.publish(ctx, messaging.TopicRules, id, rules.ChangeSchema, payload)
}

// DeleteRule publishes the delete of rule id.
func (h AdminHandler) DeleteRule(ctx context.Context, id string) (rules.Change, error) {
	c := rules.Change{V: 1, Op: rules.OpDelete, ID: id, At: h.now().UnixMilli()}
	payload, err := rules.EncodeChange(c)
	if err != nil {
		return c, err
	}
	return c, h.publish(ctx, messaging.TopicRules, id, rules.ChangeSchema, payload)
}

// UpsertSilence sets V, Op (upsert) and UpdatedAt (now), validates s as
// the notifier will and publishes it.
func (h AdminHandler) UpsertSilence(ctx context.Context, s silences.Silence) (silences.Silence, error) {
	s.V, s.Op, s.UpdatedAt = 1, silences.OpUpsert, h.now().UnixMilli()
	if err := s.Validate(); err != nil {
		return s, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	return s, h.publishJSON(ctx, messaging.TopicSilences, s.ID, silences.Schema, s)
}

// ExpireSilence publishes the expiry of silence id, now.
func (h AdminHandler) ExpireSilence(ctx context.Context, id string) (silences.Silence, error) {
	s := silences.Silence{V: 1, ID: id, Op: silences.OpExpire, UpdatedAt: h.now().UnixMilli()}
	if err := s.Validate(); err != nil {
		return s, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	return s, h.publishJSON(ctx, messaging.TopicSilences, id, silences.Schema, s)
}

// Acknowledge sets V and At (now), validates a and publishes it on the
// acks topic, keyed by fingerprint.
func (h AdminHandler) Acknowledge(ctx context.Context, a silences.Ack) (silences.Ack, error) {
	a.V, a.At = 1, h.now().UnixMilli()
	if err := a.Validate(); err != nil {
		return a, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	return a, h.publishJSON(ctx, messaging.TopicAcks, a.Fingerprint, silences.AckSchema, a)
}

func (h AdminHandler) publishJSON(ctx context.Context, topic, key, schema string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s record: %w", topic, err)
	}
	return h.publish(ctx, topic, key, schema, b)
}

func (h AdminHandler) publish(ctx context.Context, topic, key, schema string, payload []byte) error {
	if h.pub == nil {
		return errNoPublisher
	}
	return h.pub.PublishRecord(ctx, topic, key, schema, payload)
}

// ProjectRuleChange stores one rules topic record. A record that does not
// decode wraps rules.ErrBadChange (poison).
func (h AdminHandler) ProjectRuleChange(ctx context.Context, payload []byte) error {
	c, err := rules.DecodeChange(payload)
	if err != nil {
		return err
	}
	record := payload
	if c.Op == rules.OpUpsert {
		if record, err = json.Marshal(c.Rule); err != nil {
			return fmt.Errorf("encode rule %s: %w", c.ID, err)
		}
	}
	return h.store.InsertRuleChange(ctx, c.ID, c.Op == rules.OpDelete, c.At, record)
}

// ErrBadSilence is wrapped when a silences record is poison.
var ErrBadSilence = errors.New("invalid silence record")

// ProjectSilence stores one silences topic record (an expiry keeps the
// silence's last upsert fields but records op expire).
func (h AdminHandler) ProjectSilence(ctx context.Context, payload []byte) error {
	var s silences.Silence
	if err := json.Unmarshal(payload, &s); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSilence, err)
	}
	if err := s.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSilence, err)
	}
	return h.store.InsertSilence(ctx, s, payload)
}
