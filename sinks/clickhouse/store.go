package clickhouse

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/threatcrumbs/crumbs/schemas"
)

// Table names, fixed by DESIGN.md (dashboards query them).
const (
	ProcessEventsTable = "process_events"
	AlertsTable        = "alerts"
)

// processColumns are the columns of process_events in the order InsertProcessEvents fills
// them.
var processColumns = []string{
	"event_id", "time", "time_ns", "date", "kind", "host_id", "host_name", "action",
	"pid", "ppid", "cmd_line", "args", "args_truncated", "cwd", "exe_path", "exe_name", "exe_sha256",
	"uid", "user_name", "gid", "group_name", "login_uid", "tty", "cgroup_id", "systemd_unit",
	"container_id", "exit_code", "parent_pid", "parent_exe_path", "parent_exe_name",
	"parent_exe_sha256", "parent_cmd_line", "service", "environment", "role",
}

// alertColumns are the columns of alerts in the order InsertAlerts fills them.
var alertColumns = []string{
	"alert_id", "time", "time_ns", "date", "rule_id", "title", "severity", "tags", "group_key",
	"host_id", "host_name", "service", "window_start", "window_start_ns", "window_end",
	"window_end_ns", "count", "evidence", "summary",
}

// existsChunk bounds the ids in one existence query, keeping it well under ClickHouse's
// max_query_size (256 KiB by default).
const existsChunk = 2000

// Store writes process events and alerts into ClickHouse over the native protocol. It is
// safe for concurrent use.
type Store struct {
	conn     driver.Conn
	database string
}

// Open connects to the servers in cfg, checks that one answers, and applies the migrations.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	// No default database in Auth: it may not exist yet, and every statement names it.
	conn, err := ch.Open(&ch.Options{
		Addr:        cfg.Addr,
		Auth:        ch.Auth{Username: cfg.Username, Password: cfg.Password},
		DialTimeout: cfg.DialTimeout,
		Compression: &ch.Compression{Method: ch.CompressionLZ4},
		ClientInfo:  ch.ClientInfo{Products: []struct{ Name, Version string }{{Name: "crumbs-sink", Version: "1"}}},
	})
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %v: %w", cfg.Addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("ping clickhouse %v: %w", cfg.Addr, err)
	}
	if err := Migrate(ctx, conn, cfg.Database); err != nil {
		conn.Close()
		return nil, err
	}
	return &Store{conn: conn, database: cfg.Database}, nil
}

// NewStore returns a Store on an open connection to a migrated database. Close closes conn.
func NewStore(conn driver.Conn, database string) *Store {
	return &Store{conn: conn, database: database}
}

// Conn returns the connection, for queries of the caller's own.
func (s *Store) Conn() driver.Conn { return s.conn }

// Database returns the database the Store writes into.
func (s *Store) Database() string { return s.database }

// Close closes the connection.
func (s *Store) Close() error { return s.conn.Close() }

