package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/threatcrumbs/crumbs/enrichers"
)

func contextCmd() *cobra.Command {
	c := &cobra.Command{Use: "context", Short: "Publish context records (inventory, changes, deploys, accounts)"}
	var kind, file string
	pub := &cobra.Command{
		Use:   "publish --kind KIND -f FILE",
		Short: "Publish context records from a JSON or YAML file (one record or a list); all or nothing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			if file == "" {
				return &exitCode{2, errors.New("-f FILE is required")}
			}
			data, err := os.ReadFile(file)
			if err != nil {
				return &exitCode{2, fmt.Errorf("read %s: %w", file, err)}
			}
			recs, err := enrichers.ParseContext(kind, file, data)
			if err != nil {
				return &exitCode{2, err}
			}
			if len(cfg.Kafka.Brokers) == 0 {
				cfg.Kafka.Brokers = []string{fmt.Sprintf("127.0.0.1:%d", cfg.Kafka.Embedded.Port)}
			}
			rt, err := newRuntime(cfg)
			if err != nil {
				return err
			}
			ctx, cancel := signalContext(cmd)
			defer cancel()
			if err := rt.ensureTopics(ctx); err != nil {
				return err
			}
			if err := enrichers.PublishContext(ctx, cfg.Kafka, rt.serde, recs); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "published %d %s record(s) to %s\n", len(recs), kind, cfg.Kafka.Topics().Context(kind))
			return nil
		},
	}
	pub.Flags().StringVar(&kind, "kind", "", "kind of the records: inventory")
	pub.Flags().StringVarP(&file, "file", "f", "", "JSON or YAML file with one record or a list")
	_ = pub.MarkFlagRequired("kind")
	c.AddCommand(pub)
	return c
}
