package main

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/threatcrumbs/crumbs/query"
	"github.com/threatcrumbs/crumbs/sinks/clickhouse"
)

// alertsCmd is `crumbs alerts`: list and filter alerts; `crumbs alerts show ID` shows one
// with its evidence events.
func alertsCmd() *cobra.Command {
	var (
		f      query.AlertFilter
		since  string
		format string
	)
	c := &cobra.Command{
		Use:   "alerts",
		Short: "List alerts from ClickHouse, newest first, filtered by severity, rule, tag, service, host, triage state and time; triage them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			t, err := parseWhen(since, time.Now())
			if err != nil {
				return &exitCode{2, fmt.Errorf("alerts: --since: %w", err)}
			}
			f.Since = t
			st, done, err := openQueryStore(cmd)
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := queryContext(cmd.Context())
			defer cancel()
			as, err := st.Alerts(ctx, f)
			if err != nil {
				return err
			}
			if format == "json" {
				if as == nil {
					as = []query.AlertRow{}
				}
				return writeJSON(cmd.OutOrStdout(), as)
			}
			return writeAlerts(cmd.OutOrStdout(), as)
		},
	}
	fl := c.PersistentFlags()
	fl.StringVar(&format, "format", "table", "output: table or json")
	lf := c.Flags()
	lf.StringVar(&f.Severity, "severity", "", "only alerts of this severity (low, medium, high, critical)")
	lf.StringVar(&f.Rule, "rule", "", "only alerts of this rule id")
	lf.StringVar(&f.Service, "service", "", "only alerts of this service")
	lf.StringVar(&f.Host, "host", "", "only alerts of this host")
	lf.StringVar(&f.Tag, "tag", "", "only alerts with this tag")
	lf.StringVar(&f.State, "state", "", "only alerts in this triage state: new, acknowledged, resolved, false_positive, or open (new and acknowledged)")
	lf.StringVar(&since, "since", "24h", "RFC 3339 time or a duration before now")
	lf.IntVar(&f.Limit, "limit", 100, "most alerts listed")
	c.AddCommand(triageCmds()...)
	c.AddCommand(&cobra.Command{
		Use:   "show ID",
		Short: "Show one alert with its evidence events",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			st, done, err := openQueryStore(cmd)
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := queryContext(cmd.Context())
			defer cancel()
			a, err := st.Alert(ctx, args[0])
			if errors.Is(err, query.ErrNotFound) {
				return &exitCode{2, err}
			}
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(cmd.OutOrStdout(), a)
			}
			return writeAlert(cmd.OutOrStdout(), a)
		},
	})
	return c
}

func checkFormat(format string) error {
	if format != "table" && format != "json" {
		return &exitCode{2, fmt.Errorf("--format %q: must be table or json", format)}
	}
	return nil
}

// openQueryStore connects to ClickHouse with the command's configuration, without migrating.
func openQueryStore(cmd *cobra.Command) (*query.Store, func(), error) {
	cfg, err := loadConfig(cmd)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := queryContext(cmd.Context())
	defer cancel()
	st, err := clickhouse.Connect(ctx, cfg.ClickHouse)
	if err != nil {
		return nil, nil, err
	}
	return query.New(st.Conn(), cfg.ClickHouse.Database, cfg.ClickHouse.Cluster), func() { st.Close() }, nil
}

func writeAlerts(w io.Writer, as []query.AlertRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tSEVERITY\tSTATE\tRULE\tSERVICE\tHOST\tCOUNT\tID\tTITLE")
	for _, a := range as {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", a.Time.Format(time.RFC3339), q(a.Severity), q(a.State), q(a.RuleID), q(a.Service), q(a.Host), a.Count, q(a.ID), q(a.Title))
	}
	return tw.Flush()
}

func writeAlert(w io.Writer, e *query.AlertEvidence) error {
	a := e.Alert
	fmt.Fprintf(w, "Alert %s\n  rule:     %s\n  title:    %s\n  severity: %s\n  time:     %s\n  window:   %s to %s\n  host:     %s\n  service:  %s\n  count:    %d\n  tags:     %s\n  summary:  %s\n",
		q(a.ID), q(a.RuleID), q(a.Title), q(a.Severity), a.Time.Format(time.RFC3339Nano), a.WindowStart.Format(time.RFC3339), a.WindowEnd.Format(time.RFC3339),
		q(a.Host), q(a.Service), a.Count, qs(a.Tags, ", "), q(a.Summary))
	fmt.Fprintf(w, "  state:    %s", q(a.State))
	if a.Assignee != "" {
		fmt.Fprintf(w, ", assigned to %s", q(a.Assignee))
	}
	fmt.Fprintln(w)
	if t := e.Triage; t != nil {
		if !t.SuppressUntil.IsZero() {
			fmt.Fprintf(w, "  suppresses %s on %s until %s\n", q(t.RuleID), q(t.SuppressScope), t.SuppressUntil.Format(time.RFC3339))
		}
		for _, n := range t.Notes {
			fmt.Fprintf(w, "  note %s %s: %s\n", n.At.Format(time.RFC3339), q(n.By), q(n.Text))
		}
	}
	fmt.Fprintf(w, "\nEvidence (%d of %d events):\n", len(e.Evidence), len(a.Evidence))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tHOST\tKIND\tID\tWHAT")
	for _, ev := range e.Evidence {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ev.Time.Format("2006-01-02T15:04:05.000Z"), q(ev.Host), q(ev.Kind), q(ev.ID), q(ev.Summary))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(e.Missing) > 0 {
		fmt.Fprintf(w, "Not found (expired, or not written yet): %s\n", qs(e.Missing, ", "))
	}
	fmt.Fprintf(w, "\nTimeline around it: crumbs timeline --alert %s\n", q(a.ID))
	return nil
}
