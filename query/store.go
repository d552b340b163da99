// Package query is the read side of crumbs over ClickHouse: the questions analysts ask of
// what the sink wrote. In: a connection to the database the sink writes (its tables and
// materialised views, schemas/clickhouse). Out: timelines of a host, a service or an alert
// (Store.Timeline), alerts with their latest version and triage state (Store.Alerts,
// Store.Inbox with counts per facet, Store.Alert with its evidence and process tree), the
// service graph (Store.ServiceGraph) and the context in force (Store.ContextInForce). It
// writes nothing. `crumbs timeline`, `crumbs alerts` and the console ask through it.
//
// Every value from outside reaches ClickHouse as a bound parameter; only the database name
// (a plain identifier, checked by the sink's configuration) is written into the SQL.
package query

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Tables read, as DESIGN.md names them (dashboards query the same names).
const (
	ProcessEventsTable    = "process_events"
	NetworkEventsTable    = "network_events"
	FileEventsTable       = "file_events"
	IdentityEventsTable   = "identity_events"
	AlertsTable           = "alerts"
	AlertsFirstTable      = "alerts_first"
	AlertTriageTable      = "alert_triage"
	ContextChangesTable   = "context_changes"
	ContextDeploysTable   = "context_deploys"
	ContextInventoryTable = "context_inventory"
	ContextAccountsTable  = "context_accounts"
)

// ErrNotFound: the alert asked for is not in ClickHouse.
var ErrNotFound = errors.New("not found")

// Store answers queries over one crumbs database. It is safe for concurrent use.
type Store struct {
	conn     driver.Conn
	database string
	// in is "IN" on one server and "GLOBAL IN" on a cluster, where a subquery over a
	// Distributed table must be run once and sent to the shards; notIn likewise.
	in, notIn string
}

// New returns a Store reading database over conn; cluster is the sink's clickhouse.cluster
// (empty: one server). The caller keeps conn and closes it.
func New(conn driver.Conn, database, cluster string) *Store {
	s := &Store{conn: conn, database: database, in: "IN", notIn: "NOT IN"}
	if cluster != "" {
		s.in, s.notIn = "GLOBAL IN", "GLOBAL NOT IN"
	}
	return s
}

// Conn returns the connection, for queries of the caller's own.
func (s *Store) Conn() driver.Conn { return s.conn }

// Database returns the database read.
func (s *Store) Database() string { return s.database }

func (s *Store) table(name string) string { return s.database + "." + name }

// QueryStat is what ClickHouse's query log says of one query.
type QueryStat struct {
	QueryID    string  `json:"query_id"`
	Name       string  `json:"name"`
	DurationMs uint64  `json:"duration_ms"`
	ReadRows   uint64  `json:"read_rows"`
	ReadBytes  uint64  `json:"read_bytes"`
	WallMs     float64 `json:"wall_ms"` // as the client measured it
}

// queryLog runs queries with log_queries=1 and an id each, so that their cost can be read
// from system.query_log.
type queryLog struct {
	mu    sync.Mutex
	stats []QueryStat
}

func (l *queryLog) ctx(ctx context.Context, name string) (context.Context, *QueryStat) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	st := &QueryStat{QueryID: "crumbs-" + name + "-" + hex.EncodeToString(b[:]), Name: name}
	return ch.Context(ctx, ch.WithQueryID(st.QueryID), ch.WithSettings(ch.Settings{"log_queries": 1})), st
}

func (l *queryLog) done(st *QueryStat, start time.Time) {
	st.WallMs = float64(time.Since(start).Microseconds()) / 1000
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stats = append(l.stats, *st)
}

// scanner is a row being read.
type scanner interface{ Scan(...any) error }

// query runs q, calling scan for every row.
func (s *Store) query(ctx context.Context, log *queryLog, name, q string, args []any, scan func(rows scanner) error) error {
	qctx, st := log.ctx(ctx, name)
	start := time.Now()
	rows, err := s.conn.Query(qctx, q, args...)
	if err != nil {
		return fmt.Errorf("query %s: %w", name, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return fmt.Errorf("query %s: %w", name, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("query %s: %w", name, err)
	}
	log.done(st, start)
	return nil
}

// FillQueryStats reads from system.query_log what ClickHouse recorded of the queries (rows
// read, duration). It flushes the server's logs first, so it costs a few milliseconds.
func (s *Store) FillQueryStats(ctx context.Context, stats []QueryStat) error {
	if len(stats) == 0 {
		return nil
	}
	if err := s.conn.Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
		return fmt.Errorf("flush query log: %w", err)
	}
	idx := map[string]int{}
	args := make([]any, 0, len(stats))
	for i, st := range stats {
		idx[st.QueryID] = i
		args = append(args, st.QueryID)
	}
	q := "SELECT query_id, query_duration_ms, read_rows, read_bytes FROM system.query_log WHERE type = 2 AND event_date >= yesterday() AND query_id IN (" +
		placeholders(len(args)) + ")"
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("read query log: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var dur, readRows, readBytes uint64
		if err := rows.Scan(&id, &dur, &readRows, &readBytes); err != nil {
			return fmt.Errorf("read query log: %w", err)
		}
		st := &stats[idx[id]]
		st.DurationMs, st.ReadRows, st.ReadBytes = dur, readRows, readBytes
	}
	return rows.Err()
}

// placeholders returns n bound parameters for an IN list: the driver binds a slice as an
// array literal, which IN on ClickHouse 18.16 refuses.
func placeholders(n int) string {
	if n == 0 {
		return "''"
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// maxDateTime is the last second a ClickHouse DateTime (UInt32 seconds) holds.
var maxDateTime = time.Unix(math.MaxUint32, 0).UTC()

// clampDateTime brings t into what a DateTime holds (a zero time becomes the epoch).
func clampDateTime(t time.Time) time.Time {
	switch {
	case t.Before(time.Unix(0, 0)):
		return time.Unix(0, 0).UTC()
	case t.After(maxDateTime):
		return maxDateTime
	}
	return t.UTC().Truncate(time.Second)
}

// rangeArgs are the arguments of rangeWhere for [from, to].
func rangeArgs(from, to time.Time) []any {
	from, to = clampDateTime(from), clampDateTime(to)
	return []any{from.Format(time.DateOnly), to.Format(time.DateOnly), uint32(from.Unix()), uint32(to.Unix())}
}

// rangeWhere restricts a table with date and time columns to a range, by partition first.
const rangeWhere = "date BETWEEN toDate(?) AND toDate(?) AND time BETWEEN toDateTime(?) AND toDateTime(?)"

func anyArgs(vs []string) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = v
	}
	return out
}
