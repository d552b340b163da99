package clickhouse

import (
	"time"

	"github.com/threatcrumbs/crumbs/schemas"
)

// column is one column of a table and how to build its values from rows of type T, as the
// typed slice the driver appends at once (far faster than row by row).
type column[T any] struct {
	name  string
	build func(rows []T) any
}

// col returns the column name whose value for a row is get(row).
func col[T, V any](name string, get func(T) V) column[T] {
	return column[T]{name: name, build: func(rows []T) any {
		out := make([]V, len(rows))
		for i, r := range rows {
			out[i] = get(r)
		}
		return out
	}}
}

// columns concatenates column lists.
func columns[T any](parts ...[]column[T]) []column[T] {
	var out []column[T]
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

type alert = *schemas.Alert

var alertTable = []column[alert]{
	col("alert_id", func(a alert) string { return a.AlertID }),
	col("time", func(a alert) time.Time { t, _, _ := eventTime(a.Time); return t }),
	col("time_ns", func(a alert) uint64 { _, _, ns := eventTime(a.Time); return ns }),
	col("date", func(a alert) time.Time { _, d, _ := eventTime(a.Time); return d }),
	col("rule_id", func(a alert) string { return a.RuleID }),
	col("title", func(a alert) string { return a.Title }),
	col("severity", func(a alert) string { return a.Severity }),
	col("tags", func(a alert) []string { return nonNil(a.Tags) }),
	col("group_key", func(a alert) string { return a.GroupKey }),
	col("host_id", func(a alert) string { return a.Host.ID }),
	col("host_name", func(a alert) string { return a.Host.Name }),
	col("service", func(a alert) string { return a.Service }),
	col("window_start", func(a alert) time.Time { t, _, _ := eventTime(a.WindowStart); return t }),
	col("window_start_ns", func(a alert) uint64 { _, _, ns := eventTime(a.WindowStart); return ns }),
	col("window_end", func(a alert) time.Time { t, _, _ := eventTime(a.WindowEnd); return t }),
	col("window_end_ns", func(a alert) uint64 { _, _, ns := eventTime(a.WindowEnd); return ns }),
	col("count", func(a alert) int64 { return a.Count }),
	col("evidence", func(a alert) []string { return nonNil(a.Evidence) }),
	col("author", func(a alert) string { return a.Author }),
	col("level", func(a alert) string { return a.Level }),
	col("rule_source", func(a alert) string { return a.RuleSource }),
	col("original_severity", func(a alert) string { return a.OriginalSeverity }),
	col("changes", func(a alert) []string { return nonNil(a.Changes) }),
	col("explanation", func(a alert) string { return a.Explanation }),
	col("summary", func(a alert) string { return a.Summary }),
	col("version", func(a alert) uint64 { return uint64(max(a.Version, 0)) }),
	col("incident_id", func(a alert) string { return a.IncidentID }),
	col("final", func(a alert) uint8 {
		if a.Final {
			return 1
		}
		return 0
	}),
}
