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
	var mix string
	c := &cobra.Command{
		Use:   "loadgen",
		Short: "Produce synthetic raw events of every kind to Kafka at a target rate (load tests)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			if sc.Count == 0 && sc.Duration == 0 {
				sc.Duration = 10 * time.Second
			}
			if mix != "" {
				if sc.Mix, err = synthetic.ParseMix(mix); err != nil {
					return &exitCode{2, fmt.Errorf("--mix: %w", err)}
				}
			}
			gen, err := synthetic.New(sc)
			if err != nil {
				return &exitCode{2, fmt.Errorf("--mix: %w", err)}
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
			n, runErr := gen.Run(ctx, func(k *schemas.Kind, ev schemas.Record) error {
				host, _ := ev.Field("host.id")
				hostID, _ := host.(string)
				return pub.Publish(ctx, k.Name, k.Codec.Schema, hostID, ev)
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
	f.IntVar(&sc.SuspiciousEach, "suspicious-every", 0, "make every n-th process event a shell started by java (0: never)")
	f.StringVar(&mix, "mix", "", "each kind's share of the events, kind=share,... (e.g. process=1 for process events only); default a busy server's: network=45,process=25,file=15,system=10,identity=5")
	f.Uint64Var(&sc.Seed, "seed", 1, "random seed")
	return c
}
