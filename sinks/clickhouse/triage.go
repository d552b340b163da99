package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/schemas"
)

// AlertTriageTable holds the versions of alerts' triage, from crumbs.triage.
const AlertTriageTable = "alert_triage"

// TriageRow is one version of an alert's triage as alert_triage stores it; a tombstone on
// crumbs.triage is a row with Deleted set.
type TriageRow struct {
	schemas.TriageState
	Deleted bool
}

// triageRow decodes a record of crumbs.triage. A tombstone's version is the last nanosecond
// of its Kafka timestamp's millisecond, which is above every version written before it:
// a version is the wall clock of its change in ns, or one above the version before (package
// triage).
func triageRow(r *kgo.Record, rec any) (*TriageRow, error) {
	if rec == nil {
		ts := max(r.Timestamp.UnixMilli(), 0)*int64(time.Millisecond) + int64(time.Millisecond) - 1
		return &TriageRow{TriageState: schemas.TriageState{AlertID: string(r.Key), Version: ts, UpdatedAt: ts}, Deleted: true}, nil
	}
	t, ok := rec.(*schemas.TriageState)
	if !ok {
		return nil, fmt.Errorf("decoded a %T, not a triage state", rec)
	}
	if t.Version < 0 {
		return nil, fmt.Errorf("version %d: must not be negative", t.Version)
	}
	return &TriageRow{TriageState: *t}, nil
}

// InsertTriage writes rows into alert_triage in one INSERT.
func (s *Store) InsertTriage(ctx context.Context, rows []*TriageRow) error {
	return insertRows(ctx, s, AlertTriageTable, triageTable, rows)
}

type triage = *TriageRow

var triageTable = []column[triage]{
	col("alert_id", func(t triage) string { return t.AlertID }),
	col("version", func(t triage) uint64 { return uint64(t.Version) }),
	col("state", func(t triage) string { return t.State }),
	col("assignee", func(t triage) string { return t.Assignee }),
	col("updated_at", func(t triage) uint64 { return uint64(max(t.UpdatedAt, 0)) }),
	col("updated_by", func(t triage) string { return t.UpdatedBy }),
	col("note_at", func(t triage) []uint64 {
		out := make([]uint64, len(t.Notes))
		for i, n := range t.Notes {
			out[i] = uint64(max(n.At, 0))
		}
		return out
	}),
	col("note_by", func(t triage) []string {
		out := make([]string, len(t.Notes))
		for i, n := range t.Notes {
			out[i] = n.By
		}
		return out
	}),
	col("note_text", func(t triage) []string {
		out := make([]string, len(t.Notes))
		for i, n := range t.Notes {
			out[i] = n.Text
		}
		return out
	}),
	col("rule_id", func(t triage) string { return t.RuleID }),
	col("host_name", func(t triage) string { return t.Host }),
	col("group_key", func(t triage) string { return t.GroupKey }),
	col("alert_time", func(t triage) uint64 { return uint64(max(t.AlertTime, 0)) }),
	col("severity", func(t triage) string { return t.Severity }),
	col("service", func(t triage) string { return t.Service }),
	col("tags", func(t triage) []string { return nonNil(t.Tags) }),
	col("suppress_until", func(t triage) uint64 { return uint64(max(t.SuppressUntil, 0)) }),
	col("suppress_scope", func(t triage) string { return t.SuppressScope }),
	col("deleted", func(t triage) uint8 { return boolUInt8(t.Deleted) }),
}
