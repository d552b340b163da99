package schemas

import (
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"reflect"
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
	PID     int32
	File    File
	CmdLine string
}

// Process is the body of a process event.
type Process struct {
	PID           int32
	PPID          int32
	CmdLine       string
	Args          []string
	ArgsTruncated bool
	CWD           string
	File          File
	UID           int64
	UserName      string
	GID           int64
	GroupName     string
	LoginUID      int64
	TTY           string
	CgroupID      int64
	SystemdUnit   string
	ContainerID   string
	ExitCode      int32
	Parent        Parent
}

// Enrichment is what the enricher adds to an event (Avro record crumbs.Enrichment).
type Enrichment struct {
	Service       string      `avro:"service"`
	Environment   string      `avro:"environment"`
	Role          string      `avro:"role"`
	Changes       []ChangeRef `avro:"changes"`
	Deploy        *DeployRef  `avro:"deploy,crumbs.DeployRef"`
	Verdict       string      `avro:"verdict"` // match, mismatch, unknown, unmanaged; "" when not judged
	VerdictReason string      `avro:"verdict_reason"`
	Account       *AccountRef `avro:"account,crumbs.AccountRef"`
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
	Action     string
	Process    Process
	Enrichment *Enrichment // nil on raw events
}

// Native returns the event in goavro's native form for crumbs.ProcessEvent.
func (e *ProcessEvent) Native() map[string]any {
	p := &e.Process
	args := make([]any, len(p.Args))
	for i, a := range p.Args {
		args[i] = a
	}
	m := map[string]any{
		"event_id": e.EventID,
		"time":     e.Time,
		"host":     hostNative(e.Host),
		"kind":     e.Kind,
		"action":   e.Action,
		"process": map[string]any{
			"pid":            p.PID,
			"ppid":           p.PPID,
			"cmd_line":       p.CmdLine,
			"args":           args,
			"args_truncated": p.ArgsTruncated,
			"cwd":            p.CWD,
			"file":           fileNative(p.File),
			"user":           map[string]any{"uid": p.UID, "name": p.UserName},
			"group":          map[string]any{"gid": p.GID, "name": p.GroupName},
			"login_uid":      p.LoginUID,
			"tty":            p.TTY,
			"cgroup_id":      p.CgroupID,
			"systemd_unit":   p.SystemdUnit,
			"container_id":   p.ContainerID,
			"exit_code":      p.ExitCode,
			"parent": map[string]any{
				"pid":      p.Parent.PID,
				"file":     fileNative(p.Parent.File),
				"cmd_line": p.Parent.CmdLine,
			},
		},
		"enrichment": nil,
	}
	if e.Enrichment != nil {
		m["enrichment"] = EnrichmentNative(e.Enrichment)
	}
	return m
}

// EnrichmentNative returns the enrichment as the value of an event's "enrichment" union field.
func EnrichmentNative(en *Enrichment) map[string]any {
	return map[string]any{"crumbs.Enrichment": en.native()}
}

func (en *Enrichment) native() map[string]any { return structToNative(reflect.ValueOf(en).Elem()) }

// ProcessEventFromNative converts goavro's native form of crumbs.ProcessEvent.
func ProcessEventFromNative(v any) (*ProcessEvent, error) {
	r := reader{}
	m := r.rec(v, "")
	e := &ProcessEvent{Envelope: r.envelope(m)}
	e.Action = r.str(m, "action")
	pm := r.rec(m["process"], "process")
	p := &e.Process
	p.PID = r.i32(pm, "pid")
	p.PPID = r.i32(pm, "ppid")
	p.CmdLine = r.str(pm, "cmd_line")
	p.Args = r.strs(pm, "args")
	p.ArgsTruncated = r.boolean(pm, "args_truncated")
	p.CWD = r.str(pm, "cwd")
	p.File = r.file(pm["file"])
	um := r.rec(pm["user"], "process.user")
	p.UID, p.UserName = r.i64(um, "uid"), r.str(um, "name")
	gm := r.rec(pm["group"], "process.group")
	p.GID, p.GroupName = r.i64(gm, "gid"), r.str(gm, "name")
	p.LoginUID = r.i64(pm, "login_uid")
	p.TTY = r.str(pm, "tty")
	p.CgroupID = r.i64(pm, "cgroup_id")
	p.SystemdUnit = r.str(pm, "systemd_unit")
	p.ContainerID = r.str(pm, "container_id")
	p.ExitCode = r.i32(pm, "exit_code")
	par := r.rec(pm["parent"], "process.parent")
	p.Parent = Parent{PID: r.i32(par, "pid"), File: r.file(par["file"]), CmdLine: r.str(par, "cmd_line")}
	if en := r.union(m["enrichment"], "crumbs.Enrichment"); en != nil {
		e.Enrichment = &Enrichment{}
		if err := nativeToStruct(en, reflect.ValueOf(e.Enrichment).Elem(), "enrichment"); err != nil {
			r.fail("%v", err)
		}
	}
	return e, r.err
}

// EnvelopeFromNative converts goavro's native form of crumbs.Envelope (or any event).
func EnvelopeFromNative(v any) (Envelope, error) {
	r := reader{}
	env := r.envelope(r.rec(v, ""))
	return env, r.err
}

func hostNative(h Host) map[string]any { return map[string]any{"id": h.ID, "name": h.Name} }

func fileNative(f File) map[string]any {
	return map[string]any{"path": f.Path, "name": f.Name, "sha256": f.SHA256}
}

// reader pulls typed fields out of goavro native maps, remembering the first error.
type reader struct{ err error }

func (r *reader) fail(format string, a ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, a...)
	}
}

func (r *reader) rec(v any, field string) map[string]any {
	m, ok := v.(map[string]any)
	if !ok {
		r.fail("field %q: want a record, got %T", field, v)
		return map[string]any{}
	}
	return m
}

func (r *reader) str(m map[string]any, k string) string {
	s, ok := m[k].(string)
	if !ok && m[k] != nil {
		r.fail("field %q: want a string, got %T", k, m[k])
	}
	return s
}

func (r *reader) i64(m map[string]any, k string) int64 {
	switch x := m[k].(type) {
	case int64:
		return x
	case int32:
		return int64(x)
	case int:
		return int64(x)
	case nil:
		return 0
	}
	r.fail("field %q: want a long, got %T", k, m[k])
	return 0
}

func (r *reader) i32(m map[string]any, k string) int32 { return int32(r.i64(m, k)) }

func (r *reader) boolean(m map[string]any, k string) bool {
	b, _ := m[k].(bool)
	return b
}

func (r *reader) strs(m map[string]any, k string) []string {
	a, _ := m[k].([]any)
	out := make([]string, 0, len(a))
	for _, x := range a {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func (r *reader) file(v any) File {
	m := r.rec(v, "file")
	return File{Path: r.str(m, "path"), Name: r.str(m, "name"), SHA256: r.str(m, "sha256")}
}

func (r *reader) union(v any, branch string) map[string]any {
	if v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		r.fail("union %s: got %T", branch, v)
		return nil
	}
	inner, _ := m[branch].(map[string]any)
	return inner
}

func (r *reader) envelope(m map[string]any) Envelope {
	h := r.rec(m["host"], "host")
	return Envelope{
		EventID: r.str(m, "event_id"),
		Time:    r.i64(m, "time"),
		Host:    Host{ID: r.str(h, "id"), Name: r.str(h, "name")},
		Kind:    r.str(m, "kind"),
	}
}

// JoinArgs returns argv as one command line.
func JoinArgs(args []string) string { return strings.Join(args, " ") }
