package clickhouse

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/threatcrumbs/crumbs/pkg/retry"
	"github.com/threatcrumbs/crumbs/schemas"
)

// Names of the tables besides the event kinds' (schemas.Kinds names those), fixed by
// DESIGN.md: dashboards query them.
const (
	AlertsTable           = "alerts"
	ContextChangesTable   = "context_changes"
	ContextDeploysTable   = "context_deploys"
	ContextInventoryTable = "context_inventory"
	ContextAccountsTable  = "context_accounts"
)

// The built-in event kinds' tables, as their entries in schemas.Kinds name them, for the read
// side (forensics.go).
var (
	ProcessEventsTable  = kindTable(schemas.KindProcess)
	NetworkEventsTable  = kindTable(schemas.KindNetwork)
	FileEventsTable     = kindTable(schemas.KindFile)
	IdentityEventsTable = kindTable(schemas.KindIdentity)
	SystemEventsTable   = kindTable(schemas.KindSystem)
)

func kindTable(kind string) string {
	k, _ := schemas.Kinds.Lookup(kind)
	return k.Table
}

// alertColumns are the columns of alerts in the order InsertAlerts fills them.
var alertColumns = []string{
	"alert_id", "time", "time_ns", "date", "rule_id", "title", "severity", "tags", "group_key",
	"host_id", "host_name", "service", "window_start", "window_start_ns", "window_end",
	"window_end_ns", "count", "evidence", "summary", "version",
}

// existsChunk bounds the ids in one existence query, keeping it well under ClickHouse's
// max_query_size (256 KiB by default).
const existsChunk = 2000

// Store writes events, alerts and context records into ClickHouse over the native protocol.
// It is safe for concurrent use.
type Store struct {
	conn     driver.Conn
	database string
	cluster  string
	plans    sync.Map // *schemas.Kind -> *insertPlan
}

// Connect connects to the servers in cfg and checks that one answers; it changes nothing
// (the query commands use it; the sink uses Open).
func Connect(ctx context.Context, cfg Config) (*Store, error) {
	opts, err := options(cfg)
	if err != nil {
		return nil, err
	}
	conn, err := ch.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %v: %w", cfg.Addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("ping clickhouse %v: %w", cfg.Addr, err)
	}
	return &Store{conn: conn, database: cfg.Database, cluster: cfg.Cluster}, nil
}

// Open connects to the servers in cfg, checks that one answers, and applies the migrations.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	st, err := Connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := Migrate(ctx, st.conn, cfg.Database, cfg.Cluster); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// options returns the driver options for cfg. No default database in Auth: it may not exist
// yet, and every statement names it.
func options(cfg Config) (*ch.Options, error) {
	tlsCfg, err := cfg.TLS.Config()
	if err != nil {
		return nil, err
	}
	compression := &ch.Compression{Method: ch.CompressionNone}
	if cfg.compressed() {
		compression.Method = ch.CompressionLZ4
	}
	return &ch.Options{
		Addr:        cfg.Addr,
		Auth:        ch.Auth{Username: cfg.Username, Password: cfg.Password},
		TLS:         tlsCfg,
		DialTimeout: cfg.DialTimeout,
		Compression: compression,
		ClientInfo:  ch.ClientInfo{Products: []struct{ Name, Version string }{{Name: "crumbs-sink", Version: "1"}}},
	}, nil
}

// NewStore returns a Store on an open connection to a migrated database on one server.
// Close closes conn.
func NewStore(conn driver.Conn, database string) *Store {
	return &Store{conn: conn, database: database}
}

// Conn returns the connection, for queries of the caller's own.
func (s *Store) Conn() driver.Conn { return s.conn }

// Database returns the database the Store writes into.
func (s *Store) Database() string { return s.database }

// Close closes the connection.
func (s *Store) Close() error { return s.conn.Close() }

// InsertAlerts writes as into alerts in one INSERT, with the same guarantee as
// InsertColumns.
func (s *Store) InsertAlerts(ctx context.Context, as []*schemas.Alert) error {
	return insertRows(ctx, s, AlertsTable, alertTable, as)
}

// InsertContext writes context rows (of one kind) into their table.
func (s *Store) InsertContext(ctx context.Context, rows []*ContextRow) error {
	if len(rows) == 0 {
		return nil
	}
	spec, ok := contextTables[rows[0].Kind]
	if !ok {
		return fmt.Errorf("insert context: unknown kind %q", rows[0].Kind)
	}
	return insertRows(ctx, s, spec.table, spec.columns, rows)
}

