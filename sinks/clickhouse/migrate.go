package clickhouse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/threatcrumbs/crumbs/schemas"
)

// ServerVersion is a ClickHouse release as `SELECT version()` reports it, e.g. 18.16.1 or
// 24.8.1.1. The migrations are rendered for it, so one set of files serves old and new
// servers.
type ServerVersion struct {
	Major, Minor, Patch, Build int
}

// ParseServerVersion parses the result of `SELECT version()`.
func ParseServerVersion(s string) (ServerVersion, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) < 2 || len(parts) > 4 {
		return ServerVersion{}, fmt.Errorf("parse ClickHouse version %q: want 2 to 4 dotted numbers", s)
	}
	var n [4]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return ServerVersion{}, fmt.Errorf("parse ClickHouse version %q: part %q is not a number", s, p)
		}
		n[i] = v
	}
	return ServerVersion{Major: n[0], Minor: n[1], Patch: n[2], Build: n[3]}, nil
}

// AtLeast reports whether v is major.minor or later.
func (v ServerVersion) AtLeast(major, minor int) bool {
	return v.Major > major || (v.Major == major && v.Minor >= minor)
}

func (v ServerVersion) String() string {
	return fmt.Sprintf("%d.%d.%d.%d", v.Major, v.Minor, v.Patch, v.Build)
}

// MigrationTemplate is what a migration file sees as `.` when it is rendered.
type MigrationTemplate struct {
	// Database is the configured database, a plain identifier (Config.Validate checks it).
	Database string
	// Server is the version of the server the migration is rendered for.
	Server ServerVersion
	// Cluster is the cluster (remote_servers) the tables are created on; empty for one server.
	Cluster string
}

// localSuffix names the storage table behind a Distributed table on a cluster.
const localSuffix = "_local"

// Table returns the qualified name of the table that stores rows for name: name itself on
// one server, name_local on a cluster (name is then the Distributed table in front of it).
func (m MigrationTemplate) Table(name string) string {
	if m.Cluster != "" {
		return m.Database + "." + name + localSuffix
	}
	return m.Database + "." + name
}

// OnCluster returns " ON CLUSTER <cluster>" on a cluster, nothing on one server.
func (m MigrationTemplate) OnCluster() string {
	if m.Cluster != "" {
		return " ON CLUSTER " + m.Cluster
	}
	return ""
}

// Engine returns the table engine for table: engine(args...) on one server, its Replicated
// variant with a ZooKeeper path per shard and table on a cluster.
func (m MigrationTemplate) Engine(table, engine string, args ...string) string {
	if m.Cluster != "" {
		zk := "'/clickhouse/tables/{shard}/" + m.Database + "/" + table + "', '{replica}'"
		return "Replicated" + engine + "(" + strings.Join(append([]string{zk}, args...), ", ") + ")"
	}
	return engine + "(" + strings.Join(args, ", ") + ")"
}

// Distributed returns, on a cluster, the statement creating the Distributed table named
// table in front of table_local, sharding rows by shardKey; nothing on one server.
func (m MigrationTemplate) Distributed(table, shardKey string) string {
	if m.Cluster == "" {
		return ""
	}
	return "CREATE TABLE IF NOT EXISTS " + m.Database + "." + table + " ON CLUSTER " + m.Cluster +
		" AS " + m.Table(table) + "\nENGINE = Distributed(" + m.Cluster + ", " + m.Database + ", " +
		table + localSuffix + ", " + shardKey + ");"
}

// AddColumn returns the statement adding a column to table (on a cluster, to table_local on
// every shard; follow the columns with Redistribute so that the Distributed table shows
// them). Servers before 20.1 lack ADD COLUMN IF NOT EXISTS; Migrate treats their "already
// exists" error as success, so the statements stay idempotent everywhere.
func (m MigrationTemplate) AddColumn(table, column, typ string) string {
	ine := ""
	if m.Server.AtLeast(20, 1) {
		ine = "IF NOT EXISTS "
	}
	return "ALTER TABLE " + m.Table(table) + m.OnCluster() + " ADD COLUMN " + ine + column + " " + typ + ";\n"
}

// Redistribute returns, on a cluster, the statements that recreate the Distributed table in
// front of table_local, so that it takes the columns added to table_local since; nothing on
// one server. The Distributed table holds no rows (the sink inserts synchronously), and it
// cannot be altered ON CLUSTER where shards replicate internally (ClickHouse 18.16 refuses
// an ALTER of a table that is not Replicated on such a cluster).
func (m MigrationTemplate) Redistribute(table, shardKey string) string {
	if m.Cluster == "" {
		return ""
	}
	return "DROP TABLE IF EXISTS " + m.Database + "." + table + m.OnCluster() + ";\n" + m.Distributed(table, shardKey)
}

