package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/threatcrumbs/crumbs/detectors/engine"
)

// rulesCmd serves detection engineers: lint and test rule folders without running a pipeline.
func rulesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "rules", Short: "Check and test detection rules"}
	cmd.AddCommand(&cobra.Command{
		Use:   "lint DIR...",
		Short: "Report every problem of the rules in the folders as file:line: message (exit 1 if any)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, dirs []string) error {
			return rulesLint(cmd.OutOrStdout(), dirs)
		},
	}, &cobra.Command{
		Use:   "test DIR...",
		Short: "Run each rule's fixtures (<rule>.fixtures.yaml) through the engine and print a pass/fail table (exit 1 on failure)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, dirs []string) error {
			return rulesTest(cmd.OutOrStdout(), dirs)
		},
	})
	return cmd
}

// rulesLint prints the problems of every folder's rule set.
func rulesLint(w io.Writer, dirs []string) error {
	n := 0
	for _, dir := range dirs {
		for _, p := range rulesProblems(dir) {
			fmt.Fprintln(w, p.Error())
			n++
		}
	}
	if n > 0 {
		return &exitCode{1, fmt.Errorf("rules lint: %d problem(s)", n)}
	}
	return nil
}

// rulesProblems loads a folder and returns its problems, with paths under dir.
func rulesProblems(dir string) engine.Problems {
	_, err := engine.LoadFS(os.DirFS(dir), ".")
	if err == nil {
		return nil
	}
	var ps engine.Problems
	if !errors.As(err, &ps) {
		return engine.Problems{{File: dir, Line: 0, Msg: err.Error()}}
	}
	out := make(engine.Problems, len(ps))
	for i, p := range ps {
		p.File = filepath.Join(dir, p.File)
		out[i] = p
	}
	return out
}

// rulesTest runs the fixtures of every folder and prints one row per case.
func rulesTest(w io.Writer, dirs []string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tCASE\tRESULT\tDETAIL")
	failed, broken := 0, 0
	for _, dir := range dirs {
		res, err := engine.TestRules(os.DirFS(dir), ".", engine.Options{})
		if err != nil {
			var ps engine.Problems
			if errors.As(err, &ps) {
				for _, p := range ps {
					fmt.Fprintf(tw, "%s\t\tinvalid\t%s:%d: %s\n", dir, filepath.Join(dir, p.File), p.Line, p.Msg)
				}
			} else {
				fmt.Fprintf(tw, "%s\t\tinvalid\t%v\n", dir, err)
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
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Rule, c, r.Status, r.Detail)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("rules test: write table: %w", err)
	}
	if failed > 0 || broken > 0 {
		return &exitCode{1, fmt.Errorf("rules test: %d case(s) failed, %d folder(s) invalid", failed, broken)}
	}
	return nil
}