// InsertProcessEvents writes evs into process_events in one INSERT. It returns when
// ClickHouse acknowledged the rows, or with an error, in which case none, some or all of
// them may have been written.
func (s *Store) InsertProcessEvents(ctx context.Context, evs []*schemas.ProcessEvent) error {
	if len(evs) == 0 {
		return nil
	}
	n := len(evs)
	var (
		eventID, kind, hostID, hostName, action, cmdLine, cwd, exePath, exeName, exeSHA  = mk[string](n), mk[string](n), mk[string](n), mk[string](n), mk[string](n), mk[string](n), mk[string](n), mk[string](n), mk[string](n), mk[string](n)
		userName, groupName, tty, unit, container, pExePath, pExeName, pExeSHA, pCmdLine = mk[string](n), mk[string](n), mk[string](n), mk[string](n), mk[string](n), mk[string](n), mk[string](n), mk[string](n), mk[string](n)
		service, environment, role                                                       = mk[string](n), mk[string](n), mk[string](n)
		ts, dates                                                                        = mk[time.Time](n), mk[time.Time](n)
		timeNs                                                                           = mk[uint64](n)
		pid, ppid, exitCode, pPID                                                        = mk[int32](n), mk[int32](n), mk[int32](n), mk[int32](n)
		uid, gid, loginUID, cgroupID                                                     = mk[int64](n), mk[int64](n), mk[int64](n), mk[int64](n)
		args                                                                             = mk[[]string](n)
		argsTrunc                                                                        = mk[uint8](n)
	)
	for _, e := range evs {
		p := &e.Process
		t, d, tn := eventTime(e.Time)
		eventID, ts, timeNs, dates = append(eventID, e.EventID), append(ts, t), append(timeNs, tn), append(dates, d)
		kind, hostID, hostName, action = append(kind, e.Kind), append(hostID, e.Host.ID), append(hostName, e.Host.Name), append(action, e.Action)
		pid, ppid, cmdLine = append(pid, p.PID), append(ppid, p.PPID), append(cmdLine, p.CmdLine)
		a := p.Args
		if a == nil {
			a = []string{}
		}
		args, argsTrunc, cwd = append(args, a), append(argsTrunc, boolUInt8(p.ArgsTruncated)), append(cwd, p.CWD)
		exePath, exeName, exeSHA = append(exePath, p.File.Path), append(exeName, p.File.Name), append(exeSHA, p.File.SHA256)
		uid, userName, gid, groupName = append(uid, p.UID), append(userName, p.UserName), append(gid, p.GID), append(groupName, p.GroupName)
		loginUID, tty, cgroupID, unit = append(loginUID, p.LoginUID), append(tty, p.TTY), append(cgroupID, p.CgroupID), append(unit, p.SystemdUnit)
		container, exitCode = append(container, p.ContainerID), append(exitCode, p.ExitCode)
		pPID, pExePath, pExeName = append(pPID, p.Parent.PID), append(pExePath, p.Parent.File.Path), append(pExeName, p.Parent.File.Name)
		pExeSHA, pCmdLine = append(pExeSHA, p.Parent.File.SHA256), append(pCmdLine, p.Parent.CmdLine)
		var en schemas.Enrichment
		if e.Enrichment != nil {
			en = *e.Enrichment
		}
		service, environment, role = append(service, en.Service), append(environment, en.Environment), append(role, en.Role)
	}
	return s.insertColumns(ctx, ProcessEventsTable, processColumns, []any{
		eventID, ts, timeNs, dates, kind, hostID, hostName, action,
		pid, ppid, cmdLine, args, argsTrunc, cwd, exePath, exeName, exeSHA,
		uid, userName, gid, groupName, loginUID, tty, cgroupID, unit,
		container, exitCode, pPID, pExePath, pExeName,
		pExeSHA, pCmdLine, service, environment, role,
	})
}

// InsertAlerts writes as into alerts in one INSERT, with the same guarantee as
// InsertProcessEvents.
func (s *Store) InsertAlerts(ctx context.Context, as []*schemas.Alert) error {
	if len(as) == 0 {
		return nil
	}
	n := len(as)
	var (
		alertID, ruleID, title, severity, groupKey, hostID, hostName, service, summary = mk[string](n), mk[string](n), mk[string](n), mk[string](n), mk[string](n), mk[string](n), mk[string](n), mk[string](n), mk[string](n)
		ts, dates, wStart, wEnd                                                        = mk[time.Time](n), mk[time.Time](n), mk[time.Time](n), mk[time.Time](n)
		timeNs, wStartNs, wEndNs                                                       = mk[uint64](n), mk[uint64](n), mk[uint64](n)
		count                                                                          = mk[int64](n)
		tags, evidence                                                                 = mk[[]string](n), mk[[]string](n)
	)
	for _, a := range as {
		t, d, tn := eventTime(a.Time)
		ws, _, wsn := eventTime(a.WindowStart)
		we, _, wen := eventTime(a.WindowEnd)
		alertID, ts, timeNs, dates = append(alertID, a.AlertID), append(ts, t), append(timeNs, tn), append(dates, d)
		ruleID, title, severity = append(ruleID, a.RuleID), append(title, a.Title), append(severity, a.Severity)
		tags, groupKey = append(tags, nonNil(a.Tags)), append(groupKey, a.GroupKey)
		hostID, hostName, service = append(hostID, a.Host.ID), append(hostName, a.Host.Name), append(service, a.Service)
		wStart, wStartNs, wEnd, wEndNs = append(wStart, ws), append(wStartNs, wsn), append(wEnd, we), append(wEndNs, wen)
		count, evidence, summary = append(count, a.Count), append(evidence, nonNil(a.Evidence)), append(summary, a.Summary)
	}
	return s.insertColumns(ctx, AlertsTable, alertColumns, []any{
		alertID, ts, timeNs, dates, ruleID, title, severity, tags, groupKey,
		hostID, hostName, service, wStart, wStartNs, wEnd,
		wEndNs, count, evidence, summary,
	})
}

