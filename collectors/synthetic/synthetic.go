// Package synthetic is a collector of made-up events, for load tests and benchmarks (`crumbs
// loadgen`): it produces realistic raw events of every kind of a kind table (schemas.Kinds),
// mixed as a busy host's are, at a target rate, each stamped with the time it is made so that
// end-to-end latency can be measured downstream. Out: one event at a time, with its kind, for
// the caller to publish to crumbs.raw.<kind>.
package synthetic

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/threatcrumbs/crumbs/schemas"
)

// Config says what to generate.
type Config struct {
	Rate     int           // events per second; 0: as fast as the sink of events allows
	Count    int           // events in all; 0: until ctx is done or Duration passes
	Duration time.Duration // how long to run; 0: until Count or ctx
	Hosts    int           // distinct hosts the events come from; default 10
	// SuspiciousEach makes every n-th process event a shell started by java (which the
	// built-in rules alert on); 0: never.
	SuspiciousEach int
	Seed           uint64 // random seed, for reproducible runs
	// Mix is each kind's share of the events, by kind name; a kind of Kinds it does not name
	// gets none. Default DefaultMix.
	Mix map[string]int
	// Kinds are the kinds the events are of. Default schemas.Kinds.
	Kinds schemas.KindTable
}

// DefaultMix is a busy server's mix: connections dominate, then executions, changes of
// watched files, resource samples and a few authentications.
var DefaultMix = map[string]int{
	schemas.KindNetwork: 45, schemas.KindProcess: 25, schemas.KindFile: 15, schemas.KindSystem: 10, schemas.KindIdentity: 5,
}

// ParseMix reads a mix written kind=share,kind=share (e.g. process=1 for process events only).
func ParseMix(s string) (map[string]int, error) {
	mix := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		kind, share, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(share)
		if !ok || err != nil || n < 0 {
			return nil, fmt.Errorf("mix %q: %q is not kind=share (a share is a whole number)", s, part)
		}
		mix[kind] = n
	}
	return mix, nil
}

// maker makes the events of one kind into memory it reuses.
type maker func(g *Generator, host schemas.Host, at int64) (schemas.Record, error)

// makers are the kinds with a realistic generator; any other kind gets generic events
// (fields of its schema filled with made-up values: see generic).
var makers = map[string]func() maker{
	schemas.KindProcess:  newProcessMaker,
	schemas.KindNetwork:  newNetworkMaker,
	schemas.KindFile:     newFileMaker,
	schemas.KindIdentity: newIdentityMaker,
	schemas.KindSystem:   newSystemMaker,
}

// Generator makes events. It is not safe for concurrent use.
type Generator struct {
	cfg    Config
	rng    *rand.Rand
	hosts  []schemas.Host
	n      int
	nProc  int
	kinds  []*schemas.Kind
	makers []maker
	cum    []int // cumulative shares, by index in kinds
}

// New returns a generator, or an error when the mix names a kind the table has not or gives
// no event any kind.
func New(cfg Config) (*Generator, error) {
	if cfg.Hosts <= 0 {
		cfg.Hosts = 10
	}
	if cfg.Kinds == nil {
		cfg.Kinds = schemas.Kinds
	}
	if cfg.Mix == nil {
		cfg.Mix = DefaultMix
	}
	g := &Generator{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x6372756d6273))}
	for _, name := range sortedKeys(cfg.Mix) {
		if _, ok := cfg.Kinds.Lookup(name); !ok {
			return nil, fmt.Errorf("mix: %q: no such event kind (have: %s)", name, strings.Join(cfg.Kinds.Names(), ", "))
		}
	}
	total := 0
	for _, k := range cfg.Kinds {
		share := cfg.Mix[k.Name]
		if share == 0 {
			continue
		}
		m := generic(k)
		if mk, ok := makers[k.Name]; ok && k.Codec == mustKind(k.Name).Codec {
			m = mk()
		}
		total += share
		g.kinds, g.makers, g.cum = append(g.kinds, k), append(g.makers, m), append(g.cum, total)
	}
	if total == 0 {
		return nil, errors.New("mix: no kind has a share")
	}
	for i := range cfg.Hosts {
		name := "loadgen-" + strconv.Itoa(i)
		g.hosts = append(g.hosts, schemas.Host{ID: fmt.Sprintf("%032x", i+1), Name: name})
	}
	return g, nil
}

