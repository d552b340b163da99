package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/threatcrumbs/crumbs/detectors/engine"
	"github.com/threatcrumbs/crumbs/detectors/sigma"
	"github.com/threatcrumbs/crumbs/pkg/termsafe"
)

// rulesCmd serves detection engineers: lint and test rule folders without running a pipeline.
func rulesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "rules", Short: "Check and test detection rules"}
	filter := sigma.Filter{MinLevel: sigma.DefaultMinLevel, Statuses: sigma.DefaultStatuses}
	lint := &cobra.Command{
		Use:   "lint PATH...",
		Short: "Load the rule files and folders as one set (Sigma files as Sigma); report every problem as file:line: message or file: reason, every warning as file: warning: ..., and a Sigma summary with what the level and status filters leave out (exit 1 if any problem; warnings alone exit 0)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, paths []string) error {
			if !slices.Contains(sigma.Levels, filter.MinLevel) {
				return &exitCode{2, fmt.Errorf("rules lint: --sigma-min-level %q: must be one of %v", filter.MinLevel, sigma.Levels)}
			}
			return rulesLint(cmd.OutOrStdout(), paths, filter)
		},
	}
	lint.Flags().StringVar(&filter.MinLevel, "sigma-min-level", filter.MinLevel, "lowest Sigma level loaded, as detector.sigma_min_level")
	lint.Flags().StringSliceVar(&filter.Statuses, "sigma-status", filter.Statuses, "Sigma statuses loaded, as detector.sigma_status")
	cmd.AddCommand(lint, &cobra.Command{
		Use:   "test PATH...",
		Short: "Run each rule's fixtures (<rule>.fixtures.yaml) through the engine and print a pass/fail table, and for a rule reading several event kinds its cases, events and alerts per kind (exit 1 on failure)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, dirs []string) error {
			return rulesTest(cmd.OutOrStdout(), dirs)
		},
	})
	return cmd
}

// rulesLint loads every file and folder named as one rule set (Sigma files read as Sigma),
// prints each problem as file:line: message (file: reason for a refused Sigma file), then a
// summary of the Sigma files loaded and refused by logsource category, and what became of
// the Sigma rules under the level and status filter.
func rulesLint(w io.Writer, paths []string, filter sigma.Filter) error {
	f := &sigma.Format{Refused: sigma.RefusedFail, Filter: filter}
	dirs, err := ruleDirs(paths)
	if err != nil {
		return &exitCode{1, fmt.Errorf("rules lint: %w", err)}
	}
	var ps engine.Problems
	rs, err := engine.LoadDirs(dirs, f)
	if err != nil && !errors.As(err, &ps) {
		return &exitCode{1, fmt.Errorf("rules lint: %w", err)}
	}
	if err == nil {
		// What only the engine checks: the cost of conditions (the default limit).
		if _, err := engine.New(rs, engine.Options{}); err != nil && !errors.As(err, &ps) {
			return &exitCode{1, fmt.Errorf("rules lint: %w", err)}
		}
	}
	for _, p := range ps {
		fmt.Fprintln(w, termsafe.Text(p.Error()))
	}
	for _, r := range f.Results {
		for _, warn := range r.Warnings() {
			fmt.Fprintln(w, termsafe.Text(r.File+": warning: "+warn))
		}
	}
	if err := sigmaSummary(w, f.Results); err != nil {
		return err
	}
	if f.Counts.Rules > 0 {
		fmt.Fprintf(w, "\n%s (sigma_min_level %s, sigma_status %s)\n", f.Counts, filter.MinLevel, strings.Join(filter.Statuses, ", "))
	}
	if len(ps) > 0 {
		return &exitCode{1, fmt.Errorf("rules lint: %d problem(s)", len(ps))}
	}
	return nil
}

// ruleDirs names each path, a folder or one rule file, as a rule folder.
func ruleDirs(paths []string) ([]engine.RuleDir, error) {
	out := make([]engine.RuleDir, 0, len(paths))
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("read rules: %w", err)
		}
		if st.IsDir() {
			out = append(out, engine.RuleDir{FS: os.DirFS(p), Dir: ".", Prefix: p})
			continue
		}
		out = append(out, engine.RuleDir{FS: os.DirFS(filepath.Dir(p)), Dir: filepath.Base(p), Prefix: filepath.Dir(p)})
	}
	return out, nil
}

