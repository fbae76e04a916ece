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
	// TopicProfiles carries entity profiles (pkg/profiles): user, product
	// and service attributes keyed by "<type>/<id>", a null value deleting
	// one. It is log-compacted (TopicConfigs), so reading it from the start
	// rebuilds the latest profile of every entity.
	TopicProfiles = "profiles"
)

// DLQ returns the dead-letter topic of topic: topic + ".dlq".
func DLQ(topic string) string { return topic + ".dlq" }

// Topics lists every topic the suite uses, dead-letter topics included, so
// that a stack can create them up front.
func Topics() []string {
	base := []string{TopicEventsRaw, TopicEventsLate, TopicMetricsWindows, TopicAlerts, TopicRules, TopicSilences, TopicNotifications,
		TopicAcks, TopicNotifierDispatch, TopicNotifierDeliveries, TopicProfiles}
	all := append([]string{}, base...)
	for _, t := range base {
		all = append(all, DLQ(t))
	}
	return all
}

// TopicConfigs returns the Kafka topic configs that topic needs beyond the
// broker's defaults (cleanup.policy=compact for TopicProfiles), or nil.
// Stacks that create topics pass them on creation.
func TopicConfigs(topic string) map[string]string {
	if topic == TopicProfiles {
		return map[string]string{"cleanup.policy": "compact"}
	}
	return nil
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
	// MetaConsumer names the handler (= consumer group) that dead-lettered
	// a record, so the consumers of one topic can be told apart in its
	// dead-letter topic.
	MetaConsumer = "consumer"
)