func mustKind(name string) *schemas.Kind {
	if k, ok := schemas.Kinds.Lookup(name); ok {
		return k
	}
	return &schemas.Kind{}
}

// Next returns the next event and its kind, stamped now. The event is valid until the next
// call: the generator reuses its memory.
func (g *Generator) Next() (*schemas.Kind, schemas.Record, error) {
	g.n++
	i := 0
	if len(g.cum) > 1 {
		r := g.rng.IntN(g.cum[len(g.cum)-1])
		i = sort.SearchInts(g.cum, r+1)
	}
	h := g.hosts[g.rng.IntN(len(g.hosts))]
	ev, err := g.makers[i](g, h, time.Now().UnixNano())
	return g.kinds[i], ev, err
}

// Run calls emit for each event at the configured rate until Count, Duration or ctx ends it,
// and returns how many events it made. emit must be done with the event when it returns.
func (g *Generator) Run(ctx context.Context, emit func(*schemas.Kind, schemas.Record) error) (int, error) {
	if g.cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.cfg.Duration)
		defer cancel()
	}
	start := time.Now()
	made := 0
	for g.cfg.Count == 0 || made < g.cfg.Count {
		if made%100 == 0 {
			if ctx.Err() != nil {
				return made, nil
			}
			if g.cfg.Rate > 0 {
				// Pace in steps of 100 events: sleep until the schedule catches up.
				due := start.Add(time.Duration(float64(made) / float64(g.cfg.Rate) * float64(time.Second)))
				if d := time.Until(due); d > 0 {
					t := time.NewTimer(d)
					select {
					case <-ctx.Done():
						t.Stop()
						return made, nil
					case <-t.C:
					}
				}
			}
		}
		k, ev, err := g.Next()
		if err != nil {
			return made, err
		}
		if err := emit(k, ev); err != nil {
			return made, err
		}
		made++
	}
	return made, nil
}

// pick returns one of xs at random.
func pick[T any](g *Generator, xs []T) T { return xs[g.rng.IntN(len(xs))] }

func (g *Generator) hex(n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[g.rng.IntN(16)]
	}
	return string(b)
}

var (
	images = []string{"/usr/bin/ls", "/usr/bin/cat", "/usr/bin/grep", "/usr/sbin/nginx", "/usr/bin/python3",
		"/usr/lib/jvm/bin/java", "/usr/bin/curl", "/usr/bin/systemctl"}
	// parents start the images; none is a service runtime, so that only the events made
	// suspicious on purpose raise the built-in rules.
	parents = []string{"/usr/lib/systemd/systemd", "/usr/sbin/cron", "/usr/bin/bash", "/usr/sbin/sshd"}
	units   = []string{"nginx.service", "app.service", "postgresql.service", "cron.service", "sshd.service"}
	users   = []string{"app", "www-data", "postgres", "alice", "bob"}
	peers   = []string{"10.0.1.10", "10.0.1.11", "10.0.2.20", "10.0.2.21", "10.0.3.30", "192.0.2.44"}
	ports   = []int32{443, 5432, 6379, 80, 8080, 9092}
	paths   = []string{"/var/lib/app/cache/", "/var/log/app/", "/etc/app/", "/opt/app/releases/"}
)

// hashes are a few executables' digests, as a host runs few distinct binaries.
var hashes = func() []string {
	out := make([]string, len(images))
	for i := range out {
		out[i] = fmt.Sprintf("%064x", uint64(i+1)*0x9e3779b97f4a7c15)
	}
	return out
}()

func actor(g *Generator, a *schemas.Actor) {
	i := g.rng.IntN(len(images))
	a.PID = int32(1000 + g.rng.IntN(60000))
	a.File = schemas.File{Path: images[i], Name: baseName(images[i]), SHA256: hashes[i]}
	a.CmdLine = images[i] + " --serve"
	a.User = schemas.User{UID: 1000, Name: pick(g, users)}
	a.CgroupID, a.SystemdUnit = int64(2+g.rng.IntN(len(units))), pick(g, units)
}

