package query

import (
	"context"
	"time"
)

// completionDays is how far back the shell's completion looks for hosts, services and alerts.
const completionDays = 30

// HostNames lists the host names that reported events in the last 30 days and start with
// prefix, in name order, at most limit (for the shell's completion of --host).
func (s *Store) HostNames(ctx context.Context, prefix string, limit int) ([]string, error) {
	return s.names(ctx, "host_names", "host_name", "service_activity", "minute", prefix, limit)
}

// ServiceNames lists the services that reported events in the last 30 days and start with
// prefix, in name order, at most limit.
func (s *Store) ServiceNames(ctx context.Context, prefix string, limit int) ([]string, error) {
	return s.names(ctx, "service_names", "service", "service_activity", "minute", prefix, limit)
}

// AlertIDs lists the ids of the alerts of the last 30 days that start with prefix, newest
// first, at most limit.
func (s *Store) AlertIDs(ctx context.Context, prefix string, limit int) ([]string, error) {
	since := uint32(time.Now().Add(-completionDays * 24 * time.Hour).Unix())
	q := "SELECT alert_id FROM " + s.table(AlertsFirstTable) +
		" WHERE time >= toDateTime(?) AND startsWith(alert_id, ?) GROUP BY alert_id ORDER BY max(time) DESC LIMIT ?"
	return s.strings(ctx, "alert_ids", q, []any{since, prefix, uint64(limit)})
}

// names lists the distinct values of column in table, over the last completionDays of its
// time column, that start with prefix; the empty value is left out.
func (s *Store) names(ctx context.Context, name, column, table, timeColumn, prefix string, limit int) ([]string, error) {
	since := uint32(time.Now().Add(-completionDays * 24 * time.Hour).Unix())
	q := "SELECT DISTINCT toString(" + column + ") AS v FROM " + s.table(table) +
		" WHERE " + timeColumn + " >= toDateTime(?) AND v != '' AND startsWith(v, ?) ORDER BY v LIMIT ?"
	return s.strings(ctx, name, q, []any{since, prefix, uint64(limit)})
}

func (s *Store) strings(ctx context.Context, name, q string, args []any) ([]string, error) {
	var out []string
	err := s.query(ctx, &queryLog{}, name, q, args, func(r scanner) error {
		var v string
		if err := r.Scan(&v); err != nil {
			return err
		}
		out = append(out, v)
		return nil
	})
	return out, err
}
