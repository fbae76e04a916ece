package query

import (
	"context"
	"encoding/json"
)

// AdminReader reads the rules and silences projections.
type AdminReader interface {
	// Rules returns the latest record of every live rule, or of id only.
	Rules(ctx context.Context, id string) ([]json.RawMessage, error)
	// Silences returns the latest record of every silence, or of id only.
	Silences(ctx context.Context, id string) ([]json.RawMessage, error)
}
