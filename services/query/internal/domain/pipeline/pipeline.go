// Package pipeline describes the health of the Kafka pipeline as the
// dashboard shows it: how far each consumer group is behind, and how many
// records went to the late-events and dead-letter topics.
package pipeline

// Health is a snapshot of the pipeline.
type Health struct {
	// Groups are the consumer groups with members, sorted by name.
	Groups []GroupLag
	// LateRecords is the number of records in events.late (end − start
	// offsets summed over partitions); 0 when the topic does not exist.
	LateRecords int64
	// DLQ has one entry per dead-letter topic (*.dlq), sorted by topic.
	DLQ []TopicRecords
	// GeneratedAt is when the snapshot was taken, ms since the epoch.
	GeneratedAt int64
}

// GroupLag is the lag of one consumer group.
type GroupLag struct {
	Group string
	// Total is the sum of Topics' lags, in records.
	Total int64
	// Topics has one entry per topic the group has offsets for, sorted by
	// topic.
	Topics []TopicLag
}

// TopicLag is a group's lag on one topic: end offsets − committed offsets,
// summed over partitions, in records.
type TopicLag struct {
	Topic string
	Lag   int64
}

// TopicRecords is the number of records a topic holds: end − start offsets
// summed over partitions.
type TopicRecords struct {
	Topic   string
	Records int64
}
