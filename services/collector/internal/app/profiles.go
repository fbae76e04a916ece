package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/profiles"
)

// ProfileTopic is the topic profile records go to (log-compacted).
const ProfileTopic = messaging.TopicProfiles

// ProfileRecord is one record for the profiles topic: its key
// ("<type>/<id>") and value (profiles.Encode), or a nil Value for a
// tombstone that deletes the profile.
type ProfileRecord struct {
	Key   string
	Value []byte
}

// ProfilePublisher publishes profile records in order and returns once the
// broker acknowledged all of them. On error some may have been written; a
// retried request rewrites the same latest values, so compaction keeps the
// right one. Implementations are safe for concurrent use.
type ProfilePublisher interface {
	PublishProfiles(ctx context.Context, recs []ProfileRecord) error
}

// ProfilesHandler holds the profile use cases: put one profile, delete one,
// and ingest NDJSON in bulk. Safe for concurrent use.
type ProfilesHandler struct {
	pub ProfilePublisher
	now func() time.Time
}

// NewProfiles returns the profile use cases publishing through pub. now is
// the clock for UpdatedAt; nil means time.Now.
func NewProfiles(pub ProfilePublisher, now func() time.Time) *ProfilesHandler {
	if now == nil {
		now = time.Now
	}
	return &ProfilesHandler{pub: pub, now: now}
}

// Put validates body (the attributes of a profile of type typ and id id;
// see profiles.ParseInput) and publishes it as the profile's latest
// version. It returns the published profile.
//
// Errors: one wrapping profiles.ErrInvalid (a *profiles.FieldError or a
// join of them) for an unknown type, a bad id or bad attributes; one
// wrapping ErrUnavailable when the broker did not acknowledge; one wrapping
// ErrBody when the body could not be read.
func (h *ProfilesHandler) Put(ctx context.Context, typ profiles.Type, id string, body io.Reader) (profiles.Profile, error) {
	data, err := io.ReadAll(body)
	if err != nil {
		return profiles.Profile{}, fmt.Errorf("%w: %w", ErrBody, err)
	}
	if err := checkKey(typ, id); err != nil {
		return profiles.Profile{}, err
	}
	p, err := profiles.ParseInput(data, typ, id, h.now())
	if err != nil {
		return profiles.Profile{}, err
	}
	v, err := profiles.Encode(&p)
	if err != nil {
		return profiles.Profile{}, err
	}
	if err := h.publish(ctx, []ProfileRecord{{Key: p.Key(), Value: v}}); err != nil {
		return profiles.Profile{}, err
	}
	return p, nil
}

// Delete publishes a tombstone for the profile (typ, id): joins see no
// attributes for it afterwards. Deleting an unknown profile is not an
// error (the tombstone is harmless). Errors as Put.
func (h *ProfilesHandler) Delete(ctx context.Context, typ profiles.Type, id string) error {
	if err := checkKey(typ, id); err != nil {
		return err
	}
	return h.publish(ctx, []ProfileRecord{{Key: profiles.Key(typ, id)}})
}

// checkKey validates a type and id from a request path.
func checkKey(typ profiles.Type, id string) error {
	p := profiles.Profile{V: profiles.SchemaVersion, Type: typ, ID: id}
	return p.Validate()
}

// Ingest reads NDJSON profiles (one object per line with "type" and "id"
// and the attributes; blank lines are skipped but counted), validates each
// line, and publishes the valid ones in input order. Rejections carry the
// 0-based line index and the reason naming the field; a Result with
// Accepted == 0 and rejections means nothing was published.
//
// Errors: a *RequestError for a body without lines ("no profiles"); one
// wrapping ErrUnavailable when publishing failed (nothing counts as
// accepted); one wrapping ErrBody when the body could not be read.
func (h *ProfilesHandler) Ingest(ctx context.Context, body io.Reader) (Result, error) {
	data, err := io.ReadAll(body)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrBody, err)
	}
	var res Result
	var recs []ProfileRecord
	now := h.now()
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		p, err := profiles.ParseInput(line, "", "", now)
		if err == nil {
			var v []byte
			if v, err = profiles.Encode(&p); err == nil {
				recs = append(recs, ProfileRecord{Key: p.Key(), Value: v})
				continue
			}
		}
		res.Rejected = append(res.Rejected, Rejection{Position: int64(i), Err: err})
	}
	if len(recs) == 0 && len(res.Rejected) == 0 {
		return Result{}, requestErrorf("no profiles")
	}
	if len(recs) > 0 {
		if err := h.publish(ctx, recs); err != nil {
			return Result{}, err
		}
	}
	res.Accepted = len(recs)
	return res, nil
}

func (h *ProfilesHandler) publish(ctx context.Context, recs []ProfileRecord) error {
	if err := h.pub.PublishProfiles(ctx, recs); err != nil {
		return fmt.Errorf("%w: publish %d profiles to %s: %w", ErrUnavailable, len(recs), ProfileTopic, err)
	}
	return nil
}

// IsInvalidProfile reports whether err is a validation error of a profile
// (a 400 for the client).
func IsInvalidProfile(err error) bool { return errors.Is(err, profiles.ErrInvalid) }
