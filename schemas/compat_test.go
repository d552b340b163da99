package schemas_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/schemas"
)

// TestSchemasBackwardCompatible checks that every schema in the working tree can read data
// written with every committed version of it.
func TestSchemasBackwardCompatible(t *testing.T) {
	top := gitTop(t)
	for _, name := range schemas.AvroFiles() {
		t.Run(filepath.Base(name), func(t *testing.T) {
			current, err := schemas.Avro.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			abs, err := filepath.Abs(name)
			if err != nil {
				t.Fatal(err)
			}
			rel, err := filepath.Rel(top, realPath(t, abs))
			if err != nil {
				t.Fatal(err)
			}
			rel = filepath.ToSlash(rel)
			versions := gitVersions(t, top, rel)
			if len(versions) == 0 {
				t.Logf("%s has no committed version yet", rel)
			}
			for _, v := range versions {
				if problems := avro.CheckBackward(v.text, string(current)); len(problems) != 0 {
					t.Errorf("%s cannot read data written with %s as of commit %s:\n\t%s",
						rel, v.path, v.commit, strings.Join(problems, "\n\t"))
				}
			}
		})
	}
}

// gitTop returns the top of the git checkout holding the package, or skips the test (fails it
// under CRUMBS_STRICT=1) when there is no git or no history to check against.
func gitTop(t *testing.T) string {
	t.Helper()
	missing := func(format string, a ...any) {
		t.Helper()
		if testenv.Strict() {
			t.Fatalf("CRUMBS_STRICT=1 and the schema history cannot be read: "+format, a...)
		}
		t.Skipf("skipping (set CRUMBS_STRICT=1 to fail instead): the schema history cannot be read: "+format, a...)
	}
	if _, err := exec.LookPath("git"); err != nil {
		missing("no git: %v", err)
	}
	out, err := git("", "rev-parse", "--show-toplevel")
	if err != nil {
		missing("not a git checkout: %v", err)
	}
	top := realPath(t, strings.TrimSpace(out))
	if _, err := git(top, "rev-parse", "--verify", "--quiet", "HEAD^{commit}"); err != nil {
		missing("the checkout has no commits: %v", err)
	}
	if out, err := git(top, "rev-parse", "--is-shallow-repository"); err != nil || strings.TrimSpace(out) != "false" {
		missing("the checkout is shallow (git fetch --unshallow): %q %v", out, err)
	}
	return top
}

type version struct {
	commit, path, text string
}

// gitVersions returns every committed version of the file at rel (relative to top), following
// renames, newest first.
func gitVersions(t *testing.T, top, rel string) []version {
	t.Helper()
	out, err := git(top, "log", "--format=commit %H", "--name-only", "--follow", "--", rel)
	if err != nil {
		t.Fatalf("git log: %v", err)
	}
	var versions []version
	path := rel // merges list no name: they keep the name of the newer entry
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "commit "):
			versions = append(versions, version{commit: strings.TrimPrefix(line, "commit ")})
		case len(versions) > 0:
			path = line
			versions[len(versions)-1].path = path
		}
	}
	for i := range versions {
		v := &versions[i]
		if v.path == "" {
			v.path = path
		}
		v.text, err = git(top, "show", v.commit+":"+v.path)
		if err != nil {
			t.Fatalf("git show %s:%s: %v", v.commit, v.path, err)
		}
	}
	return versions
}

// git runs git in dir (the current directory when empty) and returns its standard output.
func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_PAGER=cat", "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), errors.Join(err, errors.New(strings.TrimSpace(stderr.String())))
	}
	return string(out), nil
}

