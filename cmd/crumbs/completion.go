package main

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/query"
	"github.com/threatcrumbs/crumbs/sinks/clickhouse"
)

// completionTimeout bounds what a shell's completion waits for ClickHouse: a store that is
// away completes nothing rather than hanging the prompt.
const completionTimeout = 3 * time.Second

// completionLimit is the most candidates a completion offers.
const completionLimit = 200

// addCompletions teaches the shell completion (`crumbs completion bash|zsh|fish`) the values
// of crumbs' flags and arguments: fixed choices as they are, rule ids from the configured rule
// set, hosts, services and alert ids from ClickHouse.
func addCompletions(root *cobra.Command) {
	fixed := map[string][]string{
		"format":          {"table", "json"},
		"severity":        {"informational", "low", "medium", "high", "critical"},
		"state":           {"new", "acknowledged", "resolved", "false_positive", "open"},
		"kind":            kafka.ContextKinds,
		"stage":           {"enrich", "detect", "sink"},
		"scope":           {"host", "group_key"},
		"auth":            {"scram", "mtls"},
		"role":            kafkaRoleNames(),
		"log.level":       {"debug", "info", "warn", "error"},
		"log.format":      {"text", "json"},
		"sigma-min-level": {"informational", "low", "medium", "high", "critical"},
		// Configuration keys with a fixed set of values.
		"up.stages":                     upStages,
		"clickhouse.compression":        {"auto", "lz4", "none"},
		"collectors.network.iterators":  {"auto", "map_elem", "tcp", "off"},
		"detector.sigma_min_level":      {"informational", "low", "medium", "high", "critical"},
		"detector.sigma_refused":        {"fail", "skip"},
		"kafka.security.sasl.mechanism": {"SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"},
	}
	dynamic := map[string]cobra.CompletionFunc{
		"rule":    completeRules,
		"host":    completeFromStore((*query.Store).HostNames),
		"service": completeFromStore((*query.Store).ServiceNames),
		"alert":   completeFromStore((*query.Store).AlertIDs),
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for name, values := range fixed {
			if c.Flags().Lookup(name) != nil {
				_ = c.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
			}
		}
		for name, fn := range dynamic {
			if c.Flags().Lookup(name) != nil {
				_ = c.RegisterFlagCompletionFunc(name, fn)
			}
		}
		if c.Parent() != nil && c.Parent().Name() == "alerts" {
			c.ValidArgsFunction = firstArg(completeFromStore((*query.Store).AlertIDs))
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// firstArg completes the first argument with fn and nothing after it.
func firstArg(fn cobra.CompletionFunc) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return fn(cmd, args, toComplete)
	}
}

// completeRules offers the ids of the configured rule set (detector.rules_dir or the built-in
// pack, and detector.sigma_dirs), each with its title.
func completeRules(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	cfg, err := loadConfig(cmd)
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	rs, err := cfg.Detector.LoadRules()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var out []cobra.Completion
	for _, r := range rs {
		if strings.HasPrefix(r.ID, toComplete) {
			out = append(out, cobra.CompletionWithDesc(r.ID, r.Title))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeFromStore offers what list answers from ClickHouse within completionTimeout.
func completeFromStore(list func(*query.Store, context.Context, string, int) ([]string, error)) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		cfg, err := loadConfig(cmd)
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
		defer cancel()
		conf := cfg.ClickHouse
		if conf.DialTimeout > completionTimeout {
			conf.DialTimeout = completionTimeout
		}
		st, err := clickhouse.Connect(ctx, conf)
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		defer st.Close()
		values, err := list(query.New(st.Conn(), conf.Database, conf.Cluster), ctx, toComplete, completionLimit)
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		return values, cobra.ShellCompDirectiveNoFileComp
	}
}

func kafkaRoleNames() []string {
	var out []string
	for _, r := range kafka.Roles() {
		out = append(out, string(r))
	}
	return out
}
