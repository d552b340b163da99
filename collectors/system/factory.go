package system

import (
	"context"

	"github.com/threatcrumbs/crumbs/collectors"
	"github.com/threatcrumbs/crumbs/schemas"
)

// Factory declares the system collector to the collect stage and crumbs doctor. It takes
// per-cgroup network totals from a collector built before it that gives them (the network
// collector), and reads /proc/net/tcp without one.
func Factory() collectors.Factory {
	return collectors.NewFactory(schemas.KindSystem, DefaultConfig, func(c Config) bool { return c.Enabled },
		func(cfg Config, deps collectors.Deps) (collectors.Collector, error) {
			opts := []Option{WithHostRoot(deps.HostRoot)}
			for _, b := range deps.Built {
				if n, ok := b.(collectors.NetTotals); ok {
					opts = append(opts, WithNetTotals(n))
				}
			}
			c, err := New(cfg, deps.Host, deps.Log, opts...)
			if err != nil {
				return nil, err
			}
			return running{c}, nil
		})
}

// running is the collector as the collect stage runs it.
type running struct{ *Collector }

func (r running) Run(ctx context.Context, emit func(any)) error {
	return r.Collector.Run(ctx, func(e *schemas.SystemEvent) { emit(e) })
}

// KernelDrops is 0: the collector has no kernel programs.
func (running) KernelDrops() uint64 { return 0 }
