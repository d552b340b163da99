package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/pkg/testenv"
)

// run runs a command and fails the test with its output when it fails.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// buildPackages runs make dist's program for this machine's architecture into a temporary
// directory and returns the deb's and the rpm's paths.
func buildPackages(t *testing.T, version string) (deb, rpm string) {
	t.Helper()
	out := t.TempDir()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "run", ".", "-root", root, "-out", out, "-arch", runtime.GOARCH, "-formats", "deb,rpm", "-version", version)
	cmd.Dir = filepath.Join(root, "scripts", "dist")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/dist: %v\n%s", err, b)
	}
	debs, _ := filepath.Glob(filepath.Join(out, "*.deb"))
	rpms, _ := filepath.Glob(filepath.Join(out, "*.rpm"))
	if len(debs) != 1 || len(rpms) != 1 {
		t.Fatalf("scripts/dist made %v and %v, want one deb and one rpm", debs, rpms)
	}
	return debs[0], rpms[0]
}

// modeOwner says a path's type and mode, owner and group as `ls` would.
func modeOwner(t *testing.T, p string) string {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		return err.Error()
	}
	st := fi.Sys().(*syscall.Stat_t)
	name := func(id uint32, lookup func(string) (string, error)) string {
		if n, err := lookup(strconv.Itoa(int(id))); err == nil {
			return n
		}
		return strconv.Itoa(int(id))
	}
	u := name(st.Uid, func(s string) (string, error) { u, err := user.LookupId(s); return usernameOf(u), err })
	g := name(st.Gid, func(s string) (string, error) { g, err := user.LookupGroupId(s); return groupnameOf(g), err })
	return fi.Mode().String() + " " + u + ":" + g
}

func usernameOf(u *user.User) string {
	if u == nil {
		return ""
	}
	return u.Username
}

func groupnameOf(g *user.Group) string {
	if g == nil {
		return ""
	}
	return g.Name
}

