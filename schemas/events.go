package schemas

import (
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Process actions.
const (
	ActionExec = "exec"
	ActionFork = "fork"
	ActionExit = "exit"
)

// Host names the machine an event was seen on.
type Host struct {
	ID   string `avro:"id"`   // machine id
	Name string `avro:"name"` // host name
}

// Envelope is what every event starts with.
type Envelope struct {
	EventID string `avro:"event_id"` // time-ordered unique id
	Time    int64  `avro:"time"`     // event time, ns since the epoch
	Host    Host   `avro:"host"`
	Kind    string `avro:"kind"`
}

// NewEventID returns a time-ordered unique event id (UUIDv7) for an event happening now.
func NewEventID() string { return NewEventIDAt(time.Now().UnixNano()) }

// NewEventIDAt returns a time-ordered unique event id (UUIDv7, RFC 9562) for an event at at
// (ns since the epoch): its 48-bit millisecond time is the event's, its 74 random bits come
// from ChaCha8 streams seeded from crypto/rand. Collectors make one per event under storms
// of events, where a clock read, a lock and a read of the system's random source per id
// showed in the profiles.
func NewEventIDAt(at int64) string {
	rng := idRands.Get().(*rand.ChaCha8)
	var out [eventIDLen]byte
	formatEventID(&out, at, rng)
	idRands.Put(rng)
	return string(out[:])
}

// eventIDLen is the length of an event id's text.
const eventIDLen = 36

// formatEventID writes the UUIDv7 of an event at at (ns since the epoch) with random bits
// from rng into out.
func formatEventID(out *[eventIDLen]byte, at int64, rng *rand.ChaCha8) {
	hi, lo := rng.Uint64(), rng.Uint64()
	var u [16]byte
	ms := uint64(max(at, 0) / int64(time.Millisecond))
	binary.BigEndian.PutUint64(u[0:8], ms<<16|hi&0x0fff|0x7000)                   // time, version 7, rand_a
	binary.BigEndian.PutUint64(u[8:16], lo&0x3fffffffffffffff|0x8000000000000000) // variant, rand_b
	hex.Encode(out[0:8], u[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], u[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], u[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], u[8:10])
	out[23] = '-'
	hex.Encode(out[24:36], u[10:16])
}

// EventIDs makes event ids as NewEventIDAt does, for one goroutine that makes many: it keeps
// its own random stream, and cuts the ids' text from blocks of eventIDBlock ids, one
// allocation per block instead of one per id. An id is an ordinary string: it never changes,
// and its block is freed once no id of it is referred to. The zero value is ready to use.
type EventIDs struct {
	rng   *rand.ChaCha8
	block []byte // the rest of the current block
}

// eventIDBlock is how many ids one allocation of EventIDs holds (2,304 bytes).
const eventIDBlock = 64

// At returns a new event id for an event at at (ns since the epoch).
func (g *EventIDs) At(at int64) string {
	if g.rng == nil {
		g.rng = idRands.New().(*rand.ChaCha8)
	}
	if len(g.block) < eventIDLen {
		g.block = make([]byte, eventIDBlock*eventIDLen)
	}
	out := (*[eventIDLen]byte)(g.block[:eventIDLen])
	g.block = g.block[eventIDLen:]
	formatEventID(out, at, g.rng)
	return unsafe.String(&out[0], eventIDLen) // out is never written again
}

var idRands = sync.Pool{New: func() any {
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // crypto/rand.Read does not fail (it panics if the system cannot give randomness)
	return rand.NewChaCha8(seed)
}}

// File names an executable or a file.
type File struct {
	Path   string `avro:"path"`
	Name   string `avro:"name"`
	SHA256 string `avro:"sha256"` // hex
}

// Parent is what a process event says of the process's parent.
type Parent struct {
	PID       int32  `avro:"pid"`
	File      File   `avro:"file"`
	CmdLine   string `avro:"cmd_line"`
	StartTime int64  `avro:"start_time"` // ns since the epoch; 0 when unknown
}

// Process is the body of a process event.
type Process struct {
	PID           int32      `avro:"pid"`
	PPID          int32      `avro:"ppid"`
	CmdLine       string     `avro:"cmd_line"`
	Args          []string   `avro:"args"`
	ArgsTruncated bool       `avro:"args_truncated"`
	CWD           string     `avro:"cwd"`
	File          File       `avro:"file"`
	UID           int64      `avro:"user.uid"`
	UserName      string     `avro:"user.name"`
	GID           int64      `avro:"group.gid"`
	GroupName     string     `avro:"group.name"`
	LoginUID      int64      `avro:"login_uid"`
	TTY           string     `avro:"tty"`
	CgroupID      int64      `avro:"cgroup_id"`
	SystemdUnit   string     `avro:"systemd_unit"`
	ContainerID   string     `avro:"container_id"`
	Container     *Container `avro:"container"` // nil: no container, or its runtime not asked yet
	ExitCode      int32      `avro:"exit_code"`
	Parent        Parent     `avro:"parent"`
	// StartTime is when the process started (its fork), ns since the epoch: with PID it
	// names one process; 0 when unknown.
	StartTime int64 `avro:"start_time"`
	// EUID and EGID are the effective ids (after the exec: a setuid or setgid executable's
	// owner or group); -1 when unknown.
	EUID int64 `avro:"euid"`
	EGID int64 `avro:"egid"`
	// SessionID is the pid of the session leader; 0 when unknown.
	SessionID int32 `avro:"session_id"`
	// StdinType and StdoutType say what fd 0 and fd 1 were at exec (FD* constants); empty
	// when not known.
	StdinType  string `avro:"stdin_type"`
	StdoutType string `avro:"stdout_type"`
}

// What a standard descriptor of a process is at exec (Process.StdinType, StdoutType).
const (
	FDTTY        = "tty"
	FDPipe       = "pipe"
	FDFile       = "file"
	FDChar       = "char" // another character device, such as /dev/null
	FDSocketInet = "socket_inet"
	FDSocketUnix = "socket_unix"
	FDSocket     = "socket" // a socket of another family
	FDOther      = "other"
	FDNone       = "none" // closed
)

// Enrichment is what the enricher adds to an event (Avro record crumbs.Enrichment).
type Enrichment struct {
	Service       string      `avro:"service"`
	Environment   string      `avro:"environment"`
	Role          string      `avro:"role"`
	Changes       []ChangeRef `avro:"changes"`
	Deploy        *DeployRef  `avro:"deploy"`
	Verdict       string      `avro:"verdict"` // match, mismatch, unknown, unmanaged; "" when not judged
	VerdictReason string      `avro:"verdict_reason"`
	Account       *AccountRef `avro:"account"`
}

// Artifact verdicts: how an executable or a watched file compares with deployment manifests.
const (
	VerdictMatch     = "match"
	VerdictMismatch  = "mismatch"
	VerdictUnknown   = "unknown"
	VerdictUnmanaged = "unmanaged"
)

// ChangeRef is a change window active at an event's time.
type ChangeRef struct {
	ID       string           `avro:"id"`
	Type     string           `avro:"type"`
	Title    string           `avro:"title"`
	Expected []ExpectedEffect `avro:"expected"`
}

// ExpectedEffect is an effect a change announces, e.g. network_bytes up to 4x on shop-db.
type ExpectedEffect struct {
	Service    string  `avro:"service" json:"service" yaml:"service"`
	Metric     string  `avro:"metric" json:"metric" yaml:"metric"`
	UpToFactor float64 `avro:"up_to_factor" json:"up_to_factor" yaml:"up_to_factor"`
}

// DeployRef is the deployment current at an event's time.
type DeployRef struct {
	ID         string `avro:"id"`
	Service    string `avro:"service"`
	Version    string `avro:"version"`
	DeployedAt int64  `avro:"deployed_at"`
}

// AccountRef is the policy of the account an event acts as or on.
type AccountRef struct {
	Name           string   `avro:"name"`
	Type           string   `avro:"type"`
	Interactive    bool     `avro:"interactive"`
	AllowedSources []string `avro:"allowed_sources"`
	AllowedUsers   []string `avro:"allowed_users"`
}

// ProcessEvent is an exec, fork or exit (schema crumbs.ProcessEvent).
type ProcessEvent struct {
	Envelope
	Action     string      `avro:"action"`
	Process    Process     `avro:"process"`
	Enrichment *Enrichment `avro:"enrichment"` // nil on raw events
}

// JoinArgs returns argv as one command line.
func JoinArgs(args []string) string { return strings.Join(args, " ") }

// Actor is the process that caused a network, file or identity event.
type Actor struct {
	PID         int32      `avro:"pid"`
	File        File       `avro:"file"`
	CmdLine     string     `avro:"cmd_line"`
	User        User       `avro:"user"`
	CgroupID    int64      `avro:"cgroup_id"`
	SystemdUnit string     `avro:"systemd_unit"`
	ContainerID string     `avro:"container_id"`
	Container   *Container `avro:"container"` // nil: no container, or its runtime not asked yet
}

// Container is what the container runtime (and, in Kubernetes, the API server) says about
// the container a process runs in (Avro record crumbs.Container).
type Container struct {
	Name    string `avro:"name"`
	Image   string `avro:"image"`
	ImageID string `avro:"image_id"`
	Runtime string `avro:"runtime"` // docker, podman, containerd or cri-o
	Pod     *Pod   `avro:"pod"`     // nil outside Kubernetes
}

// Pod is the Kubernetes pod of a container (Avro record crumbs.Pod).
type Pod struct {
	Name         string   `avro:"name"`
	Namespace    string   `avro:"namespace"`
	UID          string   `avro:"uid"`
	Labels       []string `avro:"labels"` // key=value, sorted
	WorkloadKind string   `avro:"workload_kind"`
	WorkloadName string   `avro:"workload_name"`
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
	// ActionConnectSummary and ActionAcceptSummary sum a process's short outbound (inbound)
	// TCP connections with one destination (service port) over an interval: Packets holds
	// how many connections, the bytes are their totals, Time is the first one's
	// establishment and DurationNs runs to the last one's close.
	ActionConnectSummary = "connect_summary"
	ActionAcceptSummary  = "accept_summary"
)

// NetworkEvent is a connection lifecycle step, a summary of short TCP connections, a
// listening socket, a UDP flow or a DNS answer
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
	Mtime   int64    `avro:"mtime"` // ns since the epoch; 0 when not statted
}

// File actions.
const (
	ActionCreate      = "create"
	ActionWrite       = "write"
	ActionRename      = "rename"
	ActionDelete      = "delete"
	ActionChmod       = "chmod"
	ActionChown       = "chown"
	ActionRead        = "read"   // a sensitive file opened for reading
	ActionSetCap      = "setcap" // file capabilities set (security.capability)
	ActionUtimes      = "utimes" // times set to given values (touch -d, -r)
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