// NotIn is NOT IN on one server and GLOBAL NOT IN on a cluster, where a subquery over a
// Distributed table runs once and its result goes to every shard.
func (m MigrationTemplate) NotIn() string {
	if m.Cluster != "" {
		return "GLOBAL NOT IN"
	}
	return "NOT IN"
}

// LowCardinality returns LowCardinality(t) on servers where it is a stable type (20.1 and
// later) and t itself on older ones, where it needs allow_experimental_low_cardinality_type.
func (m MigrationTemplate) LowCardinality(t string) string {
	if m.Server.AtLeast(20, 1) {
		return "LowCardinality(" + t + ")"
	}
	return t
}

// Migration is one migration file rendered for a server.
type Migration struct {
	Version    uint32   // from the file name's leading number
	Name       string   // the file name without the number and .sql, e.g. process_events
	Statements []string // the SQL statements, in order, without trailing semicolons
}

// RenderMigrations renders every migration in schemas.ClickHouse, in file-name order, for a
// server of version v, the given database and cluster (empty: one server).
func RenderMigrations(v ServerVersion, database, cluster string) ([]Migration, error) {
	files, err := fs.Glob(schemas.ClickHouse, "clickhouse/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(files)
	data := MigrationTemplate{Database: database, Server: v, Cluster: cluster}
	var out []Migration
	seen := map[uint32]string{}
	for _, f := range files {
		base := strings.TrimSuffix(path.Base(f), ".sql")
		num, name, ok := strings.Cut(base, "_")
		ver, err := strconv.ParseUint(num, 10, 32)
		if !ok || err != nil || name == "" {
			return nil, fmt.Errorf("migration schemas/%s: name must be NNNN_name.sql", f)
		}
		if prev, dup := seen[uint32(ver)]; dup {
			return nil, fmt.Errorf("migration schemas/%s: version %d already used by %s", f, ver, prev)
		}
		seen[uint32(ver)] = f
		src, err := schemas.ClickHouse.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read migration schemas/%s: %w", f, err)
		}
		tmpl, err := template.New(f).Option("missingkey=error").Parse(string(src))
		if err != nil {
			return nil, fmt.Errorf("parse migration schemas/%s: %w", f, err)
		}
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, data); err != nil {
			return nil, fmt.Errorf("render migration schemas/%s: %w", f, err)
		}
		out = append(out, Migration{Version: uint32(ver), Name: name, Statements: splitStatements(buf.String())})
	}
	return out, nil
}

// splitStatements splits SQL on semicolons outside quotes and comments, dropping statements
// that hold nothing but comments.
func splitStatements(sql string) []string {
	var stmts []string
	var cur strings.Builder
	hasCode := false
	flush := func() {
		if s := strings.TrimSpace(cur.String()); hasCode && s != "" {
			stmts = append(stmts, s)
		}
		cur.Reset()
		hasCode = false
	}
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		switch {
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			end := strings.IndexByte(sql[i:], '\n')
			if end < 0 {
				end = len(sql) - i
			}
			cur.WriteString(sql[i : i+end])
			i += end - 1
		case c == '\'' || c == '`' || c == '"':
			j := i + 1
			for j < len(sql) && sql[j] != c {
				if sql[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(sql) {
				j = len(sql) - 1
			}
			cur.WriteString(sql[i : j+1])
			hasCode = true
			i = j
		case c == ';':
			flush()
		default:
			cur.WriteByte(c)
			if c != ' ' && c != '\n' && c != '\t' && c != '\r' {
				hasCode = true
			}
		}
	}
	flush()
	return stmts
}

// Migrate brings database up to date on the server behind conn: it reads the server's
// version, creates the database and the schema_migrations table when missing, and applies
// the migrations not yet recorded there, in order, recording each. With cluster set the
// tables are created ON CLUSTER with Replicated engines and Distributed tables in front.
// Every statement is idempotent, so running Migrate again is safe.
//
// Migrate runs one at a time in a process, and adds no column that the server already has:
// ClickHouse 18.16 crashes (SIGSEGV) when two ALTER TABLE ADD COLUMN of one table run at
// once, as they did when a sink and a test, or two sinks, migrated the same database
// together. Processes that start together on one server still race; start the first sink
// alone on a new or older schema with such a server (docs/clickhouse.md).
func Migrate(ctx context.Context, conn driver.Conn, database, cluster string) error {
	migrating.Lock()
	defer migrating.Unlock()
	if !identifier.MatchString(database) {
		return fmt.Errorf("migrate: database %q is not a plain identifier", database)
	}
	if cluster != "" && !identifier.MatchString(cluster) {
		return fmt.Errorf("migrate: cluster %q is not a plain identifier", cluster)
	}
	ver, err := QueryServerVersion(ctx, conn)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	migrations, err := RenderMigrations(ver, database, cluster)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	onCluster := MigrationTemplate{Cluster: cluster}.OnCluster()
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+database+onCluster); err != nil {
		return fmt.Errorf("migrate: create database %s: %w", database, err)
	}
	if err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+database+".schema_migrations "+
		"(version UInt32, name String, applied_at DateTime) ENGINE = ReplacingMergeTree() ORDER BY version"); err != nil {
		return fmt.Errorf("migrate: create %s.schema_migrations: %w", database, err)
	}
	applied, err := AppliedMigrations(ctx, conn, database)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	done := map[uint32]bool{}
	for _, v := range applied {
		done[v] = true
	}
	var have map[string]bool // table.column already on the server, read once when needed
	for _, m := range migrations {
		if done[m.Version] {
			continue
		}
		for i, stmt := range m.Statements {
			if sm := addColumn.FindStringSubmatch(stmt); sm != nil {
				if have == nil {
					if have, err = serverColumns(ctx, conn, database); err != nil {
						return fmt.Errorf("migrate: %w", err)
					}
				}
				if have[sm[1]+"."+sm[2]] {
					continue
				}
			}
			if err := conn.Exec(ctx, stmt); err != nil && !columnExists(stmt, err) {
				return fmt.Errorf("migrate: apply %04d_%s statement %d: %w", m.Version, m.Name, i+1, err)
			}
		}
		if err := recordMigration(ctx, conn, database, m); err != nil {
			return fmt.Errorf("migrate: record %04d_%s: %w", m.Version, m.Name, err)
		}
	}
	return nil
}

