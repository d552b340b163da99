package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/testenv"
)

// noCollectors leaves the collectors out of `crumbs up`: these tests drive it with loadgen.
const noCollectors = "CRUMBS_UP_STAGES=enrich,detect,sink"

// TestUpComesBackRightAfterKill9: `crumbs up` killed with SIGKILL mid-stream and started again
// at once, while its port is still held (as by a previous crumbs still exiting), waits for
// the port, says so once, comes up, and every event lands exactly once.
func TestUpComesBackRightAfterKill9(t *testing.T) {
	p := newPipeline(t, noCollectors, "CRUMBS_COLLECTORS_NETWORK_ENABLED=false")
	p.start()
	const n = 20000
	p.crumbs("loadgen", "--mix", "process=1", "--count", fmt.Sprint(n), "--rate", "0")
	events := fmt.Sprintf("SELECT count() FROM %s.process_events WHERE startsWith(host_name, 'loadgen-')", p.database)
	p.eventually(60*time.Second, "the stream under way", func() (bool, string) {
		c := p.count(events)
		return c > 0, fmt.Sprint(c)
	})
	p.stop(syscall.SIGKILL)

	// The port stays held for two seconds after the kill.
	var hold net.Listener
	for deadline := time.Now().Add(10 * time.Second); hold == nil; {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p.port))
		if err == nil {
			hold = ln
		} else if time.Now().After(deadline) {
			t.Fatalf("take the port of the killed crumbs: %v", err)
		}
	}
	released := time.AfterFunc(2*time.Second, func() { hold.Close() })
	defer released.Stop()
	p.start()
	p.eventually(120*time.Second, "every event in ClickHouse", func() (bool, string) {
		c := p.count(events)
		return c >= n, fmt.Sprint(c)
	})
	time.Sleep(2 * time.Second) // a duplicate would land within the sink's flush age
	total := p.count(events)
	unique := p.count(fmt.Sprintf("SELECT uniqExact(event_id) FROM %s.process_events WHERE startsWith(host_name, 'loadgen-')", p.database))
	if total != n || unique != n {
		t.Errorf("process_events: %d rows, %d unique, want %d of each", total, unique, n)
	}
	if err, _ := p.stop(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM: %v", err)
	}
	if got := strings.Count(p.logs.String(), "port in use, waiting for it to be free"); got != 1 {
		t.Errorf("said %d times that it waits for the port, want once:\n%s", got, p.logs.String())
	}
}

// TestCommandsSayWhyTheyHaveNoCredentials: against the embedded broker, `crumbs context
// publish` and `crumbs loadgen` run by a user other than root are told that the credentials
// are root's and what to do instead; run by root before `crumbs up` ever ran, that there are
// none yet. Neither gets as far as the broker.
func TestCommandsSayWhyTheyHaveNoCredentials(t *testing.T) {
	testenv.RequireRoot(t)
	pub := publicTempDir(t)
	bin := filepath.Join(pub, "crumbs")
	b, err := os.ReadFile(crumbsBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(pub, "inventory.json")
	if err := os.WriteFile(inv, []byte(`{"kind": "inventory", "id": "web-1", "host": "web-1", "service": "shop"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(pub, "kafka")
	if _, err := kafka.EnsureCredentials(filepath.Join(dataDir, "credentials")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	env := []string{"CRUMBS_KAFKA_EMBEDDED_DATA_DIR=" + dataDir, fmt.Sprintf("CRUMBS_KAFKA_EMBEDDED_PORT=%d", freePort(t)), "CRUMBS_METRICS_LISTEN="}
	run := func(cred *syscall.Credential, env []string, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env, cmd.Dir = env, pub
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("crumbs %s: %v, want it to fail\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	for _, args := range [][]string{{"context", "publish", "--kind", "inventory", "-f", inv}, {"loadgen", "--count", "1"}} {
		out := run(nobody, env, args...)
		want := "credentials in " + filepath.Join(dataDir, "credentials") + " are readable by root only; run as root or set kafka.security.sasl.*"
		if !strings.Contains(out, want) {
			t.Errorf("crumbs %s as nobody:\n%s\nwant a line with:\n%s", strings.Join(args, " "), out, want)
		}
	}
	fresh := []string{"CRUMBS_KAFKA_EMBEDDED_DATA_DIR=" + filepath.Join(pub, "never-started"), env[1], env[2]}
	out := run(nil, fresh, "context", "publish", "--kind", "inventory", "-f", inv)
	if want := "no credentials in " + filepath.Join(pub, "never-started", "credentials") + " (crumbs up writes them"; !strings.Contains(out, want) {
		t.Errorf("crumbs context publish before crumbs up ever ran:\n%s\nwant a line with:\n%s", out, want)
	}
}

// publicTempDir is a temporary directory that every user may enter.
func publicTempDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for p := d; p != os.TempDir() && strings.HasPrefix(p, os.TempDir()); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}
