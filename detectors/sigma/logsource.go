package sigma

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/threatcrumbs/crumbs/detectors/engine"
)

// fieldSpec is where a Sigma field is found in a crumbs event.
type fieldSpec struct {
	Path     string            // crumbs field path in the event, e.g. process.file.path or process.args[1]
	Int      bool              // the crumbs field is an integer
	ValueMap map[string]string // Sigma value (lower case) → crumbs value, for fields whose values are renamed
	Note     string            // for the documentation
	get      func(act engine.Fields) (any, bool)
}

// target is one kind of crumbs event a logsource (or, for auditd, one record type) reads.
type target struct {
	Name     string               // e.g. "process_creation" or "auditd EXECVE"
	Source   string               // crumbs event kind
	Actions  []string             // crumbs actions of that kind; empty for all
	Fields   map[string]fieldSpec // Sigma field → crumbs field
	Consts   map[string][]string  // auditd fields whose value is fixed for this target (type, SYSCALL, nametype)
	Keywords []fieldSpec          // fields keyword searches look into
}

func spec(path string) fieldSpec {
	return fieldSpec{Path: path, get: getter(path)}
}

func ispec(path string) fieldSpec {
	f := spec(path)
	f.Int = true
	return f
}

// getter returns a reader of a dotted path, with an optional [i] list index on the last element.
func getter(path string) func(engine.Fields) (any, bool) {
	idx := -1
	if i := strings.IndexByte(path, '['); i > 0 && strings.HasSuffix(path, "]") {
		n, err := strconv.Atoi(path[i+1 : len(path)-1])
		if err == nil {
			idx = n
			path = path[:i]
		}
	}
	return func(act engine.Fields) (any, bool) {
		cur, ok := act.Value(path)
		if !ok {
			return nil, false
		}
		if idx >= 0 {
			switch l := cur.(type) {
			case []any:
				if idx >= len(l) {
					return nil, false
				}
				return l[idx], true
			case []string:
				if idx >= len(l) {
					return nil, false
				}
				return l[idx], true
			default:
				return nil, false
			}
		}
		return cur, true
	}
}

// actorFields are the fields of the process behind a network, file or identity event.
func actorFields() map[string]fieldSpec {
	return map[string]fieldSpec{
		"Image":       spec("process.file.path"),
		"CommandLine": spec("process.cmd_line"),
		"User":        spec("process.user.name"),
		"ProcessId":   ispec("process.pid"),
	}
}

func processFields() map[string]fieldSpec {
	f := actorFields()
	f["ParentImage"] = spec("process.parent.file.path")
	f["ParentCommandLine"] = spec("process.parent.cmd_line")
	f["ParentProcessId"] = ispec("process.ppid")
	f["CurrentDirectory"] = spec("process.cwd")
	f["LogonId"] = ispec("process.login_uid")
	return f
}

func networkFields() map[string]fieldSpec {
	f := actorFields()
	f["DestinationIp"] = spec("network.dst_endpoint.ip")
	f["DestinationPort"] = ispec("network.dst_endpoint.port")
	dh := spec("network.dst_endpoint.hostname")
	dh.Note = "the name the process resolved, from the DNS answers the host received"
	f["DestinationHostname"] = dh
	f["SourceIp"] = spec("network.src_endpoint.ip")
	f["SourcePort"] = ispec("network.src_endpoint.port")
	sh := spec("network.src_endpoint.hostname")
	sh.Note = "as DestinationHostname"
	f["SourceHostname"] = sh
	f["Protocol"] = spec("network.protocol")
	in := spec("network.direction")
	in.ValueMap = map[string]string{"true": "outbound", "false": "inbound"}
	in.Note = "true is network.direction outbound, false inbound"
	f["Initiated"] = in
	return f
}

func fileFields(target string) map[string]fieldSpec {
	f := actorFields()
	f["TargetFilename"] = spec(target)
	return f
}

var (
	cmdLineKeyword  = spec("process.cmd_line")
	filePathKeyword = spec("file.path")
)

// categories maps product linux logsource categories onto crumbs events.
var categories = map[string]target{
	"process_creation": {Name: "process_creation", Source: "process", Actions: []string{"exec"},
		Fields: processFields(), Keywords: []fieldSpec{cmdLineKeyword}},
	"network_connection": {Name: "network_connection", Source: "network", Actions: []string{"connect", "accept", "connect_summary", "accept_summary"},
		Fields: networkFields(), Keywords: []fieldSpec{cmdLineKeyword, spec("network.dst_endpoint.hostname")}},
	"file_event": {Name: "file_event", Source: "file", Actions: []string{"create", "write"},
		Fields: fileFields("file.path"), Keywords: []fieldSpec{filePathKeyword, cmdLineKeyword}},
	"file_change": {Name: "file_change", Source: "file", Actions: []string{"write", "chmod", "chown"},
		Fields: fileFields("file.path"), Keywords: []fieldSpec{filePathKeyword, cmdLineKeyword}},
	"file_delete": {Name: "file_delete", Source: "file", Actions: []string{"delete"},
		Fields: fileFields("file.path"), Keywords: []fieldSpec{filePathKeyword, cmdLineKeyword}},
	"file_rename": {Name: "file_rename", Source: "file", Actions: []string{"rename"},
		Fields: func() map[string]fieldSpec {
			f := fileFields("file.new_path")
			f["SourceFilename"] = spec("file.path")
			return f
		}(), Keywords: []fieldSpec{filePathKeyword, spec("file.new_path"), cmdLineKeyword}},
}

