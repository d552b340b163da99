package kafka

import (
	"fmt"
	"os"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Embedded is the single-host broker `crumbs up` runs when no brokers are configured: franz-go's
// kfake, persisted to a data directory so a restart keeps topics, offsets and transactions.
type Embedded struct {
	cluster *kfake.Cluster
}

// StartEmbedded starts the embedded broker. With an empty DataDir it keeps everything in
// memory (tests).
func StartEmbedded(cfg EmbeddedConfig, extra ...kfake.Opt) (*Embedded, error) {
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(cfg.Port)}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("embedded kafka: create data dir: %w", err)
		}
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	opts = append(opts, extra...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("embedded kafka: start on port %d: %w", cfg.Port, err)
	}
	return &Embedded{cluster: c}, nil
}

// Addrs returns the broker addresses to use as seeds.
func (e *Embedded) Addrs() []string { return e.cluster.ListenAddrs() }

// Cluster returns the kfake cluster, for tests that inject faults.
func (e *Embedded) Cluster() *kfake.Cluster { return e.cluster }

// Close stops the broker, flushing its data directory.
func (e *Embedded) Close() { e.cluster.Close() }
