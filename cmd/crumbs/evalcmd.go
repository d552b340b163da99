package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/threatcrumbs/crumbs/eval/atomics"
	"github.com/threatcrumbs/crumbs/sinks/clickhouse"
)

// evalCmd measures the detections against attack simulations.
func evalCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "eval", Short: "Measure what the detections make of attack simulations"}
	cfg := atomics.DefaultConfig()
	var report, results, intro string
	var only []string
	run := &cobra.Command{
		Use: "atomics FILE",
		Short: "Run the attack simulations of FILE (Atomic Red Team's YAML) one at a time as root against the running pipeline, " +
			"and report per simulation the alerts raised on events of its own process tree, whether one carries its technique, and why not",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return &exitCode{2, fmt.Errorf("eval atomics: %w", err)}
			}
			sims, err := atomics.Parse(args[0], data)
			if err != nil {
				return &exitCode{2, fmt.Errorf("eval atomics: %w", err)}
			}
			if len(only) > 0 {
				var keep []atomics.Simulation
				for _, s := range sims {
					for _, o := range only {
						if strings.EqualFold(o, s.Technique) || strings.EqualFold(o, s.ID()) || o == s.GUID {
							keep = append(keep, s)
							break
						}
					}
				}
				sims = keep
			}
			c, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			rules, err := c.Detector.LoadRules()
			if err != nil {
				return &exitCode{2, fmt.Errorf("eval atomics: load the pipeline's rules: %w", err)}
			}
			ctx, cancel := signalContext(cmd)
			defer cancel()
			st, err := clickhouse.Connect(ctx, c.ClickHouse)
			if err != nil {
				return err
			}
			defer st.Close()
			cfg.Database = c.ClickHouse.Database
			ev, err := atomics.New(cfg, st.Conn(), rules, func(f string, a ...any) {
				fmt.Fprintf(cmd.ErrOrStderr(), f+"\n", a...)
			})
			if err != nil {
				return &exitCode{2, err}
			}
			res, runErr := ev.Run(ctx, sims)
			md := atomics.Markdown(res, intro)
			if report != "" {
				if err := os.WriteFile(report, []byte(md), 0o644); err != nil {
					return fmt.Errorf("eval atomics: write report: %w", err)
				}
			} else {
				fmt.Fprint(cmd.OutOrStdout(), md)
			}
			if results != "" {
				b, err := json.MarshalIndent(res, "", "  ")
				if err != nil {
					return fmt.Errorf("eval atomics: results: %w", err)
				}
				if err := os.WriteFile(results, b, 0o644); err != nil {
					return fmt.Errorf("eval atomics: write results: %w", err)
				}
			}
			return runErr
		},
	}
	f := run.Flags()
	f.StringVar(&cfg.Scratch, "scratch", cfg.Scratch, "directory for the simulations' working directories (not under /tmp)")
	f.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "longest a simulation runs before what is left of it is killed")
	f.DurationVar(&cfg.Settle, "settle", cfg.Settle, "how long after a simulation to wait for its events and alerts")
	f.StringVar(&report, "report", "", "write the Markdown report to this file instead of standard output")
	f.StringVar(&results, "results", "", "also write the results as JSON to this file")
	f.StringVar(&intro, "intro", "", "text put under the report's title")
	f.StringSliceVar(&only, "only", nil, "run only these simulations (technique, \"T1053.003 #2\" or GUID)")
	cmd.AddCommand(run)
	return cmd
}