// sigmaSummary prints the Sigma files loaded and refused per logsource; nothing without any.
func sigmaSummary(w io.Writer, results []sigma.LintResult) error {
	if len(results) == 0 {
		return nil
	}
	type counts struct{ loaded, refused int }
	by := map[string]*counts{}
	var total counts
	for _, r := range results {
		c := by[r.Logsource]
		if c == nil {
			c = &counts{}
			by[r.Logsource] = c
		}
		if r.Loaded() {
			c.loaded++
			total.loaded++
		} else {
			c.refused++
			total.refused++
		}
	}
	names := make([]string, 0, len(by))
	for n := range by {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SIGMA LOGSOURCE\tFILES\tLOADED\tREFUSED")
	for _, n := range names {
		c := by[n]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", q(n), c.loaded+c.refused, c.loaded, c.refused)
	}
	fmt.Fprintf(tw, "all\t%d\t%d\t%d\n", total.loaded+total.refused, total.loaded, total.refused)
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("rules lint: write summary: %w", err)
	}
	return nil
}

// perKind sums, for each rule of several event kinds (a Sigma auditd rule), its cases,
// events and alerts per kind: one tab-separated row per rule and kind, noting a kind no
// fixture event exercises.
func perKind(res []engine.FixtureResult) []string {
	type sum struct{ cases, events, alerts int }
	var order []string
	by := map[string]map[string]*sum{}
	for _, r := range res {
		if r.Kinds == nil {
			continue
		}
		if by[r.Rule] == nil {
			by[r.Rule] = map[string]*sum{}
			order = append(order, r.Rule)
		}
		for k, kc := range r.Kinds {
			s := by[r.Rule][k]
			if s == nil {
				s = &sum{}
				by[r.Rule][k] = s
			}
			if kc.Events > 0 {
				s.cases++
			}
			s.events += kc.Events
			s.alerts += kc.Alerts
		}
	}
	var rows []string
	for _, rule := range order {
		kinds := make([]string, 0, len(by[rule]))
		for k := range by[rule] {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for _, k := range kinds {
			s := by[rule][k]
			note := ""
			if s.events == 0 {
				note = "no fixture event of this kind"
			}
			rows = append(rows, fmt.Sprintf("%s\t%s\t%d\t%d\t%d\t%s", q(rule), q(k), s.cases, s.events, s.alerts, note))
		}
	}
	return rows
}

// rulesTest runs the fixtures of every folder and prints one row per case, then, for each
// rule that reads several event kinds, its cases, events and alerts per kind.
func rulesTest(w io.Writer, dirs []string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tCASE\tRESULT\tDETAIL")
	failed, broken := 0, 0
	var kindRows []string
	for _, dir := range dirs {
		fsys, root := os.DirFS(dir), "."
		if st, err := os.Stat(dir); err == nil && !st.IsDir() {
			fsys, root = os.DirFS(filepath.Dir(dir)), filepath.Base(dir)
		}
		res, err := engine.TestRules(fsys, root, engine.Options{}, &sigma.Format{Refused: sigma.RefusedFail})
		if err != nil {
			var ps engine.Problems
			if errors.As(err, &ps) {
				for _, p := range ps {
					fmt.Fprintf(tw, "%s\t\tinvalid\t%s:%d: %s\n", q(dir), q(filepath.Join(dir, p.File)), p.Line, q(p.Msg))
				}
			} else {
				fmt.Fprintf(tw, "%s\t\tinvalid\t%s\n", q(dir), q(err.Error()))
			}
			broken++
			continue
		}
		for _, r := range res {
			c := r.Case
			if r.Status == engine.FixtureNone {
				c = "(no fixtures)"
			}
			if r.Status == engine.FixtureFail {
				failed++
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", q(r.Rule), q(c), q(string(r.Status)), q(r.Detail))
		}
		kindRows = append(kindRows, perKind(res)...)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("rules test: write table: %w", err)
	}
	if len(kindRows) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RULE (SEVERAL KINDS)\tKIND\tCASES\tEVENTS\tALERTS\tNOTE")
		for _, row := range kindRows {
			fmt.Fprintln(tw, row)
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("rules test: write table: %w", err)
		}
	}
	if failed > 0 || broken > 0 {
		return &exitCode{1, fmt.Errorf("rules test: %d case(s) failed, %d folder(s) invalid", failed, broken)}
	}
	return nil
}
