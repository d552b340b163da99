package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/threatcrumbs/crumbs/pkg/kafka"
)

func dlqCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "dlq",
		Short: "List what is dead-lettered on crumbs.dlq, and replay it through the stage it failed in",
	}
	var since time.Duration
	var f kafka.DLQFilter
	flags := func(cmd *cobra.Command) {
		fl := cmd.Flags()
		fl.DurationVar(&since, "since", 0, "only dead letters of the last D (e.g. 24h; 0: all)")
		fl.StringVar(&f.Reason, "reason", "", "only dead letters whose reason contains R (case-insensitive)")
		fl.StringVar(&f.Stage, "stage", "", "only dead letters of stage S (enrich, detect, sink)")
	}
	filter := func() kafka.DLQFilter {
		if since > 0 {
			f.Since = time.Now().Add(-since)
		}
		return f
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List dead letters: when, stage, original topic/partition@offset, replayed or not, reason",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := dlqConfig(cmd)
			if err != nil {
				return err
			}
			ctx, cancel := signalContext(cmd)
			defer cancel()
			ds, err := kafka.ListDeadLetters(ctx, cfg.Kafka, filter())
			if err != nil {
				return err
			}
			sort.SliceStable(ds, func(i, j int) bool { return ds[i].Time.Before(ds[j].Time) })
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TIME\tSTAGE\tFROM\tREPLAYED\tREASON")
			waiting := 0
			for _, d := range ds {
				rep := "no"
				if d.Replayed {
					rep = "yes"
				} else {
					waiting++
				}
				fmt.Fprintf(w, "%s\t%s\t%s/%d@%d\t%s\t%s\n", d.Time.UTC().Format(time.RFC3339), q(d.Stage),
					q(d.Topic), d.SrcPart, d.SrcOffset, rep, q(d.Reason))
			}
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d dead letters, %d not replayed\n", len(ds), waiting)
			return nil
		},
	}
	replay := &cobra.Command{
		Use:   "replay",
		Short: "Send dead letters back through the stage they failed in (each once, however often replay runs)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := dlqConfig(cmd)
			if err != nil {
				return err
			}
			ctx, cancel := signalContext(cmd)
			defer cancel()
			res, err := kafka.ReplayDeadLetters(ctx, cfg.Kafka, filter())
			if err != nil {
				return err
			}
			topics := make([]string, 0, len(res.ByTopic))
			for t := range res.ByTopic {
				topics = append(topics, t)
			}
			sort.Strings(topics)
			var to []string
			for _, t := range topics {
				to = append(to, q(t)+": "+strconv.Itoa(res.ByTopic[t]))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "replayed %d dead letters (%s); %d selected were replayed before\n",
				res.Replayed, strings.Join(to, ", "), res.AlreadyReplayed)
			return nil
		},
	}
	flags(list)
	flags(replay)
	c.AddCommand(list, replay)
	return c
}

// dlqConfig loads the configuration, its Kafka part as the dlq-replay role; without brokers it
// talks to `crumbs up`'s embedded one.
func dlqConfig(cmd *cobra.Command) (*Config, error) {
	cfg, err := loadConfig(cmd)
	if err != nil {
		return nil, err
	}
	if cfg.Kafka, err = roleKafka(cfg, kafka.RoleDLQReplay, nil); err != nil {
		return nil, err
	}
	return cfg, nil
}
