package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/threatcrumbs/crumbs/enrichers"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/yamlsafe"
)

func contextCmd() *cobra.Command {
	c := &cobra.Command{Use: "context", Short: "Publish and delete context records (inventory, changes, deploys, accounts)"}
	c.AddCommand(contextPublishCmd(), contextDeleteCmd())
	return c
}

func contextPublishCmd() *cobra.Command {
	var kind, file string
	pub := &cobra.Command{
		Use:   "publish --kind KIND -f FILE",
		Short: "Publish context records from a JSON or YAML file (one record or a list); all or nothing",
		Long: "Publish context records from a JSON or YAML file (one record or a list). Every record is\n" +
			"validated first, services against the inventory already published and the inventory\n" +
			"records of the same file; on any problem nothing is published and the command exits 2.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			if file == "" {
				return &exitCode{2, errors.New("-f FILE is required")}
			}
			data, err := readBounded(file, yamlsafe.DefaultLimits().MaxBytes)
			if err != nil {
				return &exitCode{2, fmt.Errorf("read %s: %w", file, err)}
			}
			// Refuse what can be refused before connecting to Kafka.
			if _, err := enrichers.ParseContext(data, enrichers.ParseOptions{Kind: kind, Source: file}); err != nil {
				return &exitCode{2, err}
			}
			rt, ctx, cancel, err := contextRuntime(cmd, cfg)
			if err != nil {
				return err
			}
			defer cancel()
			tables, err := enrichers.ReadContext(ctx, cfg.Kafka, rt.serde, rt.log)
			if err != nil {
				return err
			}
			recs, err := enrichers.ParseContext(data, enrichers.ParseOptions{Kind: kind, Source: file, Origin: "cli", Known: tables.KnownService})
			if err != nil {
				return &exitCode{2, err}
			}
			if err := enrichers.PublishContext(ctx, cfg.Kafka, rt.serde, recs); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "published %d %s record(s) to %s\n", len(recs), kind, cfg.Kafka.Topics().Context(kind))
			return nil
		},
	}
	pub.Flags().StringVar(&kind, "kind", "", "kind of the records: "+strings.Join(enrichers.ContextKinds, ", "))
	pub.Flags().StringVarP(&file, "file", "f", "", "JSON or YAML file with one record or a list")
	_ = pub.MarkFlagRequired("kind")
	return pub
}

func contextDeleteCmd() *cobra.Command {
	var kind string
	del := &cobra.Command{
		Use:   "delete --kind KIND ID...",
		Short: "Delete context records by id (tombstones on the compacted topic); all or nothing",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, ids []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			var recs []enrichers.ContextRecord
			for _, id := range ids {
				r, err := enrichers.Tombstone(kind, id)
				if err != nil {
					return &exitCode{2, err}
				}
				recs = append(recs, r)
			}
			rt, ctx, cancel, err := contextRuntime(cmd, cfg)
			if err != nil {
				return err
			}
			defer cancel()
			if err := enrichers.PublishContext(ctx, cfg.Kafka, rt.serde, recs); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %d %s record(s) from %s\n", len(recs), kind, cfg.Kafka.Topics().Context(kind))
			return nil
		},
	}
	del.Flags().StringVar(&kind, "kind", "", "kind of the records: "+strings.Join(enrichers.ContextKinds, ", "))
	_ = del.MarkFlagRequired("kind")
	return del
}

// contextRuntime connects to the configured brokers (the embedded one of `crumbs up` when none
// are configured) as the context role, and makes sure its topics exist. cfg.Kafka is the
// context role's configuration afterwards.
func contextRuntime(cmd *cobra.Command, cfg *Config) (*runtime, context.Context, context.CancelFunc, error) {
	kcfg, err := roleKafka(cfg, kafka.RoleContext, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	cfg.Kafka = kcfg
	rt, err := newRuntime(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := signalContext(cmd)
	if err := rt.ensureTopics(ctx, kafka.RoleContext); err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return rt, ctx, cancel, nil
}

// readBounded reads a file (or a pipe, as with -f /dev/stdin) of at most max bytes.
func readBounded(name string, max int) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(data) > max {
		return nil, fmt.Errorf("larger than the limit of %d bytes", max)
	}
	return data, nil
}
