// Command crumbs runs the crumbs pipeline: `crumbs up` runs every stage on one host; `crumbs
// collect | enrich | detect | sink` run one stage each against a Kafka cluster. It only parses
// configuration and wires the stages; their logic lives in their packages.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/threatcrumbs/crumbs/pkg/config"
	"github.com/threatcrumbs/crumbs/pkg/termsafe"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

// exitCode errors carry the process exit code: 2 for invalid input.
type exitCode struct {
	code int
	err  error
}

func (e *exitCode) Error() string { return e.err.Error() }
func (e *exitCode) Unwrap() error { return e.err }

func main() {
	root := newRoot()
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "crumbs:", termsafe.Text(err.Error()))
		var ec *exitCode
		if errors.As(err, &ec) {
			os.Exit(ec.code)
		}
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "crumbs",
		Short:         "crumbs collects security crumbs with eBPF, enriches and judges them through Kafka, and lands them in ClickHouse",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringP("config", "c", os.Getenv("CRUMBS_CONFIG"), "YAML configuration file (env CRUMBS_CONFIG)")
	config.AddFlags(root.PersistentFlags(), defaultConfig())
	root.AddCommand(upCmd(), upStagesCmd(), doctorCmd(), collectCmd(), enrichCmd(), detectCmd(), sinkCmd(), deliverCmd(), contextCmd(), loadgenCmd(), versionCmd(), configCmd(), scanCmd(), manifestCmd(), rulesCmd(), timelineCmd(), alertsCmd(), dlqCmd(), kafkaCmd(), consoleCmd())
	return root
}

// loadConfig reads the configuration of a command: defaults, file, environment, flags.
func loadConfig(cmd *cobra.Command) (*Config, error) {
	path, _ := cmd.Flags().GetString("config")
	cfg := &Config{}
	if err := config.Load(cfg, defaultConfig(), path, cmd.Flags()); err != nil {
		return nil, &exitCode{2, err}
	}
	if err := cfg.Validate(); err != nil {
		return nil, &exitCode{2, err}
	}
	cfg.fillHost()
	return cfg, nil
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print crumbs' version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "crumbs", version)
		},
	}
}

func configCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "Print every configuration key with its environment variable and effective value",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			for _, k := range config.Keys(*cfg) {
				v := fmt.Sprint(k.Default)
				if secret(k.Name) && v != "" && v != "[]" {
					v = "(set)"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%-46s %-52s %s\n", k.Name, k.Env(), v)
			}
			return nil
		},
	}
}

// secret reports whether a key holds a credential that is never printed.
func secret(key string) bool {
	k := strings.ToLower(key)
	return strings.Contains(k, "password") || strings.Contains(k, "token") || strings.Contains(k, "secret")
}
