package enrichers

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/kafka"
)

// testKafkaConfig returns a Kafka configuration for the given brokers (none: nothing opened).
func testKafkaConfig(brokers []string) kafka.Config {
	c := kafka.DefaultConfig()
	c.Brokers = brokers
	c.Partitions = 3
	c.TransactionTimeout = 10 * time.Second
	return c
}

// startKafka starts an in-memory embedded broker with every topic of the pipeline.
func startKafka(t testing.TB) kafka.Config {
	t.Helper()
	k, err := kafka.StartEmbedded(kafka.EmbeddedConfig{Port: 0})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	cfg := testKafkaConfig(k.Addrs())
	cl, err := kgo.NewClient(cfg.ClientOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cfg.EnsureTopics(ctx, cl, cfg.AllTopics()); err != nil {
		t.Fatal(err)
	}
	return cfg
}
