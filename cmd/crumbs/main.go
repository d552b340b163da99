// Command crumbs runs the crumbs pipeline: `crumbs up` runs every stage on one host; `crumbs
// collect | enrich | detect | sink` run one stage each against a Kafka cluster. It only parses
// configuration and wires the stages; their logic lives in their packages.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
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
		Use:   "crumbs",
		Short: "crumbs collects security crumbs with eBPF, enriches and judges them through Kafka, and lands them in ClickHouse",
		Long: `crumbs collects security crumbs with eBPF, enriches and judges them through Kafka, and lands
them in ClickHouse.

Start with "crumbs doctor" (what this host allows) and "crumbs up" (everything on this host).
Each command's --help lists its flags; "crumbs config --help" lists every configuration key,
which docs/configuration.md documents beside the rest of the documentation (docs/).`,
		Version:       versionString(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("crumbs {{.Version}}\n")
	root.SetUsageFunc(usage)
	root.AddCommand(upCmd(), upStagesCmd(), doctorCmd(), collectCmd(), enrichCmd(), detectCmd(), sinkCmd(), deliverCmd(), contextCmd(), loadgenCmd(), versionCmd(), configCmd(), scanCmd(), manifestCmd(), rulesCmd(), evalCmd(), timelineCmd(), alertsCmd(), dlqCmd(), kafkaCmd(), consoleCmd())
	addConfigFlags(root)
	addCompletions(root)
	return root
}

// loadConfig reads the configuration of a command: defaults, file, environment, flags.
func loadConfig(cmd *cobra.Command) (*Config, error) {
	path, _ := cmd.Flags().GetString("config")
	if path == "" {
		path = os.Getenv("CRUMBS_CONFIG")
	}
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

// versionString is the release version set at build time; a build from source ("dev") adds
// the commit it was built from, when Go recorded it.
func versionString() string {
	if version != "dev" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+modified"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return version
	}
	return version + " (" + rev + modified + ")"
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print crumbs' version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "crumbs", versionString())
		},
	}
}

func configCmd() *cobra.Command {
	var markdown bool
	c := &cobra.Command{
		Use:   "config",
		Short: "Print every configuration key with its environment variable and effective value",
		Long: `config prints every configuration key, its environment variable and its effective value
(defaults, then the file, the environment and the flags; secrets hidden). Every key is set in
a YAML file (--config FILE or CRUMBS_CONFIG), by CRUMBS_ + the key upper-cased with dots as
underscores, or by a flag named like the key; flags win over the environment, which wins
over the file. --markdown prints the reference of every key instead (docs/configuration.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if markdown {
				_, err := io.WriteString(cmd.OutOrStdout(), configMarkdown())
				return err
			}
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
	c.Flags().BoolVar(&markdown, "markdown", false, "print the configuration reference (key, environment variable, default, meaning) as Markdown, as docs/configuration.md holds it")
	return c
}

// secret reports whether a key holds a credential that is never printed.
func secret(key string) bool {
	k := strings.ToLower(key)
	return strings.Contains(k, "password") || strings.Contains(k, "token") || strings.Contains(k, "secret")
}