// migrating serialises Migrate in this process.
var migrating sync.Mutex

// addColumn matches the statements MigrationTemplate.AddColumn renders: the table (without
// its database) and the column.
var addColumn = regexp.MustCompile(`(?m)^ALTER TABLE [A-Za-z0-9_]+\.([A-Za-z0-9_]+)(?: ON CLUSTER [A-Za-z0-9_]+)? ADD COLUMN (?:IF NOT EXISTS )?([A-Za-z0-9_]+) `)

// serverColumns returns the columns of database's tables on the server behind conn, as
// table.column.
func serverColumns(ctx context.Context, conn driver.Conn, database string) (map[string]bool, error) {
	rows, err := conn.Query(ctx, "SELECT table, name FROM system.columns WHERE database = ?", database)
	if err != nil {
		return nil, fmt.Errorf("read the columns of %s: %w", database, err)
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var table, column string
		if err := rows.Scan(&table, &column); err != nil {
			return nil, fmt.Errorf("read the columns of %s: %w", database, err)
		}
		have[table+"."+column] = true
	}
	return have, rows.Err()
}

// QueryServerVersion asks the server behind conn for its version.
func QueryServerVersion(ctx context.Context, conn driver.Conn) (ServerVersion, error) {
	var raw string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&raw); err != nil {
		return ServerVersion{}, fmt.Errorf("read server version: %w", err)
	}
	return ParseServerVersion(raw)
}

// errIllegalColumn is ClickHouse's ILLEGAL_COLUMN, which servers before ADD COLUMN IF NOT
// EXISTS return when the column is already there.
const errIllegalColumn = 44

// columnExists reports whether err says an ADD COLUMN statement found its column already
// added (by an earlier, interrupted run of the same migration).
func columnExists(stmt string, err error) bool {
	var ex *ch.Exception
	return strings.Contains(stmt, " ADD COLUMN ") && errors.As(err, &ex) &&
		ex.Code == errIllegalColumn && strings.Contains(ex.Message, "already exists")
}

// AppliedMigrations returns the versions recorded in database.schema_migrations, ascending.
func AppliedMigrations(ctx context.Context, conn driver.Conn, database string) ([]uint32, error) {
	rows, err := conn.Query(ctx, "SELECT DISTINCT version FROM "+database+".schema_migrations ORDER BY version")
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	defer rows.Close()
	var out []uint32
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("read applied migrations: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	return out, nil
}

func recordMigration(ctx context.Context, conn driver.Conn, database string, m Migration) error {
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+database+".schema_migrations (version, name, applied_at)")
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.Append(m.Version, m.Name, time.Now().UTC().Truncate(time.Second)); err != nil {
		return err
	}
	return b.Send()
}
