package schemas

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The event kinds, each declared once here, in Kinds: its name, its schema and codec, its
// topics, its ClickHouse table and columns, its retention and what the enricher joins on.
// Every stage loops over a KindTable (Kinds unless a test gives its own): the collectors'
// publisher and the enricher name the topics from it, the enricher reads the join's fields by
// the paths it names, the detector type-checks conditions against the kind's schema and reads
// fields by path, the sink decodes each kind into its codec's column buffer and inserts the
// columns the entry lists, and loadgen and the dashboards' tests make events of every kind.
// Adding a kind is a schema (avro/<kind>.avsc and its Go type, go generate), a migration
// creating its table (clickhouse/), an entry in Kinds and its collector.

// Names of the built-in event kinds: the envelope's kind field, and the last element of their
// topics' names.
const (
	KindProcess  = "process"
	KindNetwork  = "network"
	KindFile     = "file"
	KindIdentity = "identity"
	KindSystem   = "system"
)

// Full names of the event and context schemas besides those in schemas.go.
const (
	NetworkSchema  = "crumbs.NetworkEvent"
	FileSchema     = "crumbs.FileEvent"
	IdentitySchema = "crumbs.IdentityEvent"
	SystemSchema   = "crumbs.SystemEvent"
	ChangeSchema   = "crumbs.context.ChangeRecord"
	DeploySchema   = "crumbs.context.DeployRecord"
	AccountSchema  = "crumbs.context.AccountRecord"
)

// Kind is one event kind.
type Kind struct {
	// Name is the kind: the envelope's kind field of its events, the source rules name, the
	// name of its collector, and the last element of its topics' names: events go to
	// <prefix>.raw.<Name> and, enriched, to <prefix>.enriched.<Name>.
	Name string
	// Codec is the codec of its events' schema: Codec.Schema names the schema, Codec.File
	// is its file under avro/ (empty for a schema that is not built in), Codec.Fields are the
	// field paths the other entries name. Its fields start with the Envelope's.
	Codec *Codec
	// Table is the ClickHouse table its events land in, created by a migration under
	// clickhouse/. Dashboards and users query it by this name: renaming it breaks them.
	Table string
	// Columns are the columns of Table the sink fills, each from one field of Codec. The
	// table may have more (filled by their defaults); every column listed must exist.
	Columns []TableColumn
	// RetentionDays is how many days Table keeps by default (the configuration key
	// clickhouse.retention.<Table> overrides it); 0 keeps forever.
	RetentionDays int
	// Join names the fields the enricher joins context on.
	Join JoinFields
	// Summary is the field path of the text an alert on one event of the kind quotes after
	// the rule's title (a command line); empty: the title alone.
	Summary string
}

// TableColumn is one column of a kind's table and the field its values come from.
type TableColumn struct {
	// Name is the column's name in the table.
	Name string
	// Path is the field path (one of the codec's Fields) whose values the column stores.
	Path string
	// As says how the values are stored when the column's type is not the field's own.
	As Conversion
}

// Conversion says how a field's values are stored in a column. Without one, a string is
// stored as String, an int as Int32, a long as Int64, a double as Float64, a boolean as UInt8
// (0 or 1) and an array as an Array of its items.
type Conversion string

// Conversions of an event time (a long of nanoseconds since the epoch).
const (
	// AsIs stores the field's values as they are.
	AsIs Conversion = ""
	// AsDateTime stores the time as a DateTime: whole seconds, UTC.
	AsDateTime Conversion = "DateTime"
	// AsDate stores the time's UTC day as a Date.
	AsDate Conversion = "Date"
	// AsUInt64 stores the nanoseconds as a UInt64.
	AsUInt64 Conversion = "UInt64"
)