// insertColumns sends one INSERT naming its columns (ClickHouse 18.16 needs the names) with
// the data given column by column, which the driver encodes far faster than row by row.
func (s *Store) insertColumns(ctx context.Context, table string, names []string, cols []any) error {
	q := "INSERT INTO " + s.database + "." + table + " (" + strings.Join(names, ", ") + ")"
	b, err := s.conn.PrepareBatch(ctx, q)
	if err != nil {
		return fmt.Errorf("insert into %s: prepare: %w", table, err)
	}
	defer b.Close()
	for i, c := range cols {
		if err := b.Column(i).Append(c); err != nil {
			return fmt.Errorf("insert into %s: column %s: %w", table, names[i], err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert into %s: send: %w", table, err)
	}
	return nil
}

// ExistingEventIDs returns which of evs' event ids process_events already holds.
func (s *Store) ExistingEventIDs(ctx context.Context, evs []*schemas.ProcessEvent) (map[string]bool, error) {
	ids, times := make([]string, len(evs)), make([]int64, len(evs))
	for i, e := range evs {
		ids[i], times[i] = e.EventID, e.Time
	}
	return s.existingIDs(ctx, ProcessEventsTable, "event_id", ids, times)
}

// ExistingAlertIDs returns which of as' alert ids alerts already holds.
func (s *Store) ExistingAlertIDs(ctx context.Context, as []*schemas.Alert) (map[string]bool, error) {
	ids, times := make([]string, len(as)), make([]int64, len(as))
	for i, a := range as {
		ids[i], times[i] = a.AlertID, a.Time
	}
	return s.existingIDs(ctx, AlertsTable, "alert_id", ids, times)
}

// existingIDs looks ids up in table, narrowing the search to the rows' days and seconds so
// that ClickHouse reads only the partitions and index ranges they can be in.
func (s *Store) existingIDs(ctx context.Context, table, idCol string, ids []string, times []int64) (map[string]bool, error) {
	found := map[string]bool{}
	for start := 0; start < len(ids); start += existsChunk {
		end := min(start+existsChunk, len(ids))
		lo, hi := times[start], times[start]
		for _, t := range times[start:end] {
			lo, hi = min(lo, t), max(hi, t)
		}
		loT, loD, _ := eventTime(lo)
		hiT, hiD, _ := eventTime(hi)
		// One placeholder per id: the driver binds a slice as an array literal, which IN on
		// ClickHouse 18.16 refuses.
		q := "SELECT " + idCol + " FROM " + s.database + "." + table +
			" WHERE date BETWEEN toDate(?) AND toDate(?) AND time BETWEEN toDateTime(?) AND toDateTime(?) AND " +
			idCol + " IN (" + strings.Repeat("?, ", end-start-1) + "?)"
		args := make([]any, 0, 4+end-start)
		args = append(args, loD.Format(time.DateOnly), hiD.Format(time.DateOnly), uint32(loT.Unix()), uint32(hiT.Unix()))
		for _, id := range ids[start:end] {
			args = append(args, id)
		}
		rows, err := s.conn.Query(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("look up existing %s in %s: %w", idCol, table, err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("look up existing %s in %s: %w", idCol, table, err)
			}
			found[id] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("look up existing %s in %s: %w", idCol, table, err)
		}
	}
	return found, nil
}

// maxDateTimeNs is the last nanosecond a ClickHouse DateTime (UInt32 seconds) can hold.
const maxDateTimeNs = int64(math.MaxUint32)*int64(time.Second) + int64(time.Second) - 1

// ValidTime reports whether ns (since the epoch) fits a ClickHouse DateTime.
func ValidTime(ns int64) bool { return ns >= 0 && ns <= maxDateTimeNs }

// eventTime returns the DateTime, the UTC day and the UInt64 nanoseconds stored for an
// event time, clamped into DateTime's range (the sink dead-letters events outside it).
func eventTime(ns int64) (time.Time, time.Time, uint64) {
	ns = min(max(ns, 0), maxDateTimeNs)
	t := time.Unix(0, ns).UTC()
	y, m, d := t.Date()
	return t.Truncate(time.Second), time.Date(y, m, d, 0, 0, 0, 0, time.UTC), uint64(ns)
}

func mk[T any](n int) []T { return make([]T, 0, n) }

func boolUInt8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