func newProcessMaker() maker {
	ev := &schemas.ProcessEvent{}
	args := make([]string, 3)
	return func(g *Generator, h schemas.Host, at int64) (schemas.Record, error) {
		g.nProc++
		i, pi := g.rng.IntN(len(images)), g.rng.IntN(len(parents))
		img, parent, sha := images[i], parents[pi], hashes[i]
		if g.cfg.SuspiciousEach > 0 && g.nProc%g.cfg.SuspiciousEach == 0 {
			img, parent, sha = "/bin/sh", "/opt/app/bin/java", hashes[0]
		}
		pid := int32(1000 + g.rng.IntN(60000))
		args[0], args[1], args[2] = img, "--request", strconv.Itoa(g.n)
		*ev = schemas.ProcessEvent{
			Envelope: schemas.Envelope{EventID: schemas.NewEventIDAt(at), Time: at, Host: h, Kind: schemas.KindProcess},
			Action:   schemas.ActionExec,
			Process: schemas.Process{
				PID: pid, PPID: pid - 1, Args: args, CmdLine: schemas.JoinArgs(args), CWD: "/",
				File: schemas.File{Path: img, Name: baseName(img), SHA256: sha},
				UID:  1000, UserName: "app", GID: 1000, GroupName: "app", LoginUID: 4294967295,
				CgroupID: 1, SystemdUnit: "app.service",
				Parent: schemas.Parent{PID: pid - 1, File: schemas.File{Path: parent, Name: baseName(parent)}, CmdLine: parent},
			},
		}
		return ev, nil
	}
}

func newNetworkMaker() maker {
	ev := &schemas.NetworkEvent{}
	return func(g *Generator, h schemas.Host, at int64) (schemas.Record, error) {
		*ev = schemas.NetworkEvent{
			Envelope: schemas.Envelope{EventID: schemas.NewEventIDAt(at), Time: at, Host: h, Kind: schemas.KindNetwork},
			Action:   pick(g, []string{schemas.ActionConnect, schemas.ActionClose, schemas.ActionClose, schemas.ActionAccept}),
			Network: schemas.Network{
				Direction: "outbound", Protocol: "tcp", IPVersion: 4,
				Src: schemas.Endpoint{IP: "10.0.0.5", Port: int32(32768 + g.rng.IntN(28000))},
				Dst: schemas.Endpoint{IP: pick(g, peers), Port: pick(g, ports)},
			},
		}
		if ev.Action == schemas.ActionAccept {
			ev.Network.Direction = "inbound"
		}
		if ev.Action == schemas.ActionClose {
			ev.Network.BytesSent, ev.Network.BytesReceived = g.rng.Int64N(1<<16), g.rng.Int64N(1<<20)
			ev.Network.Packets, ev.Network.DurationNs = 4+g.rng.Int64N(200), g.rng.Int64N(int64(5*time.Second))
		}
		actor(g, &ev.Process)
		return ev, nil
	}
}

func newFileMaker() maker {
	ev := &schemas.FileEvent{}
	changed := []string{"content"}
	return func(g *Generator, h schemas.Host, at int64) (schemas.Record, error) {
		dir := pick(g, paths)
		name := "f" + strconv.Itoa(g.rng.IntN(500))
		*ev = schemas.FileEvent{
			Envelope: schemas.Envelope{EventID: schemas.NewEventIDAt(at), Time: at, Host: h, Kind: schemas.KindFile},
			Action:   pick(g, []string{schemas.ActionWrite, schemas.ActionWrite, schemas.ActionCreate, schemas.ActionRename, schemas.ActionDelete}),
			File: schemas.TargetFile{Path: dir + name, Name: name, Size: g.rng.Int64N(1 << 20), Owner: "app", Group: "app",
				UID: 1000, GID: 1000, Mode: "0644", Changed: changed},
		}
		if ev.Action == schemas.ActionRename {
			ev.File.NewPath = dir + name + ".1"
		}
		actor(g, &ev.Process)
		return ev, nil
	}
}

