package metrics

import (
	"strings"

	"github.com/streamwatch/streamwatch/pkg/events"
)

// EnrichedFields lists the string fields that the aggregator's stream-table
// join fills in (events.Enrichment) before windowing: profile attributes of
// the event's user, product and service, and the country of an access
// log's client IP. Definitions may group by and filter on them; an event
// whose profile is unknown has "" in them. As labels they are named by
// LabelName (user.segment becomes the label user_segment). They exist on the stream only:
// the batch layer does not compile definitions that use them (docs/join.md).
var EnrichedFields = []string{
	"user.segment", "user.plan", "user.country",
	"product.category",
	"service.team", "service.tier",
	"client.country",
}

// LabelName returns the label name a group-by field becomes in results:
// the field name with '.' replaced by '_' ("user.segment" gives
// "user_segment"), since label names match NameRe.
func LabelName(field string) string { return strings.ReplaceAll(field, ".", "_") }

// IsEnrichedField reports whether name is one of EnrichedFields.
func IsEnrichedField(name string) bool {
	_, ok := enrichedField(name)
	return ok
}

func enrichedField(name string) (func(*events.Event) string, bool) {
	switch name {
	case "user.segment":
		return func(e *events.Event) string { return e.Enriched.UserSegment }, true
	case "user.plan":
		return func(e *events.Event) string { return e.Enriched.UserPlan }, true
	case "user.country":
		return func(e *events.Event) string { return e.Enriched.UserCountry }, true
	case "product.category":
		return func(e *events.Event) string { return e.Enriched.ProductCategory }, true
	case "service.team":
		return func(e *events.Event) string { return e.Enriched.ServiceTeam }, true
	case "service.tier":
		return func(e *events.Event) string { return e.Enriched.ServiceTier }, true
	case "client.country":
		return func(e *events.Event) string { return e.Enriched.ClientCountry }, true
	}
	return nil, false
}

// UsesEnrichedFields reports whether the definition groups, filters,
// counts distinct or ranks by an enriched field, i.e. needs the join.
func (d *Definition) UsesEnrichedFields() bool {
	for _, g := range d.GroupBy {
		if IsEnrichedField(g) {
			return true
		}
	}
	for _, p := range d.Where {
		if IsEnrichedField(p.Field) {
			return true
		}
	}
	return IsEnrichedField(d.Distinct) || IsEnrichedField(d.TopK.Field)
}
