package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/threatcrumbs/crumbs/pkg/termsafe"
	"github.com/threatcrumbs/crumbs/query"
	"github.com/threatcrumbs/crumbs/sinks/clickhouse"
)

// timelineCmd is `crumbs timeline`: what happened on a host, in a service or around an alert.
func timelineCmd() *cobra.Command {
	var (
		q        query.TimelineQuery
		from, to string
		format   string
		stats    bool
	)
	c := &cobra.Command{
		Use:   "timeline (--host H | --service S | --alert ID)",
		Short: "One chronological view of processes (as a tree), connections, file changes, identity events, change windows and alerts",
		Long: `timeline reads ClickHouse and prints, in time order, what happened on a host, in a
service or around an alert: processes as a tree with arguments and hashes, connections,
file changes, identity events and alerts, with the change windows active at the time.
The range is --from/--to (RFC 3339 or a duration before now, e.g. 2h); the last hour when
neither is given; around an alert, --before and --after.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n := countSet(q.Host, q.Service, q.AlertID); n != 1 {
				return &exitCode{2, errors.New("timeline: give exactly one of --host, --service and --alert")}
			}
			if format != "table" && format != "json" {
				return &exitCode{2, fmt.Errorf("timeline: --format %q: must be table or json", format)}
			}
			now := time.Now()
			var err error
			if q.From, err = parseWhen(from, now); err != nil {
				return &exitCode{2, fmt.Errorf("timeline: --from: %w", err)}
			}
			if q.To, err = parseWhen(to, now); err != nil {
				return &exitCode{2, fmt.Errorf("timeline: --to: %w", err)}
			}
			if q.AlertID == "" {
				if q.To.IsZero() {
					q.To = now
				}
				if q.From.IsZero() {
					q.From = q.To.Add(-time.Hour)
				}
			}
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			ctx, cancel := signalContext(cmd)
			defer cancel()
			conn, err := clickhouse.Connect(ctx, cfg.ClickHouse)
			if err != nil {
				return err
			}
			defer conn.Close()
			st := query.New(conn.Conn(), cfg.ClickHouse.Database, cfg.ClickHouse.Cluster)
			tl, err := st.Timeline(ctx, q)
			if err != nil {
				return err
			}
			if stats {
				if err := st.FillQueryStats(ctx, tl.Queries); err != nil {
					return err
				}
			}
			if format == "json" {
				return writeJSON(cmd.OutOrStdout(), tl)
			}
			return writeTimeline(cmd.OutOrStdout(), tl, stats)
		},
	}
	f := c.Flags()
	f.StringVar(&q.Host, "host", "", "host name")
	f.StringVar(&q.Service, "service", "", "service name (its hosts come from service_activity)")
	f.StringVar(&q.AlertID, "alert", "", "alert id: the alert's host around its time")
	f.StringVar(&from, "from", "", "start: RFC 3339 time or a duration before now (default: --to minus 1h)")
	f.StringVar(&to, "to", "", "end: RFC 3339 time or a duration before now (default: now)")
	f.DurationVar(&q.Before, "before", 30*time.Minute, "with --alert: how far before the alert")
	f.DurationVar(&q.After, "after", 10*time.Minute, "with --alert: how far after the alert")
	f.IntVar(&q.Limit, "limit", 10000, "most events read per kind")
	f.StringVar(&format, "format", "table", "output: table or json")
	f.BoolVar(&stats, "stats", false, "also print each query's duration and rows read (from system.query_log)")
	return c
}

func countSet(vs ...string) int {
	n := 0
	for _, v := range vs {
		if v != "" {
			n++
		}
	}
	return n
}

// parseWhen reads an RFC 3339 time, or a duration meaning that long before now; "" is zero.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-11-27T06:00:00Z) nor a duration (2h)", s)
}

// writeJSON prints v as indented JSON, with the characters a terminal would obey escaped
// (termsafe.JSON): still JSON, and the same values.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(termsafe.JSON(b), '\n'))
	return err
}

// q makes a field read from ClickHouse (host data an attacker may shape) safe for a terminal.
func q(s string) string { return termsafe.Field(s) }

// qs is q of each element, joined by sep.
func qs(ss []string, sep string) string { return strings.Join(termsafe.Fields(ss), sep) }

func writeTimeline(w io.Writer, tl *query.Timeline, stats bool) error {
	fmt.Fprintf(w, "Timeline of %s, %s to %s (hosts: %s)\n", q(tl.Scope), tl.From.Format(time.RFC3339), tl.To.Format(time.RFC3339), qs(tl.Hosts, ", "))
	if len(tl.Changes) > 0 {
		fmt.Fprintln(w, "\nActive change windows:")
		for _, c := range tl.Changes {
			fmt.Fprintf(w, "  %s  %-14s %s  %s to %s  services=%s hosts=%s\n", q(c.ID), q(c.Type), q(c.Title),
				c.StartsAt.Format(time.RFC3339), c.EndsAt.Format(time.RFC3339), qs(c.Services, ","), orAll(c.Hosts))
		}
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tHOST\tKIND\tWHAT")
	for _, e := range tl.Entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s%s\n", e.Time.Format("2006-01-02T15:04:05.000Z"), q(e.Host), q(e.Kind), strings.Repeat("  ", e.Depth), q(e.Summary))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(tl.Entries) == 0 {
		fmt.Fprintln(w, "(nothing in this range)")
	}
	if stats {
		writeStats(w, tl.Queries)
	}
	return nil
}

func writeStats(w io.Writer, stats []query.QueryStat) {
	fmt.Fprintln(w, "\nQueries:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "QUERY\tSERVER_MS\tWALL_MS\tROWS_READ\tBYTES_READ")
	for _, st := range stats {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%d\t%d\n", q(st.Name), st.DurationMs, st.WallMs, st.ReadRows, st.ReadBytes)
	}
	_ = tw.Flush()
}

func orAll(hosts []string) string {
	if len(hosts) == 0 {
		return "(all of its services' hosts)"
	}
	return qs(hosts, ",")
}

// queryContext bounds a query command that has no signal context of its own (tests).
func queryContext(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, 2*time.Minute)
}
