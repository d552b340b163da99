package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	crumbscollectors "github.com/threatcrumbs/crumbs/collectors"
	"github.com/threatcrumbs/crumbs/collectors/synthetic"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/schemas"
)

func loadgenCmd() *cobra.Command {
	var sc synthetic.Config
	c := &cobra.Command{
		Use:   "loadgen",
		Short: "Produce synthetic raw process events to Kafka at a target rate (load tests)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			if sc.Count == 0 && sc.Duration == 0 {
				sc.Duration = 10 * time.Second
			}
			rt, err := newRuntime(cfg)
			if err != nil {
				return err
			}
			ctx, cancel := signalContext(cmd)
			defer cancel()
			// Synthetic raw events, as a collector would produce them.
			kcfg, err := rt.kafka(kafka.RoleCollector)
			if err != nil {
				return err
			}
			if err := rt.ensureTopics(ctx, kafka.RoleCollector); err != nil {
				return err
			}
			counters := rt.stageCounters("loadgen", "")
			pub, err := crumbscollectors.NewPublisher(kcfg, rt.serde, counters)
			if err != nil {
				return err
			}
			start := time.Now()
			n, runErr := synthetic.New(sc).Run(ctx, func(ev *schemas.ProcessEvent) error {
				return pub.Publish(ctx, schemas.KindProcess, schemas.ProcessSchema, ev.Host.ID, ev)
			})
			fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer fcancel()
			closeErr := pub.Close(fctx)
			el := time.Since(start)
			s := counters.Snapshot()
			failed, lastErr := pub.Failed()
			fmt.Fprintf(cmd.OutOrStdout(), "loadgen: %d events in %s (%.0f/s), %d acknowledged, %d failed\n",
				n, el.Round(time.Millisecond), float64(n)/el.Seconds(), s.Out, failed)
			if failed > 0 {
				return fmt.Errorf("loadgen: %d events not delivered; last error: %s", failed, lastErr)
			}
			if runErr != nil {
				return runErr
			}
			return closeErr
		},
	}
	f := c.Flags()
	f.IntVar(&sc.Rate, "rate", 10000, "events per second (0: as fast as possible)")
	f.IntVar(&sc.Count, "count", 0, "events in all (0: until --duration)")
	f.DurationVar(&sc.Duration, "duration", 0, "how long to run (default 10s when --count is 0)")
	f.IntVar(&sc.Hosts, "hosts", 10, "distinct synthetic hosts")
	f.IntVar(&sc.SuspiciousEach, "suspicious-every", 0, "make every n-th event a shell started by java (0: never)")
	f.Uint64Var(&sc.Seed, "seed", 1, "random seed")
	return c
}
