// Package messaging wires Watermill to Kafka for every Streamwatch service:
// topic names, publisher and subscriber factories, the batch publisher that
// packs events into one record per partition, and the router with the
// project's middleware (poison records to dead-letter topics, retries).
package messaging

// Topic names. Roles are fixed by ARCHITECTURE.md; names may change.
const (
	TopicEventsRaw      = "events.raw"
	TopicEventsLate     = "events.late"
	TopicMetricsWindows = "metrics.windows"
	TopicAlerts         = "alerts"
	TopicRules          = "rules"
	TopicSilences       = "silences"
	TopicNotifications  = "notifications"
	// TopicAcks carries alert acknowledgements (pkg/silences.Ack), keyed by
	// alert fingerprint; the query service's admin API publishes them.
	TopicAcks = "acks"
	// TopicNotifierDispatch is the notifier's internal, totally ordered
	// input log: alerts, silences and acks forwarded to partition 0.
	TopicNotifierDispatch = "notifier.dispatch"
	// TopicNotifierDeliveries is the notifier's internal queue of due
	// notifications, one record per receiver integration, keyed by it.
	TopicNotifierDeliveries = "notifier.deliveries"
)

// DLQ returns the dead-letter topic of topic: topic + ".dlq".
func DLQ(topic string) string { return topic + ".dlq" }

// Topics lists every topic the suite uses, dead-letter topics included, so
// that a stack can create them up front.
func Topics() []string {
	base := []string{TopicEventsRaw, TopicEventsLate, TopicMetricsWindows, TopicAlerts, TopicRules, TopicSilences, TopicNotifications,
		TopicAcks, TopicNotifierDispatch, TopicNotifierDeliveries}
	all := append([]string{}, base...)
	for _, t := range base {
		all = append(all, DLQ(t))
	}
	return all
}

// Metadata keys set on Watermill messages.
const (
	// MetaSchema names the payload schema (e.g. events.batch.v1).
	MetaSchema = "schema"
	// MetaKey is the Kafka record key.
	MetaKey = "key"
	// MetaPartition, when set, is the target partition (decimal); it wins over
	// the key hash.
	MetaPartition = "partition"
	// MetaError is the error that sent a record to a dead-letter topic.
	MetaError = "error"
	// MetaSourceTopic, MetaSourcePartition and MetaSourceOffset locate the
	// original of a dead-lettered record.
	MetaSourceTopic     = "source_topic"
	MetaSourcePartition = "source_partition"
	MetaSourceOffset    = "source_offset"
)