// JoinFields names, by field path, what the enricher looks at in an event of a kind: the
// account it acts as or on, and the artifact (an executable, a file) whose deployment verdict
// it judges. An empty path is not looked at.
type JoinFields struct {
	// User paths name the account: the first of them that is not empty in an event.
	User []string
	// Path is the artifact's path; NewPath, when not empty in an event, replaces it (the
	// destination of a rename).
	Path, NewPath string
	// SHA256, Owner, Group and Mode are what the artifact is compared with a deployment's
	// manifest on.
	SHA256, Owner, Group, Mode string
	// ArtifactActions are the actions whose events have their artifact judged; empty: every
	// event with a Path.
	ArtifactActions []string
	// DeletedActions are the actions after which the artifact no longer exists.
	DeletedActions []string
}

// Paths returns every path j names, for checks.
func (j JoinFields) Paths() []string {
	out := slices.Clone(j.User)
	for _, p := range []string{j.Path, j.NewPath, j.SHA256, j.Owner, j.Group, j.Mode} {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// KindTable is a set of event kinds; stages take one and loop over it.
type KindTable []*Kind

// Kinds are the built-in event kinds.
var Kinds = KindTable{processKind, networkKind, fileKind, identityKind, systemKind}

// Lookup returns the kind named name.
func (t KindTable) Lookup(name string) (*Kind, bool) {
	for _, k := range t {
		if k.Name == name {
			return k, true
		}
	}
	return nil, false
}

// BySchema returns the kind whose events have the schema of this full name.
func (t KindTable) BySchema(schema string) (*Kind, bool) {
	for _, k := range t {
		if k.Codec.Schema == schema {
			return k, true
		}
	}
	return nil, false
}

// Names returns the kinds' names in table order.
func (t KindTable) Names() []string {
	out := make([]string, len(t))
	for i, k := range t {
		out[i] = k.Name
	}
	return out
}

// With returns a copy of the table with more kinds, or an error when one is invalid or takes
// a name, schema or table already in use.
func (t KindTable) With(more ...*Kind) (KindTable, error) {
	out := append(slices.Clone(t), more...)
	return out, out.Check()
}

// Check reports every problem of the table: a kind that is not coherent (Kind.Check), or two
// kinds with the same name, schema or table.
func (t KindTable) Check() error {
	var errs []error
	names, schemas, tables := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, k := range t {
		if err := k.Check(); err != nil {
			errs = append(errs, err)
			continue
		}
		for _, dup := range []struct {
			seen map[string]bool
			what string
			v    string
		}{{names, "name", k.Name}, {schemas, "schema", k.Codec.Schema}, {tables, "table", k.Table}} {
			if dup.seen[dup.v] {
				errs = append(errs, fmt.Errorf("kind %s: %s %s is another kind's", k.Name, dup.what, dup.v))
			}
			dup.seen[dup.v] = true
		}
	}
	return errors.Join(errs...)
}

// envelopePaths are the fields every event starts with, in this order.
var envelopePaths = []string{"event_id", "time", "host.id", "host.name", "kind"}

// Check reports whether the entry is coherent: a name that can be part of a topic's name,
// a table name that is an identifier, a codec whose fields start with the envelope's, and
// columns and join fields that name fields of the codec, with conversions that fit them.
func (k *Kind) Check() error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("kind %s: "+format, append([]any{k.Name}, a...)...))
	}
	if !identifier(k.Name) {
		bad("name: must be lower-case letters, digits and underscores, starting with a letter")
	}
	if !identifier(k.Table) {
		bad("table %q: must be lower-case letters, digits and underscores, starting with a letter", k.Table)
	}
	if k.Codec == nil {
		bad("no codec")
		return errors.Join(errs...)
	}
	fields := map[string]FieldInfo{}
	for _, f := range k.Codec.Fields {
		fields[f.Path] = f
	}
	for i, p := range envelopePaths {
		if i >= len(k.Codec.Fields) || k.Codec.Fields[i].Path != p {
			bad("schema %s: does not start with the envelope's fields (%s)", k.Codec.Schema, strings.Join(envelopePaths, ", "))
			break
		}
	}
	if k.RetentionDays < 0 {
		bad("retention: %d days: must not be negative", k.RetentionDays)
	}
	seen := map[string]bool{}
	for _, c := range k.Columns {
		f, ok := fields[c.Path]
		switch {
		case seen[c.Name]:
			bad("column %s listed twice", c.Name)
		case !identifier(c.Name):
			bad("column %q: not an identifier", c.Name)
		case !ok:
			bad("column %s: no field %s in %s", c.Name, c.Path, k.Codec.Schema)
		case f.Presence:
			bad("column %s: %s is an optional record, not a value", c.Name, c.Path)
		case c.As != AsIs && (f.Type != "long" || f.Arrays != 0):
			bad("column %s: %s stores a long (nanoseconds since the epoch); %s is %s", c.Name, c.As, c.Path, describeField(f))
		case c.As != AsIs && c.As != AsDateTime && c.As != AsDate && c.As != AsUInt64:
			bad("column %s: unknown conversion %q", c.Name, c.As)
		}
		seen[c.Name] = true
	}
	for _, p := range k.Join.Paths() {
		if f, ok := fields[p]; !ok || f.Type != "string" || f.Arrays != 0 {
			bad("join field %s: not a string field of %s", p, k.Codec.Schema)
		}
	}
	if k.Summary != "" {
		if f, ok := fields[k.Summary]; !ok || f.Type != "string" || f.Arrays != 0 {
			bad("summary %s: not a string field of %s", k.Summary, k.Codec.Schema)
		}
	}
	return errors.Join(errs...)
}

