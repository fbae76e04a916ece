// Package window is the query service's model of metric window results as
// it serves them: series queries over stored windows (SeriesQuery, Series)
// and the live view of the latest window per label set (Latest). It does no
// I/O.
package window

import (
	"errors"
	"fmt"

	"github.com/streamwatch/streamwatch/pkg/metrics"
)

// ErrInvalidParam is wrapped by every *ParamError.
var ErrInvalidParam = errors.New("invalid parameter")

// ParamError names a request parameter that failed validation and why.
type ParamError struct {
	// Param is the parameter name as the client sent it (e.g. "group_by").
	Param string
	// Reason says what is wrong, for humans.
	Reason string
}

// Error returns "parameter <param>: <reason>".
func (e *ParamError) Error() string { return fmt.Sprintf("parameter %s: %s", e.Param, e.Reason) }

// Unwrap makes errors.Is(err, ErrInvalidParam) true.
func (e *ParamError) Unwrap() error { return ErrInvalidParam }

// InvalidParam returns a *ParamError with a formatted reason.
func InvalidParam(param, format string, args ...any) error {
	return &ParamError{Param: param, Reason: fmt.Sprintf(format, args...)}
}

// MaxNameLen is the longest metric or label name accepted, in bytes.
const MaxNameLen = 128

// ValidName reports whether s is a metric or label name the API accepts:
// ^[a-z_][a-z0-9_]*$ (metrics.IsName), at most MaxNameLen bytes. Only such
// names reach SQL or Redis keys.
func ValidName(s string) bool {
	return len(s) <= MaxNameLen && metrics.IsName(s)
}

// checkName returns a *ParamError for param when name is not ValidName.
func checkName(param, name string) error {
	switch {
	case name == "":
		return InvalidParam(param, "missing")
	case !ValidName(name):
		return InvalidParam(param, "%q is not a name (^[a-z_][a-z0-9_]*$, at most %d bytes)", name, MaxNameLen)
	}
	return nil
}

// CheckMetric returns a *ParamError for the parameter "metric" when name is
// not a valid metric name.
func CheckMetric(name string) error { return checkName("metric", name) }
