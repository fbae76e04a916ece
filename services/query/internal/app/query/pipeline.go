package query

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/streamwatch/streamwatch/services/query/internal/domain/pipeline"
)

// ErrPipelineUnavailable is wrapped when the pipeline's health cannot be
// read (no broker configured or the broker failed).
var ErrPipelineUnavailable = errors.New("pipeline health not available")

// PipelineReader reads the pipeline's health from the broker.
type PipelineReader interface {
	// PipelineHealth returns a fresh snapshot; GeneratedAt may be left 0.
	PipelineHealth(ctx context.Context) (pipeline.Health, error)
}

// PipelineHandler answers pipeline health, caching each snapshot for a TTL
// so that many dashboards cause at most one broker round per TTL. Safe for
// concurrent use; concurrent callers on an expired cache wait for one read.
type PipelineHandler struct {
	reader PipelineReader
	ttl    time.Duration
	now    func() time.Time

	cache *pipelineCache // shared by copies of the handler
}

// pipelineCache is the last snapshot and when it was read.
type pipelineCache struct {
	mu     sync.Mutex
	health *pipeline.Health
	at     time.Time
}

// NewPipelineHandler returns a handler over reader (nil: every call fails
// with ErrPipelineUnavailable) caching answers for ttl (<= 0: no cache).
func NewPipelineHandler(reader PipelineReader, ttl time.Duration) PipelineHandler {
	return PipelineHandler{reader: reader, ttl: ttl, now: time.Now, cache: &pipelineCache{}}
}

// WithClock returns h reading time from now (tests).
func (h PipelineHandler) WithClock(now func() time.Time) PipelineHandler {
	h.now = now
	return h
}

// Handle returns the cached snapshot when younger than the TTL, else a new
// one. Errors are not cached and wrap ErrPipelineUnavailable.
func (h PipelineHandler) Handle(ctx context.Context) (pipeline.Health, error) {
	if h.reader == nil || h.cache == nil {
		return pipeline.Health{}, fmt.Errorf("%w: no broker configured", ErrPipelineUnavailable)
	}
	c := h.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	now := h.now()
	if c.health != nil && now.Sub(c.at) < h.ttl {
		return *c.health, nil
	}
	health, err := h.reader.PipelineHealth(ctx)
	if err != nil {
		return pipeline.Health{}, fmt.Errorf("%w: %w", ErrPipelineUnavailable, err)
	}
	if health.GeneratedAt == 0 {
		health.GeneratedAt = now.UnixMilli()
	}
	c.health, c.at = &health, now
	return health, nil
}