func describeField(f FieldInfo) string {
	return strings.Repeat("array of ", f.Arrays) + f.Type
}

// identifier reports whether s is a lower-case identifier: safe in a topic's and an SQL name.
func identifier(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// eventColumns are the columns every event table starts with: the envelope's.
func eventColumns() []TableColumn {
	return []TableColumn{
		{Name: "event_id", Path: "event_id"},
		{Name: "time", Path: "time", As: AsDateTime},
		{Name: "time_ns", Path: "time", As: AsUInt64},
		{Name: "date", Path: "time", As: AsDate},
		{Name: "host_id", Path: "host.id"},
		{Name: "host_name", Path: "host.name"},
	}
}

// enrichmentColumns are the columns every event table ends with: what the enricher added
// (empty on a raw event).
func enrichmentColumns() []TableColumn {
	return []TableColumn{
		{Name: "service", Path: "enrichment.service"},
		{Name: "environment", Path: "enrichment.environment"},
		{Name: "role", Path: "enrichment.role"},
		{Name: "change_ids", Path: "enrichment.changes.id"},
		{Name: "change_types", Path: "enrichment.changes.type"},
		{Name: "deploy_id", Path: "enrichment.deploy.id"},
		{Name: "deploy_version", Path: "enrichment.deploy.version"},
		{Name: "verdict", Path: "enrichment.verdict"},
		{Name: "verdict_reason", Path: "enrichment.verdict_reason"},
		{Name: "account_name", Path: "enrichment.account.name"},
		{Name: "account_type", Path: "enrichment.account.type"},
	}
}

// actorColumns are the process that caused a network, file or identity event (an Actor at
// process.).
func actorColumns() []TableColumn {
	return []TableColumn{
		{Name: "pid", Path: "process.pid"},
		{Name: "exe_path", Path: "process.file.path"},
		{Name: "exe_name", Path: "process.file.name"},
		{Name: "exe_sha256", Path: "process.file.sha256"},
		{Name: "cmd_line", Path: "process.cmd_line"},
		{Name: "uid", Path: "process.user.uid"},
		{Name: "user_name", Path: "process.user.name"},
		{Name: "cgroup_id", Path: "process.cgroup_id"},
		{Name: "systemd_unit", Path: "process.systemd_unit"},
		{Name: "container_id", Path: "process.container_id"},
		{Name: "container_name", Path: "process.container.name"},
		{Name: "container_image", Path: "process.container.image"},
		{Name: "container_image_id", Path: "process.container.image_id"},
		{Name: "pod_name", Path: "process.container.pod.name"},
		{Name: "pod_namespace", Path: "process.container.pod.namespace"},
		{Name: "pod_labels", Path: "process.container.pod.labels"},
		{Name: "workload_kind", Path: "process.container.pod.workload_kind"},
		{Name: "workload_name", Path: "process.container.pod.workload_name"},
	}
}

func columns(parts ...[]TableColumn) []TableColumn { return slices.Concat(parts...) }

var processKind = &Kind{
	Name: KindProcess, Codec: ProcessEventCodec, Table: "process_events", RetentionDays: 30,
	Columns: columns(eventColumns(), []TableColumn{
		{Name: "kind", Path: "kind"},
		{Name: "action", Path: "action"},
		{Name: "pid", Path: "process.pid"},
		{Name: "ppid", Path: "process.ppid"},
		{Name: "cmd_line", Path: "process.cmd_line"},
		{Name: "args", Path: "process.args"},
		{Name: "args_truncated", Path: "process.args_truncated"},
		{Name: "cwd", Path: "process.cwd"},
		{Name: "exe_path", Path: "process.file.path"},
		{Name: "exe_name", Path: "process.file.name"},
		{Name: "exe_sha256", Path: "process.file.sha256"},
		{Name: "uid", Path: "process.user.uid"},
		{Name: "user_name", Path: "process.user.name"},
		{Name: "gid", Path: "process.group.gid"},
		{Name: "group_name", Path: "process.group.name"},
		{Name: "login_uid", Path: "process.login_uid"},
		{Name: "tty", Path: "process.tty"},
		{Name: "cgroup_id", Path: "process.cgroup_id"},
		{Name: "systemd_unit", Path: "process.systemd_unit"},
		{Name: "container_id", Path: "process.container_id"},
		{Name: "container_name", Path: "process.container.name"},
		{Name: "container_image", Path: "process.container.image"},
		{Name: "container_image_id", Path: "process.container.image_id"},
		{Name: "pod_name", Path: "process.container.pod.name"},
		{Name: "pod_namespace", Path: "process.container.pod.namespace"},
		{Name: "pod_labels", Path: "process.container.pod.labels"},
		{Name: "workload_kind", Path: "process.container.pod.workload_kind"},
		{Name: "workload_name", Path: "process.container.pod.workload_name"},
		{Name: "exit_code", Path: "process.exit_code"},
		{Name: "parent_pid", Path: "process.parent.pid"},
		{Name: "parent_exe_path", Path: "process.parent.file.path"},
		{Name: "parent_exe_name", Path: "process.parent.file.name"},
		{Name: "parent_exe_sha256", Path: "process.parent.file.sha256"},
		{Name: "parent_cmd_line", Path: "process.parent.cmd_line"},
		{Name: "start_time", Path: "process.start_time"},
		{Name: "parent_start_time", Path: "process.parent.start_time"},
		{Name: "euid", Path: "process.euid"},
		{Name: "egid", Path: "process.egid"},
		{Name: "session_id", Path: "process.session_id"},
		{Name: "stdin_type", Path: "process.stdin_type"},
		{Name: "stdout_type", Path: "process.stdout_type"},
	}, enrichmentColumns()),
	// The executable of an exec, run as its user.
	Join: JoinFields{User: []string{"process.user.name"}, Path: "process.file.path", SHA256: "process.file.sha256",
		ArtifactActions: []string{ActionExec}},
	Summary: "process.cmd_line",
}

var networkKind = &Kind{
	Name: KindNetwork, Codec: NetworkEventCodec, Table: "network_events", RetentionDays: 30,
	Columns: columns(eventColumns(), []TableColumn{{Name: "action", Path: "action"}}, actorColumns(), []TableColumn{
		{Name: "direction", Path: "network.direction"},
		{Name: "protocol", Path: "network.protocol"},
		{Name: "ip_version", Path: "network.ip_version"},
		{Name: "src_ip", Path: "network.src_endpoint.ip"},
		{Name: "src_port", Path: "network.src_endpoint.port"},
		{Name: "src_hostname", Path: "network.src_endpoint.hostname"},
		{Name: "dst_ip", Path: "network.dst_endpoint.ip"},
		{Name: "dst_port", Path: "network.dst_endpoint.port"},
		{Name: "dst_hostname", Path: "network.dst_endpoint.hostname"},
		{Name: "bytes_sent", Path: "network.bytes_sent"},
		{Name: "bytes_received", Path: "network.bytes_received"},
		{Name: "packets", Path: "network.packets"},
		{Name: "duration_ns", Path: "network.duration_ns"},
		{Name: "dns_answers", Path: "network.dns_answers"},
	}, enrichmentColumns()),
	Join:    JoinFields{User: []string{"process.user.name"}},
	Summary: "process.cmd_line",
}

var fileKind = &Kind{
	Name: KindFile, Codec: FileEventCodec, Table: "file_events", RetentionDays: 90,
	Columns: columns(eventColumns(), []TableColumn{{Name: "action", Path: "action"}}, actorColumns(), []TableColumn{
		{Name: "file_path", Path: "file.path"},
		{Name: "file_name", Path: "file.name"},
		{Name: "new_path", Path: "file.new_path"},
		{Name: "file_sha256", Path: "file.sha256"},
		{Name: "file_size", Path: "file.size"},
		{Name: "file_owner", Path: "file.owner"},
		{Name: "file_group", Path: "file.group"},
		{Name: "file_uid", Path: "file.uid"},
		{Name: "file_gid", Path: "file.gid"},
		{Name: "file_mode", Path: "file.mode"},
		{Name: "changed", Path: "file.changed"},
		{Name: "file_mtime", Path: "file.mtime"},
	}, enrichmentColumns()),
	// The file changed or scanned, as the process's user changed it.
	Join: JoinFields{User: []string{"process.user.name"}, Path: "file.path", NewPath: "file.new_path", SHA256: "file.sha256",
		Owner: "file.owner", Group: "file.group", Mode: "file.mode", DeletedActions: []string{ActionDelete, ActionScanRemoved}},
	Summary: "process.cmd_line",
}

var identityKind = &Kind{
	Name: KindIdentity, Codec: IdentityEventCodec, Table: "identity_events", RetentionDays: 180,
	Columns: columns(eventColumns(), []TableColumn{{Name: "action", Path: "action"}}, actorColumns(), []TableColumn{
		{Name: "identity_service", Path: "identity.service"},
		{Name: "user", Path: "identity.user"},
		{Name: "target_user", Path: "identity.target_user"},
		{Name: "remote_host", Path: "identity.remote_host"},
		{Name: "result", Path: "identity.result"},
		{Name: "code", Path: "identity.code"},
		{Name: "old_uid", Path: "identity.old_uid"},
		{Name: "new_uid", Path: "identity.new_uid"},
		{Name: "old_gid", Path: "identity.old_gid"},
		{Name: "new_gid", Path: "identity.new_gid"},
	}, enrichmentColumns()),
	// The account switched into or logged in as, else the one authenticating.
	Join:    JoinFields{User: []string{"identity.target_user", "identity.user"}},
	Summary: "process.cmd_line",
}

var systemKind = &Kind{
	Name: KindSystem, Codec: SystemEventCodec, Table: "system_events", RetentionDays: 30,
	Columns: columns(eventColumns(), []TableColumn{
		{Name: "scope", Path: "system.scope"},
		{Name: "unit", Path: "system.unit"},
		{Name: "cgroup_id", Path: "system.cgroup_id"},
		{Name: "interval_ns", Path: "system.interval_ns"},
		{Name: "cpu_seconds", Path: "system.cpu_seconds"},
		{Name: "memory_bytes", Path: "system.memory_bytes"},
		{Name: "process_count", Path: "system.process_count"},
		{Name: "connections", Path: "system.connections"},
		{Name: "bytes_sent", Path: "system.bytes_sent"},
		{Name: "bytes_received", Path: "system.bytes_received"},
	}, enrichmentColumns()),
}

// EventKey returns the event id and time an event's Avro body starts with (every kind's
// schema starts with the Envelope's fields); the id views body. It reads nothing else, so it
// cannot tell a whole body from a truncated one.
func EventKey(body []byte) (id string, time int64, err error) {
	d := decoder{buf: body}
	id, time = d.string(), d.long()
	return id, time, d.err
}