// insertRows builds the columns of rows and sends them in one INSERT.
func insertRows[T any](ctx context.Context, s *Store, table string, cols []column[T], rows []T) error {
	if len(rows) == 0 {
		return nil
	}
	names, values := make([]string, len(cols)), make([]any, len(cols))
	for i, c := range cols {
		names[i], values[i] = c.name, c.build(rows)
	}
	return s.insertColumns(ctx, table, names, values)
}

// insertBlockRows is how many rows go in one data block of an INSERT. The driver's column
// buffers grow from empty for each INSERT and are reused from one block to the next, so
// blocks of a few thousand rows spare most of the growing (copying each column several times
// over) that one block of a whole batch costs; the server squashes the blocks of one INSERT
// into one part (min_insert_block_size_rows), and acknowledges them together.
const insertBlockRows = 2048

// insertColumns sends one INSERT naming its columns (ClickHouse 18.16 needs the names) with
// the data given column by column (each a slice with one value per row), which the driver
// encodes far faster than row by row, in blocks of insertBlockRows.
func (s *Store) insertColumns(ctx context.Context, table string, names []string, cols []any) error {
	q := "INSERT INTO " + s.database + "." + table + " (" + strings.Join(names, ", ") + ")"
	if s.cluster != "" {
		// Acknowledged means written to the shard, not queued on this node: offsets follow.
		ctx = ch.Context(ctx, ch.WithSettings(ch.Settings{"insert_distributed_sync": 1}))
	}
	rows := 0
	if len(cols) > 0 {
		rows = reflect.ValueOf(cols[0]).Len()
	}
	b, err := s.conn.PrepareBatch(ctx, q)
	if err != nil {
		return fmt.Errorf("insert into %s: prepare: %w", table, err)
	}
	defer b.Close()
	for lo := 0; lo < rows; lo += insertBlockRows {
		hi := min(lo+insertBlockRows, rows)
		for i, c := range cols {
			if err := appendColumn(b.Column(i), c, lo, hi); err != nil {
				// The driver refuses a value its column's type cannot hold: the rows' content.
				return fmt.Errorf("insert into %s: column %s: %w", table, names[i], retry.MarkPermanent(err))
			}
		}
		if hi < rows {
			if err := b.Flush(); err != nil {
				return fmt.Errorf("insert into %s: send a block: %w", table, err)
			}
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert into %s: send: %w", table, err)
	}
	return nil
}

// appendColumn appends rows [lo, hi) of a column's values to its batch column: whole, or an
// array per row (the driver appends a slice of arrays by reflection, item by item).
func appendColumn(c driver.BatchColumn, values any, lo, hi int) error {
	switch v := values.(type) {
	case []string:
		return c.Append(v[lo:hi])
	case []int32:
		return c.Append(v[lo:hi])
	case []int64:
		return c.Append(v[lo:hi])
	case []uint64:
		return c.Append(v[lo:hi])
	case []uint8:
		return c.Append(v[lo:hi])
	case []float64:
		return c.Append(v[lo:hi])
	case []time.Time:
		return c.Append(v[lo:hi])
	case [][]string:
		for _, row := range v[lo:hi] {
			if err := c.AppendRow(row); err != nil {
				return err
			}
		}
		return nil
	}
	return c.Append(reflect.ValueOf(values).Slice(lo, hi).Interface())
}

// ExistingIDs returns which of ids (of rows at times, ns) table already holds in idCol.
func (s *Store) ExistingIDs(ctx context.Context, table, idCol string, ids []string, times []int64) (map[string]bool, error) {
	return s.existingIDs(ctx, table, idCol, ids, times)
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

// withSettings returns ctx carrying ClickHouse settings for the queries made with it.
func withSettings(ctx context.Context, settings map[string]any) context.Context {
	return ch.Context(ctx, ch.WithSettings(ch.Settings(settings)))
}

// Dial returns a connection to the servers in cfg without waiting for one to answer: the
// first query connects (the console starts while ClickHouse is away, and says so per page).
func Dial(cfg Config) (driver.Conn, error) {
	opts, err := options(cfg)
	if err != nil {
		return nil, err
	}
	opts.ClientInfo.Products[0].Name = "crumbs-query"
	conn, err := ch.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %v: %w", cfg.Addr, err)
	}
	return conn, nil
}