func newIdentityMaker() maker {
	ev := &schemas.IdentityEvent{}
	return func(g *Generator, h schemas.Host, at int64) (schemas.Record, error) {
		u := pick(g, users)
		*ev = schemas.IdentityEvent{
			Envelope: schemas.Envelope{EventID: schemas.NewEventIDAt(at), Time: at, Host: h, Kind: schemas.KindIdentity},
			Action:   pick(g, []string{schemas.ActionAuth, schemas.ActionSessionOpen, schemas.ActionSessionClose}),
			Identity: schemas.Identity{Service: pick(g, []string{"sshd", "sudo", "cron"}), User: u, TargetUser: u,
				RemoteHost: pick(g, peers), Result: schemas.ResultSuccess},
		}
		actor(g, &ev.Process)
		ev.Process.File = schemas.File{Path: "/usr/sbin/sshd", Name: "sshd"}
		ev.Process.CmdLine = "sshd: " + u
		return ev, nil
	}
}

func newSystemMaker() maker {
	ev := &schemas.SystemEvent{}
	return func(g *Generator, h schemas.Host, at int64) (schemas.Record, error) {
		i := g.rng.IntN(len(units))
		*ev = schemas.SystemEvent{
			Envelope: schemas.Envelope{EventID: schemas.NewEventIDAt(at), Time: at, Host: h, Kind: schemas.KindSystem},
			System: schemas.System{Scope: "service", Unit: units[i], CgroupID: int64(2 + i), IntervalNs: int64(10 * time.Second),
				CPUSeconds: g.rng.Float64() * 5, MemoryBytes: g.rng.Int64N(1 << 30), ProcessCount: 1 + g.rng.Int64N(40),
				Connections: g.rng.Int64N(200), BytesSent: g.rng.Int64N(1 << 24), BytesReceived: g.rng.Int64N(1 << 26)},
		}
		return ev, nil
	}
}

// generic makes events of a kind without a realistic generator: its envelope, and every other
// field of its schema made up by its type (a short text, a small number; arrays of two texts
// or numbers, arrays of records empty, optional records absent).
func generic(k *schemas.Kind) maker {
	var fields []schemas.FieldInfo
	emptyArrays := map[string]bool{} // arrays of records, by path
	for _, f := range k.Codec.Fields {
		if f.Optional || f.Presence {
			continue
		}
		if f.Arrays == 0 {
			fields = append(fields, f)
			continue
		}
		if at := arrayAt(k.Codec.Fields, f.Path); at == f.Path && f.Arrays == 1 {
			fields = append(fields, f) // an array of primitives
		} else {
			emptyArrays[at] = true
		}
	}
	return func(g *Generator, h schemas.Host, at int64) (schemas.Record, error) {
		native := map[string]any{}
		for _, f := range fields {
			var v any
			switch f.Type {
			case "string":
				v = g.hex(8)
			case "int":
				v = int32(1 + g.rng.IntN(1000))
			case "long":
				v = 1 + g.rng.Int64N(1<<20)
			case "double":
				v = g.rng.Float64()
			case "float":
				v = float32(g.rng.Float64())
			case "boolean":
				v = g.rng.IntN(2) == 1
			default:
				continue
			}
			if f.Arrays == 1 {
				v = []any{v, v}
			}
			setPath(native, f.Path, v)
		}
		for p := range emptyArrays {
			setPath(native, p, []any{})
		}
		setPath(native, "event_id", schemas.NewEventIDAt(at))
		setPath(native, "time", at)
		setPath(native, "host.id", h.ID)
		setPath(native, "host.name", h.Name)
		setPath(native, "kind", k.Name)
		r := k.Codec.New()
		if err := r.FromNative(native); err != nil {
			return nil, fmt.Errorf("synthetic %s event: %w", k.Name, err)
		}
		return r, nil
	}
}

// arrayAt returns the path of the outermost array a field under one lies in: the shortest
// prefix of path under which every field is in an array.
func arrayAt(fields []schemas.FieldInfo, path string) string {
	parts := strings.Split(path, ".")
	for i := 1; i <= len(parts); i++ {
		prefix := strings.Join(parts[:i], ".")
		inArrays := true
		for _, f := range fields {
			if (f.Path == prefix || strings.HasPrefix(f.Path, prefix+".")) && f.Arrays == 0 {
				inArrays = false
				break
			}
		}
		if inArrays {
			return prefix
		}
	}
	return path
}

// setPath sets a dotted path in a native record, making the records on the way.
func setPath(m map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func baseName(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[i+1:]
		}
	}
	return p
}
