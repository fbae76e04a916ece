package events

// Enrichment holds the attributes a stream-table join adds to an event
// inside the aggregator (services/aggregator/internal/domain/join) before
// it is windowed: the latest profile of its user, product and service, and
// the country of an access log's client IP. It never travels on a topic
// (Event.Enriched is not serialized). An empty field means "unknown".
type Enrichment struct {
	// UserSegment, UserPlan and UserCountry come from the profile of
	// Event.UserID (metric fields user.segment, user.plan, user.country).
	UserSegment string
	UserPlan    string
	UserCountry string
	// ProductCategory comes from the profile of Event.ProductID
	// (product.category).
	ProductCategory string
	// ServiceTeam and ServiceTier come from the profile of Event.Service
	// (service.team, service.tier).
	ServiceTeam string
	ServiceTier string
	// ClientCountry is the ISO 3166-1 alpha-2 country of Event.ClientIP from
	// the IP-range table (client.country).
	ClientCountry string
}
