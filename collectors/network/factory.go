package network

import (
	"context"

	"github.com/threatcrumbs/crumbs/collectors"
	"github.com/threatcrumbs/crumbs/schemas"
)

// Factory declares the network collector to the collect stage and crumbs doctor.
func Factory() collectors.Factory {
	return collectors.NewFactory(schemas.KindNetwork, DefaultConfig, func(c Config) bool { return c.Enabled },
		func(cfg Config, deps collectors.Deps) (collectors.Collector, error) {
			c, err := New(cfg, deps.Host, deps.Log, WithHostRoot(deps.HostRoot))
			if err != nil {
				return nil, err
			}
			return running{c}, nil
		})
}

// running is the collector as the collect stage runs it.
type running struct{ *Collector }

func (r running) Run(ctx context.Context, emit func(any)) error {
	return r.Collector.Run(ctx, func(e *schemas.NetworkEvent) { emit(e) })
}

func (r running) KernelDrops() uint64 { return r.Stats().KernelDrops }
