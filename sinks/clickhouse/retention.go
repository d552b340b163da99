package clickhouse

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DroppedPartition is a partition DropExpiredPartitions dropped.
type DroppedPartition struct {
	Table     string
	Partition string // as system.parts names it: YYYYMMDD or YYYYMM
}

// enforceRetention sets TTLs where the server has them, then drops expired partitions now and
// every RetentionInterval until ctx is done. Failures are logged: retention is retried on the
// next tick and never stops the sink.
func (s *Sink) enforceRetention(ctx context.Context, st *Store) {
	days := s.cfg.Retention.Days(s.kinds)
	if err := st.SetTTLs(ctx, days); err != nil && ctx.Err() == nil {
		s.log.Warn("set TTLs failed; dropping partitions still enforces retention", "err", err)
	}
	t := time.NewTicker(s.cfg.RetentionInterval)
	defer t.Stop()
	for {
		dropped, err := st.DropExpiredPartitions(ctx, days, time.Now())
		for _, d := range dropped {
			s.log.Info("dropped partition past retention", "table", d.Table, "partition", d.Partition)
		}
		if err != nil && ctx.Err() == nil {
			s.log.Warn("dropping expired partitions failed; retrying next interval", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// DropExpiredPartitions drops, in every table of days (its retention in days, by table name;
// RetentionConfig.Days), the partitions whose last day is more than the table's retention
// before now (UTC). It works on every server version. On a cluster it drops, ON CLUSTER, the
// partitions the connected server holds.
func (s *Store) DropExpiredPartitions(ctx context.Context, days map[string]int, now time.Time) ([]DroppedPartition, error) {
	var dropped []DroppedPartition
	for _, table := range sortedKeys(days) {
		if days[table] <= 0 {
			continue
		}
		local := table
		if s.cluster != "" {
			local += localSuffix
		}
		parts, err := s.partitions(ctx, local)
		if err != nil {
			return dropped, err
		}
		cutoff := now.UTC().AddDate(0, 0, -days[table])
		for _, p := range parts {
			last, ok := partitionLastDay(p)
			if !ok || !last.Before(cutoff) {
				continue
			}
			q := "ALTER TABLE " + s.database + "." + local + s.onCluster() + " DROP PARTITION " + p
			if err := s.conn.Exec(ctx, q); err != nil {
				return dropped, fmt.Errorf("drop partition %s of %s: %w", p, local, err)
			}
			dropped = append(dropped, DroppedPartition{Table: table, Partition: p})
		}
	}
	return dropped, nil
}

func (s *Store) onCluster() string { return MigrationTemplate{Cluster: s.cluster}.OnCluster() }

// partitions lists the partitions of table that have active parts.
func (s *Store) partitions(ctx context.Context, table string) ([]string, error) {
	rows, err := s.conn.Query(ctx, "SELECT DISTINCT partition FROM system.parts WHERE database = ? AND table = ? AND active", s.database, table)
	if err != nil {
		return nil, fmt.Errorf("list partitions of %s: %w", table, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("list partitions of %s: %w", table, err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// partitionLastDay returns the day after the last day a YYYYMMDD or YYYYMM partition holds,
// i.e. the instant from which all its rows are older than that.
func partitionLastDay(p string) (time.Time, bool) {
	p = strings.Trim(p, "'")
	if _, err := strconv.Atoi(p); err != nil {
		return time.Time{}, false
	}
	switch len(p) {
	case 8:
		t, err := time.Parse("20060102", p)
		return t.AddDate(0, 0, 1), err == nil
	case 6:
		t, err := time.Parse("200601", p)
		return t.AddDate(0, 1, 0), err == nil
	}
	return time.Time{}, false
}

// SetTTLs sets each table's TTL to its retention in days (by table name;
// RetentionConfig.Days) on servers that have TTL (19.6 and later); on older ones it does
// nothing (DropExpiredPartitions enforces retention there). A table whose retention is 0 gets
// its TTL removed where the server can (20.x and later).
func (s *Store) SetTTLs(ctx context.Context, days map[string]int) error {
	ver, err := QueryServerVersion(ctx, s.conn)
	if err != nil {
		return err
	}
	for _, q := range TTLStatements(ver, s.database, s.cluster, days) {
		// Existing rows are dropped by merges and partition drops, not by an immediate
		// rewrite of every part.
		qctx := ctx
		if ver.AtLeast(20, 5) {
			qctx = withSettings(ctx, map[string]any{"materialize_ttl_after_modify": 0})
		}
		if err := s.conn.Exec(qctx, q); err != nil {
			return fmt.Errorf("set TTL: %s: %w", q, err)
		}
	}
	return nil
}

// TTLStatements returns the statements that set the TTL of every table of days (its
// retention in days, by table name) on a server of version v; none before 19.6, which has no
// TTL.
func TTLStatements(v ServerVersion, database, cluster string, days map[string]int) []string {
	if !v.AtLeast(19, 6) {
		return nil
	}
	var out []string
	on := MigrationTemplate{Cluster: cluster}.OnCluster()
	for _, table := range sortedKeys(days) {
		local := database + "." + table
		if cluster != "" {
			local += localSuffix
		}
		switch {
		case days[table] > 0:
			out = append(out, fmt.Sprintf("ALTER TABLE %s%s MODIFY TTL %s + toIntervalDay(%d)", local, on, retentionDateOf(table), days[table]))
		case v.AtLeast(20, 10):
			out = append(out, "ALTER TABLE "+local+on+" REMOVE TTL")
		}
	}
	return out
}
