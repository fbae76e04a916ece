package app

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/streamwatch/streamwatch/pkg/rules"
)

// Rules is the detector's live rule set: the rules file overridden by the
// changes read from the rules topic. Set is lock-free and safe for
// concurrent use; Apply serialises changes.
type Rules struct {
	mu    sync.Mutex
	file  []rules.Rule
	topic map[string]*rules.Rule
	set   atomic.Pointer[rules.Set]
}

// NewRules returns the rule set of the rules file (already parsed).
func NewRules(file []rules.Rule) (*Rules, error) {
	s, err := rules.NewSet(file)
	if err != nil {
		return nil, fmt.Errorf("rules file: %w", err)
	}
	r := &Rules{file: file, topic: map[string]*rules.Rule{}}
	r.set.Store(s)
	return r, nil
}

// Set returns the current rule set.
func (r *Rules) Set() *rules.Set { return r.set.Load() }

// Apply applies one change from the rules topic: later changes of an id
// replace earlier ones; a delete of a file rule disables it. A change that
// would make the set invalid is refused with an error and changes nothing.
func (r *Rules) Apply(c rules.Change) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev, had := r.topic[c.ID]
	r.topic[c.ID] = c.Rule
	s, err := rules.NewSet(rules.Merge(r.file, r.topic))
	if err != nil {
		if had {
			r.topic[c.ID] = prev
		} else {
			delete(r.topic, c.ID)
		}
		return fmt.Errorf("apply rule change %q: %w", c.ID, err)
	}
	r.set.Store(s)
	return nil
}
