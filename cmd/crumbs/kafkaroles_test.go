package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestEmbeddedBroker: the commands take role credentials from the files only when they talk to
// this host's embedded broker.
func TestEmbeddedBroker(t *testing.T) {
	tests := []struct {
		brokers []string
		want    bool
	}{
		{nil, true},
		{[]string{"127.0.0.1:9092"}, true},
		{[]string{"localhost:9092"}, true},
		{[]string{"[::1]:9092"}, true},
		{[]string{"127.0.0.1:9093"}, false},
		{[]string{"10.0.0.5:9092"}, false},
		{[]string{"kafka-1:9092"}, false},
		{[]string{"127.0.0.1:9092", "127.0.0.1:9093"}, false},
	}
	for _, tc := range tests {
		c := defaultConfig()
		c.Kafka.Brokers = tc.brokers
		if diff := cmp.Diff(tc.want, c.embeddedBroker()); diff != "" {
			t.Errorf("brokers %v: embedded (-want +got):\n%s", tc.brokers, diff)
		}
	}
}
