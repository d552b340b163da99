// Package scripts holds the shell scripts make runs (ensure-deps.sh, bench.sh,
// gen-vmlinux.sh); its test checks that ensure-deps.sh installs every program the code, the
// tests and the scripts execute.
package scripts

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// executedElsewhere are the programs run where scanning the Go sources for exec.Command and
// exec.LookPath literals does not find them, each with a file that names it.
var executedElsewhere = map[string]string{
	"dpkg":              "deploy/package_test.go", // run(t, "dpkg", ...)
	"systemd-analyze":   "deploy/package_test.go",
	"unshare":           "deploy/package_test.go",
	"setpriv":           "deploy/capabilities_test.go",
	"rpm":               "deploy/package_test.go",
	"docker-compose":    "deploy/compose_test.go",                       // requireCommand(t, "docker-compose", ...)
	"sh":                "eval/atomics/launch.go",                       // the attack simulations' executor
	"logrotate":         "cmd/crumbs/testdata/quiet-host/ordinary.yaml", // the quiet host's maintenance
	"dpkg-deb":          "cmd/crumbs/testdata/quiet-host/change.yaml",   // the quiet host's package
	"script":            "cmd/crumbs/testdata/quiet-host/ordinary.yaml", // the interactive session's terminal
	"make":              "cmd/crumbs/testdata/quiet-host/ordinary.yaml", // the quiet host's build
	"iptables":          "docs/atomics-report.md",                       // T1686 #18 runs it: its rules must fire
	"nmap":              "docs/atomics-report.md",                       // T1046 runs it
	"sudo":              "cmd/crumbs/atomics_e2e_test.go",               // T1003.008 #1 and T1489 run through it
	"clickhouse-server": "scripts/ensure-deps.sh",                       // started by this script
	"gcc":               "collectors/identity/collector_test.go",        // cgo builds the PAM client
	"mountpoint":        "scripts/ensure-deps.sh",
	"mount":             "scripts/ensure-deps.sh",
	"runuser":           "scripts/ensure-deps.sh",
	"apt-get":           "scripts/ensure-deps.sh",
	"free":              "scripts/bench.sh",
	"awk":               "scripts/bench.sh",
	"nproc":             "scripts/bench.sh",
	"git":               "Makefile", // the version stamped into bin/crumbs
	"bash":              "Makefile", // SHELL
}

// notInstalled are programs the script does not install, and why.
var notInstalled = map[string]string{
	"crumbs": "/usr/bin/crumbs: what deploy's deb test installed itself",
	"go":     "the toolchain that runs make: Debian's is older than go.mod asks",
	"exe":    "/proc/self/exe: crumbs up runs its own binary again (its stages process)",
	"3":      "/proc/self/fd/3: the process collector's test runs a deleted copy of sh through its descriptor",
}

// TestEnsureDepsInstallsWhatRuns: every program the Go sources execute (exec.Command,
// exec.CommandContext and exec.LookPath with a literal name) and every program of
// executedElsewhere is in ensure-deps.sh's programs table, which installs the Debian package
// of each program that is missing; and the script updates the package lists before it
// installs.
func TestEnsureDepsInstallsWhatRuns(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join(root, "scripts", "ensure-deps.sh"))
	if err != nil {
		t.Fatal(err)
	}
	table := programsTable(t, string(script))

	executed := executedInGo(t, root)
	for name, file := range executedElsewhere {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`(^|[^\w-])` + regexp.QuoteMeta(name) + `([^\w-]|$)`).Match(b) {
			t.Errorf("executedElsewhere: %s does not name %s any more; update the list", file, name)
		}
		executed[name] = append(executed[name], file)
	}
	var names []string
	for name := range executed {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, ok := notInstalled[name]; ok {
			continue
		}
		if _, ok := table[name]; !ok {
			t.Errorf("%s is executed (%s) but scripts/ensure-deps.sh does not install it: add it to its programs table with its Debian package",
				name, strings.Join(executed[name], ", "))
		}
	}
	t.Logf("programs executed: %s", strings.Join(names, " "))

	update := strings.Index(string(script), "apt-get update")
	install := strings.Index(string(script), "apt-get install")
	if update < 0 || install < 0 || update > install {
		t.Errorf("scripts/ensure-deps.sh must run apt-get update before apt-get install (at %d, %d)", update, install)
	}
}

// programsTable reads the programs=( name:package ... ) table of ensure-deps.sh.
func programsTable(t *testing.T, script string) map[string]string {
	t.Helper()
	m := regexp.MustCompile(`(?s)\nprograms=\((.*?)\n\)`).FindStringSubmatch(script)
	if m == nil {
		t.Fatal("scripts/ensure-deps.sh has no programs=( ... ) table")
	}
	table := map[string]string{}
	for _, line := range strings.Split(m[1], "\n") {
		line, _, _ = strings.Cut(line, "#")
		for _, f := range strings.Fields(line) {
			name, pkg, ok := strings.Cut(f, ":")
			if !ok || name == "" || pkg == "" {
				t.Errorf("ensure-deps.sh programs table: %q is not program:package", f)
				continue
			}
			table[name] = pkg
		}
	}
	return table
}

// executedInGo returns the programs the Go sources under root execute by a literal name,
// each with the files that do.
func executedInGo(t *testing.T, root string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "exec" {
				return true
			}
			arg := 0
			switch sel.Sel.Name {
			case "Command", "LookPath":
			case "CommandContext":
				arg = 1
			default:
				return true
			}
			if len(call.Args) <= arg {
				return true
			}
			lit, ok := call.Args[arg].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			name, err := strconv.Unquote(lit.Value)
			if err != nil {
				return true
			}
			name = filepath.Base(name)
			if !slices.Contains(out[name], rel) {
				out[name] = append(out[name], rel)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