// maxAuditArgs is how many EXECVE arguments (a0..a63) are mapped onto process.args.
const maxAuditArgs = 64

// syscallTargets are the auditd SYSCALL records crumbs has an equivalent event for: the
// syscall names, and the crumbs kind and actions recording them.
var syscallTargets = []struct {
	names   []string
	source  string
	actions []string
}{
	{[]string{"execve", "execveat"}, "process", []string{"exec"}},
	{[]string{"connect"}, "network", []string{"connect", "connect_summary"}},
	{[]string{"accept", "accept4"}, "network", []string{"accept", "accept_summary"}},
	{[]string{"creat", "open", "openat", "openat2", "mknod", "mknodat", "mkdir", "mkdirat"}, "file", []string{"create"}},
	{[]string{"write", "writev", "pwrite64", "pwritev", "pwritev2", "truncate", "ftruncate"}, "file", []string{"write"}},
	{[]string{"rename", "renameat", "renameat2"}, "file", []string{"rename"}},
	{[]string{"unlink", "unlinkat", "rmdir"}, "file", []string{"delete"}},
	{[]string{"chmod", "fchmod", "fchmodat", "fchmodat2"}, "file", []string{"chmod"}},
	{[]string{"chown", "fchown", "fchownat", "lchown"}, "file", []string{"chown"}},
}

// auditdTargets are the auditd record types mapped onto crumbs events. A rule's selections
// name the record type (type: EXECVE); each selection is evaluated on the targets whose
// record type it names, and is false on the others, as it is on auditd's own records.
var auditdTargets = func() []target {
	execArgs := map[string]fieldSpec{}
	for i := 0; i < maxAuditArgs; i++ {
		execArgs["a"+strconv.Itoa(i)] = spec(fmt.Sprintf("process.args[%d]", i))
	}
	ts := []target{{Name: "auditd EXECVE", Source: "process", Actions: []string{"exec"}, Fields: execArgs,
		Consts: map[string][]string{"type": {"EXECVE"}}, Keywords: []fieldSpec{cmdLineKeyword}}}
	for _, s := range syscallTargets {
		f := map[string]fieldSpec{
			"exe":  spec("process.file.path"),
			"comm": spec("process.file.name"),
			"pid":  ispec("process.pid"),
			"uid":  ispec("process.user.uid"),
		}
		if s.source == "process" {
			f["ppid"] = ispec("process.ppid")
			f["auid"] = ispec("process.login_uid")
			f["cwd"] = spec("process.cwd")
			// The effective ids after the exec (-1 when the collector could not tell).
			f["euid"] = ispec("process.euid")
			f["egid"] = ispec("process.egid")
			f["gid"] = ispec("process.group.gid")
		}
		ts = append(ts, target{Name: "auditd SYSCALL " + s.names[0], Source: s.source, Actions: s.actions, Fields: f,
			Consts:   map[string][]string{"type": {"SYSCALL"}, "SYSCALL": s.names},
			Keywords: []fieldSpec{spec("process.file.path"), spec("process.file.name")}})
	}
	paths := []struct {
		source, name string
		actions      []string
		nametype     string
	}{
		{"file", "file.path", []string{"create"}, "CREATE"},
		{"file", "file.path", []string{"delete"}, "DELETE"},
		{"file", "file.path", []string{"write", "chmod", "chown", "rename"}, "NORMAL"},
		{"process", "process.file.path", []string{"exec"}, "NORMAL"},
	}
	for _, p := range paths {
		ts = append(ts, target{Name: "auditd PATH " + p.nametype + " " + p.source, Source: p.source, Actions: p.actions,
			Fields:   map[string]fieldSpec{"name": spec(p.name)},
			Consts:   map[string][]string{"type": {"PATH"}, "nametype": {p.nametype}},
			Keywords: []fieldSpec{spec(p.name)}})
	}
	return ts
}()

// targetsFor returns the crumbs events a rule's logsource reads, or why it has none.
func targetsFor(ls Logsource) ([]target, error) {
	if ls.Product != "" && ls.Product != "linux" {
		return nil, fmt.Errorf("logsource product %q: crumbs watches Linux hosts only", ls.Product)
	}
	switch {
	case ls.Service == "auditd" && ls.Category == "":
		return auditdTargets, nil
	case ls.Service != "":
		return nil, fmt.Errorf("logsource service %q: crumbs records no equivalent events", ls.Service)
	case ls.Category == "":
		return nil, fmt.Errorf("logsource: no category or service: crumbs cannot tell which events the rule reads")
	}
	t, ok := categories[ls.Category]
	if !ok {
		return nil, fmt.Errorf("logsource category %q: crumbs records no equivalent events", ls.Category)
	}
	return []target{t}, nil
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
