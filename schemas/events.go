package schemas

import (
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Kinds of events; each has a raw and an enriched topic.
const (
	KindProcess = "process"
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
	hi, lo := rng.Uint64(), rng.Uint64()
	idRands.Put(rng)
	var u [16]byte
	ms := uint64(max(at, 0) / int64(time.Millisecond))
	binary.BigEndian.PutUint64(u[0:8], ms<<16|hi&0x0fff|0x7000)                   // time, version 7, rand_a
	binary.BigEndian.PutUint64(u[8:16], lo&0x3fffffffffffffff|0x8000000000000000) // variant, rand_b
	var out [36]byte
	hex.Encode(out[0:8], u[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], u[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], u[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], u[8:10])
	out[23] = '-'
	hex.Encode(out[24:36], u[10:16])
	return string(out[:])
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
	PID     int32  `avro:"pid"`
	File    File   `avro:"file"`
	CmdLine string `avro:"cmd_line"`
}

// Process is the body of a process event.
type Process struct {
	PID           int32    `avro:"pid"`
	PPID          int32    `avro:"ppid"`
	CmdLine       string   `avro:"cmd_line"`
	Args          []string `avro:"args"`
	ArgsTruncated bool     `avro:"args_truncated"`
	CWD           string   `avro:"cwd"`
	File          File     `avro:"file"`
	UID           int64    `avro:"user.uid"`
	UserName      string   `avro:"user.name"`
	GID           int64    `avro:"group.gid"`
	GroupName     string   `avro:"group.name"`
	LoginUID      int64    `avro:"login_uid"`
	TTY           string   `avro:"tty"`
	CgroupID      int64    `avro:"cgroup_id"`
	SystemdUnit   string   `avro:"systemd_unit"`
	ContainerID   string   `avro:"container_id"`
	ExitCode      int32    `avro:"exit_code"`
	Parent        Parent   `avro:"parent"`
}

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