func realPath(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestEventsStartWithEnvelope checks that every event schema (a record whose first field is
// event_id) begins with exactly the fields of envelope.avsc, in order, so that
// Serde.DecodePrefix reads the envelope from any event.
func TestEventsStartWithEnvelope(t *testing.T) {
	envFields := schemaFields(t, "avro/envelope.avsc")
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	var events int
	for _, name := range schemas.AvroFiles() {
		if name == "avro/envelope.avsc" {
			continue
		}
		fields := schemaFields(t, name)
		if len(fields) == 0 || fields[0]["name"] != "event_id" {
			continue
		}
		events++
		t.Run(filepath.Base(name), func(t *testing.T) {
			n := min(len(envFields), len(fields))
			if diff := cmp.Diff(envFields, fields[:n]); diff != "" {
				t.Fatalf("%s does not begin with the envelope's fields, docs aside (-want +got):\n%s", name, diff)
			}
			// Decode the envelope from a real event of this schema.
			text, _ := schemas.Avro.ReadFile(name)
			var sch map[string]any
			if err := json.Unmarshal(text, &sch); err != nil {
				t.Fatal(err)
			}
			ev := sampleNative(sch, "").(map[string]any)
			ev["event_id"], ev["time"], ev["kind"] = "ev-1", int64(42), "k"
			ev["host"] = map[string]any{"id": "machine", "name": "web-1"}
			full := sch["namespace"].(string) + "." + sch["name"].(string)
			b, err := serde.Encode(nil, full, ev)
			if err != nil {
				t.Fatalf("Encode %s: %v", full, err)
			}
			native, err := serde.DecodePrefix(b, schemas.EnvelopeSchema)
			if err != nil {
				t.Fatalf("DecodePrefix: %v", err)
			}
			got, err := schemas.EnvelopeFromNative(native)
			if err != nil {
				t.Fatal(err)
			}
			want := schemas.Envelope{EventID: "ev-1", Time: 42, Host: schemas.Host{ID: "machine", Name: "web-1"}, Kind: "k"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("envelope (-want +got):\n%s", diff)
			}
		})
	}
	if events == 0 {
		t.Fatal("no event schema found (a record whose first field is event_id)")
	}
}

// schemaFields returns the top-level fields of a record schema file with every "doc" removed.
func schemaFields(t *testing.T, name string) []map[string]any {
	t.Helper()
	text, err := schemas.Avro.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var sch struct {
		Fields []map[string]any `json:"fields"`
	}
	if err := json.Unmarshal(text, &sch); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, f := range sch.Fields {
		stripDocs(f)
	}
	return sch.Fields
}

func stripDocs(v any) {
	switch x := v.(type) {
	case map[string]any:
		delete(x, "doc")
		for _, e := range x {
			stripDocs(e)
		}
	case []any:
		for _, e := range x {
			stripDocs(e)
		}
	}
}

// sampleNative returns a goavro native value of schema v (parsed JSON): zero values, the
// first symbol of enums, null (or the first branch) of unions. Named types referred to by name
// must be records defined earlier; it is enough for the schemas in this package.
func sampleNative(v any, ns string) any {
	named := map[string]map[string]any{}
	var gen func(v any, ns string) any
	gen = func(v any, ns string) any {
		switch x := v.(type) {
		case string:
			switch x {
			case "null":
				return nil
			case "boolean":
				return false
			case "int":
				return int32(0)
			case "long":
				return int64(0)
			case "float":
				return float32(0)
			case "double":
				return float64(0)
			case "bytes":
				return []byte{}
			case "string":
				return ""
			}
			if d, ok := named[x]; ok {
				return gen(d, ns)
			}
			return gen(named[ns+"."+x], ns)
		case []any:
			if x[0] == "null" {
				return nil
			}
			return map[string]any{typeName(x[0], ns): gen(x[0], ns)}
		case map[string]any:
			if s, ok := x["namespace"].(string); ok {
				ns = s
			}
			switch x["type"] {
			case "record":
				full := typeName(x, ns)
				named[full] = x
				m := map[string]any{}
				for _, f := range x["fields"].([]any) {
					fm := f.(map[string]any)
					m[fm["name"].(string)] = gen(fm["type"], ns)
				}
				return m
			case "enum":
				named[typeName(x, ns)] = x
				return x["symbols"].([]any)[0]
			case "fixed":
				named[typeName(x, ns)] = x
				return make([]byte, int(x["size"].(float64)))
			case "array":
				return []any{}
			case "map":
				return map[string]any{}
			default:
				return gen(x["type"], ns)
			}
		}
		return nil
	}
	return gen(v, ns)
}

// typeName is the name goavro uses for a union branch.
func typeName(v any, ns string) string {
	switch x := v.(type) {
	case string:
		return x
	case map[string]any:
		name, _ := x["name"].(string)
		if name == "" {
			return x["type"].(string)
		}
		if s, ok := x["namespace"].(string); ok {
			ns = s
		}
		if strings.Contains(name, ".") || ns == "" {
			return name
		}
		return ns + "." + name
	}
	return ""
}

// TestGitVersions checks the history walk on a scratch repository: every version is found,
// across a rename, and an incompatible change between them is caught.
func TestGitVersions(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		if testenv.Strict() {
			t.Fatalf("CRUMBS_STRICT=1 and no git: %v", err)
		}
		t.Skipf("skipping (set CRUMBS_STRICT=1 to fail instead): no git: %v", err)
	}
	dir := realPath(t, t.TempDir())
	run := func(args ...string) {
		t.Helper()
		if _, err := git(dir, append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"}, args...)...); err != nil {
			t.Fatalf("git %v: %v", args, err)
		}
	}
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v1 := `{"type": "record", "name": "T", "fields": [{"name": "a", "type": "long"}, {"name": "pad", "type": "string", "doc": "keeps git's rename detection happy"}]}`
	v2 := `{"type": "record", "name": "T", "fields": [{"name": "a", "type": "long"}, {"name": "pad", "type": "string", "doc": "keeps git's rename detection happy"}, {"name": "b", "type": "int", "default": 0}]}`
	run("init", "-q")
	write("old.avsc", v1)
	run("add", "old.avsc")
	run("commit", "-q", "-m", "v1")
	run("mv", "old.avsc", "new.avsc")
	run("commit", "-q", "-m", "rename")
	write("new.avsc", v2)
	run("commit", "-q", "-am", "v2")

	got := gitVersions(t, dir, "new.avsc")
	var paths, texts []string
	for _, v := range got {
		paths = append(paths, v.path)
		texts = append(texts, v.text)
	}
	if diff := cmp.Diff([]string{"new.avsc", "new.avsc", "old.avsc"}, paths); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{v2, v1, v1}, texts); diff != "" {
		t.Errorf("texts (-want +got):\n%s", diff)
	}
	current := `{"type": "record", "name": "T", "fields": [{"name": "a", "type": "int"}]}`
	var problems []string
	for _, v := range got {
		problems = append(problems, avro.CheckBackward(v.text, current)...)
	}
	want := []string{"T.a: type changed from long to int", "T.a: type changed from long to int", "T.a: type changed from long to int"}
	if diff := cmp.Diff(want, problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

var update = flag.Bool("update", false, "write the missing earlier schema versions to avro/history")

// TestEveryCommittedVersionDecodes: a record written with any committed version of a schema
// decodes, because every earlier version is embedded under avro/history (go test -update
// adds the missing ones).
func TestEveryCommittedVersionDecodes(t *testing.T) {
	top := gitTop(t)
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range schemas.AvroFiles() {
		abs, err := filepath.Abs(name)
		if err != nil {
			t.Fatal(err)
		}
		rel, err := filepath.Rel(top, realPath(t, abs))
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range gitVersions(t, top, filepath.ToSlash(rel)) {
			fresh := avro.NewSerde()
			sc, err := fresh.Register(v.text)
			if err != nil {
				t.Fatalf("%s at %s: %v", v.path, v.commit, err)
			}
			// A frame of this version with an empty body: known fingerprints get past framing.
			frame := append([]byte{0xC3, 0x01}, binary.LittleEndian.AppendUint64(nil, sc.Fingerprint)...)
			if _, _, err := serde.Decode(frame); errors.Is(err, avro.ErrUnknownSchema) {
				if !*update {
					t.Errorf("%s as of commit %s is not embedded; run go test ./schemas -run TestEveryCommittedVersionDecodes -update", v.path, v.commit)
					continue
				}
				out := filepath.Join("avro", "history", fmt.Sprintf("%s-%016x.avsc", strings.TrimSuffix(filepath.Base(v.path), ".avsc"), sc.Fingerprint))
				if err := os.WriteFile(out, []byte(v.text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}
