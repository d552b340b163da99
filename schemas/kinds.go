package schemas

// Event kinds besides process; each has a raw and an enriched topic and a ClickHouse table.
const (
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

// EventSchemas maps each event kind to its schema's full name.
var EventSchemas = map[string]string{
	KindProcess:  ProcessSchema,
	KindNetwork:  NetworkSchema,
	KindFile:     FileSchema,
	KindIdentity: IdentitySchema,
	KindSystem:   SystemSchema,
}

// Actor is the process that caused a network, file or identity event.
type Actor struct {
	PID         int32  `avro:"pid"`
	File        File   `avro:"file"`
	CmdLine     string `avro:"cmd_line"`
	User        User   `avro:"user"`
	CgroupID    int64  `avro:"cgroup_id"`
	SystemdUnit string `avro:"systemd_unit"`
	ContainerID string `avro:"container_id"`
}

// User is a user id and name.
type User struct {
	UID  int64  `avro:"uid"`
	Name string `avro:"name"`
}

// Endpoint is one end of a connection.
type Endpoint struct {
	IP       string `avro:"ip"`
	Port     int32  `avro:"port"`
	Hostname string `avro:"hostname"` // the name the process resolved for IP, when known
}

// Network is the body of a network event.
type Network struct {
	Direction     string   `avro:"direction"` // outbound, inbound or none
	Protocol      string   `avro:"protocol"`  // tcp or udp
	IPVersion     int32    `avro:"ip_version"`
	Src           Endpoint `avro:"src_endpoint"`
	Dst           Endpoint `avro:"dst_endpoint"`
	BytesSent     int64    `avro:"bytes_sent"`
	BytesReceived int64    `avro:"bytes_received"`
	Packets       int64    `avro:"packets"`
	DurationNs    int64    `avro:"duration_ns"`
	DNSAnswers    []string `avro:"dns_answers"`
}

// Network actions.
const (
	ActionConnect = "connect"
	ActionAccept  = "accept"
	ActionUpdate  = "update"
	ActionClose   = "close"
	ActionListen  = "listen"
	ActionUDPFlow = "udp_flow"
	ActionDNS     = "dns"
)

// NetworkEvent is a connection lifecycle step, a listening socket, a UDP flow or a DNS answer
// (schema crumbs.NetworkEvent).
type NetworkEvent struct {
	Envelope
	Action     string      `avro:"action"`
	Process    Actor       `avro:"process"`
	Network    Network     `avro:"network"`
	Enrichment *Enrichment `avro:"enrichment"`
}

// TargetFile is the file a file event is about.
type TargetFile struct {
	Path    string   `avro:"path"`
	Name    string   `avro:"name"`
	NewPath string   `avro:"new_path"`
	SHA256  string   `avro:"sha256"`
	Size    int64    `avro:"size"`
	Owner   string   `avro:"owner"`
	Group   string   `avro:"group"`
	UID     int64    `avro:"uid"`
	GID     int64    `avro:"gid"`
	Mode    string   `avro:"mode"` // octal, e.g. 0755
	Changed []string `avro:"changed"`
}

// File actions.
const (
	ActionCreate      = "create"
	ActionWrite       = "write"
	ActionRename      = "rename"
	ActionDelete      = "delete"
	ActionChmod       = "chmod"
	ActionChown       = "chown"
	ActionScanAdded   = "scan_added"
	ActionScanRemoved = "scan_removed"
	ActionScanChanged = "scan_changed"
)

// FileEvent is a change under a watched path or a scan's finding (schema crumbs.FileEvent).
type FileEvent struct {
	Envelope
	Action     string      `avro:"action"`
	Process    Actor       `avro:"process"`
	File       TargetFile  `avro:"file"`
	Enrichment *Enrichment `avro:"enrichment"`
}

// Identity is the body of an identity event.
type Identity struct {
	Service    string `avro:"service"`
	User       string `avro:"user"`
	TargetUser string `avro:"target_user"`
	RemoteHost string `avro:"remote_host"`
	Result     string `avro:"result"` // success or failure
	Code       int32  `avro:"code"`
	OldUID     int64  `avro:"old_uid"`
	NewUID     int64  `avro:"new_uid"`
	OldGID     int64  `avro:"old_gid"`
	NewGID     int64  `avro:"new_gid"`
}

// Identity actions and results.
const (
	ActionAuth         = "auth"
	ActionSessionOpen  = "session_open"
	ActionSessionClose = "session_close"
	ActionSetUID       = "setuid"
	ActionSetGID       = "setgid"
	ActionSetUIDExec   = "setuid_exec"
	ResultSuccess      = "success"
	ResultFailure      = "failure"
)

// IdentityEvent is an authentication, a session or a credential change (schema
// crumbs.IdentityEvent).
type IdentityEvent struct {
	Envelope
	Action     string      `avro:"action"`
	Process    Actor       `avro:"process"`
	Identity   Identity    `avro:"identity"`
	Enrichment *Enrichment `avro:"enrichment"`
}

// System is the body of a system event.
type System struct {
	Scope         string  `avro:"scope"` // service or host
	Unit          string  `avro:"unit"`
	CgroupID      int64   `avro:"cgroup_id"`
	IntervalNs    int64   `avro:"interval_ns"`
	CPUSeconds    float64 `avro:"cpu_seconds"`
	MemoryBytes   int64   `avro:"memory_bytes"`
	ProcessCount  int64   `avro:"process_count"`
	Connections   int64   `avro:"connections"`
	BytesSent     int64   `avro:"bytes_sent"`
	BytesReceived int64   `avro:"bytes_received"`
}

// SystemEvent is resource use of a service or the host over an interval (schema
// crumbs.SystemEvent).
type SystemEvent struct {
	Envelope
	System     System      `avro:"system"`
	Enrichment *Enrichment `avro:"enrichment"`
}

// Health is the body of a health event: events a collector lost for one reason, or, once
// when it starts, what it does without a capability this host refuses.
type Health struct {
	Collector    string `avro:"collector"`
	Reason       string `avro:"reason"`
	Dropped      int64  `avro:"dropped"`       // since the previous health event of this reason
	DroppedTotal int64  `avro:"dropped_total"` // since the collector started
	// For capability_refused, feature_off and collector_off: what does without which
	// capability, the kernel's answer, how it is done instead and what is lost.
	Feature    string `avro:"feature"`
	Capability string `avro:"capability"`
	Answer     string `avro:"answer"`
	Way        string `avro:"way"`
	Lost       string `avro:"lost"`
}

// HealthEvent reports events a collector lost, or what it cannot do on this host (schema
// crumbs.HealthEvent, topic crumbs.health).
type HealthEvent struct {
	Envelope
	Health Health `avro:"health"`
}
