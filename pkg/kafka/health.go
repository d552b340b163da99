package kafka

// Health is the topic of collectors' health events (crumbs.HealthEvent: events lost and
// why), keyed by host id.
func (t Topics) Health() string { return t.Prefix + ".health" }

// HealthTopics returns the spec of the health topic, for EnsureTopics.
func (c Config) HealthTopics() []TopicSpec {
	return []TopicSpec{{Name: c.Topics().Health()}}
}