// TestDebInstallsAndPurges builds the deb as make dist does, installs it on this machine with
// dpkg, and checks what it put where and with which owners and modes, that the crumbs user
// reads the default configuration and that it is valid, that every key the environment files
// name is one, and that systemd accepts the units (systemd-analyze verify; where systemd
// runs it would start them, but this test machine runs no systemd). Then it removes the
// package (configuration kept, as Debian does), purges it (configuration and state gone) and
// checks nothing of it is left. The purge runs in a mount namespace of its own with a fresh
// /var/lib/crumbs, so the state of this shared machine's crumbs stays.
func TestDebInstallsAndPurges(t *testing.T) {
	testenv.RequireRoot(t)
	for _, p := range []string{"dpkg", "systemd-analyze", "unshare", "runuser"} {
		requireCommand(t, p, "scripts/ensure-deps.sh installs it")
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f", "${Status}", "crumbs").CombinedOutput(); err == nil && strings.Contains(string(out), "installed") {
		t.Fatalf("a crumbs package is installed on this machine already (%s): the test will not replace it", out)
	}
	if _, err := os.Stat("/usr/bin/crumbs"); err == nil {
		t.Fatal("/usr/bin/crumbs exists and belongs to no package: the test will not overwrite it")
	}
	const version = "v0.0.0-7-gabcdef1"
	deb, rpm := buildPackages(t, version)

	installed := false
	purge := func() string {
		// A fresh, empty /var/lib/crumbs in a private mount namespace, with a spool file in
		// it for the purge to remove.
		script := `set -e
mount -t tmpfs -o mode=0755 tmpfs /var/lib/crumbs
mkdir -p /var/lib/crumbs/spool/process && echo x > /var/lib/crumbs/spool/process/segment
dpkg --purge crumbs >/dev/null
ls -A /var/lib/crumbs 2>&1 || true`
		out := run(t, "unshare", "--mount", "--propagation", "private", "sh", "-c", script)
		installed = false
		return out
	}
	t.Cleanup(func() {
		if installed {
			purge()
		}
	})
	if _, err := os.Stat("/var/lib/crumbs"); err != nil {
		if err := os.MkdirAll("/var/lib/crumbs", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run(t, "dpkg", "-i", deb)
	installed = true

	// What is where, whose, and how open.
	files := map[string]string{
		"/usr/bin/crumbs":                            "-rwxr-xr-x root:root",
		"/etc/crumbs":                                "drwxr-x--- root:crumbs",
		"/etc/crumbs/crumbs.yaml":                    "-rw-r----- root:crumbs",
		"/lib/systemd/system/crumbs-collect.service": "-rw-r--r-- root:root",
		"/usr/share/doc/crumbs/LICENSE":              "-rw-r--r-- root:root",
		"/usr/share/doc/crumbs/NOTICE":               "-rw-r--r-- root:root",
	}
	envs, _ := filepath.Glob("packaging/env/*.env")
	for _, e := range envs {
		files["/etc/crumbs/"+filepath.Base(e)] = "-rw------- root:root"
	}
	units, _ := filepath.Glob("systemd/*.service")
	for _, u := range units {
		files["/lib/systemd/system/"+filepath.Base(u)] = "-rw-r--r-- root:root"
	}
	checkRPM(t, rpm, files)

	got := map[string]string{}
	for p := range files {
		got[p] = modeOwner(t, p)
	}
	if diff := cmp.Diff(files, got); diff != "" {
		t.Errorf("installed files (-want +got):\n%s", diff)
	}
	listed := strings.Fields(run(t, "dpkg", "-L", "crumbs"))
	for p := range files {
		if !slices.Contains(listed, p) {
			t.Errorf("dpkg -L crumbs does not list %s", p)
		}
	}
	conffiles := run(t, "dpkg-query", "-W", "-f", "${Conffiles}", "crumbs")
	for p := range files {
		if strings.HasPrefix(p, "/etc/crumbs/") && !strings.Contains(conffiles, p+" ") {
			t.Errorf("%s is not a conffile (an upgrade would overwrite the operator's edits): %s", p, conffiles)
		}
	}
	if _, err := user.Lookup("crumbs"); err != nil {
		t.Errorf("the crumbs user: %v", err)
	}

	if out := run(t, "/usr/bin/crumbs", "version"); !strings.Contains(out, version) {
		t.Errorf("crumbs version says %q, want %s", out, version)
	}
	// The stages' units run as crumbs: it reads the configuration, which is valid as shipped.
	run(t, "runuser", "-u", "crumbs", "--", "/usr/bin/crumbs", "config", "--config", "/etc/crumbs/crumbs.yaml")
	// Every key an environment file names (commented out, for the operator to fill in) is one
	// crumbs knows: set them all and the configuration still loads.
	var env []string
	for _, e := range envs {
		b, err := os.ReadFile(e)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`(?m)^#?(CRUMBS_[A-Z0-9_]+)=`).FindAllStringSubmatch(string(b), -1) {
			// Long enough for any secret's minimum (the context API's tokens).
			env = append(env, m[1]+"=a-value-of-thirty-two-characters")
		}
	}
	sort.Strings(env)
	env = slices.Compact(env)
	if len(env) == 0 {
		t.Fatal("the environment files name no CRUMBS_ key")
	}
	cfg := exec.Command("/usr/bin/crumbs", "config", "--config", "/etc/crumbs/crumbs.yaml")
	cfg.Env = append(cleanEnv(), env...)
	cfg.Env = append(cfg.Env, "CRUMBS_KAFKA_SECURITY_SASL_MECHANISM=SCRAM-SHA-512") // the last one counts
	if out, err := cfg.CombinedOutput(); err != nil {
		t.Errorf("the keys the environment files name (%v) are not a valid configuration: %v\n%s", env, err, out)
	}

	var paths []string
	for _, u := range units {
		paths = append(paths, "/lib/systemd/system/"+filepath.Base(u))
	}
	if out, err := exec.Command("systemd-analyze", append([]string{"verify"}, paths...)...).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify of the installed units: %v\n%s", err, out)
	}

	// Removed: the program and units go, the configuration stays.
	run(t, "dpkg", "--remove", "crumbs")
	for p := range files {
		_, err := os.Lstat(p)
		if keep := strings.HasPrefix(p, "/etc/crumbs"); keep != (err == nil) {
			t.Errorf("after dpkg --remove, %s exists: %v, want %v", p, err == nil, keep)
		}
	}
	// Purged: nothing left, state included.
	if left := purge(); strings.TrimSpace(left) != "" {
		t.Errorf("after dpkg --purge, /var/lib/crumbs holds %q", left)
	}
	for p := range files {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("after dpkg --purge, %s is left", p)
		}
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f", "${Status}", "crumbs").CombinedOutput(); err == nil && !strings.Contains(string(out), "not-installed") {
		t.Errorf("after dpkg --purge, dpkg still knows crumbs: %s", out)
	}
}

// checkRPM reads the rpm built beside the deb (this Debian machine does not install it): the
// same files with the same modes and owners, units in /usr/lib/systemd/system, the
// configuration as %config(noreplace), and the scripts that create the crumbs user.
func checkRPM(t *testing.T, rpm string, deb map[string]string) {
	t.Helper()
	requireCommand(t, "rpm", "scripts/ensure-deps.sh installs it")
	want := map[string]string{}
	for p, mode := range deb {
		p = strings.Replace(p, "/lib/systemd/system/", "/usr/lib/systemd/system/", 1)
		if strings.HasPrefix(p, "/etc/crumbs/") {
			mode += " config(noreplace)"
		}
		want[p] = mode
	}
	out := run(t, "rpm", "-qp", "--qf", `[%{FILENAMES}\t%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME}\t%{FILEFLAGS:fflags}\n]`, rpm)
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			t.Fatalf("rpm -qp: %q", line)
		}
		if _, ok := want[f[0]]; !ok {
			continue
		}
		got[f[0]] = f[1]
		if strings.Contains(f[2], "c") && strings.Contains(f[2], "n") {
			got[f[0]] += " config(noreplace)"
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rpm files (-want +got):\n%s", diff)
	}
	if scripts := run(t, "rpm", "-qp", "--scripts", rpm); !strings.Contains(scripts, "useradd --system") || !strings.Contains(scripts, "systemctl disable --now") {
		t.Errorf("rpm scripts create no crumbs user or disable no unit:\n%s", scripts)
	}
}
