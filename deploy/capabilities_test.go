package deploy

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/threatcrumbs/crumbs/pkg/testenv"
)

// TestCollectorStartsWithTheUnitsCapabilities starts crumbs up (the collectors and the
// embedded broker) as root under exactly crumbs-collect.service's bounding set, with setpriv
// as systemd would apply it, twice: on a fresh state directory and on the one the first start
// left, whose spool and scan directories now belong to crumbs. Each start must load the
// programs, drop to crumbs and come up, then stop cleanly on SIGINT. This is what the test
// machine, which does not run systemd, can say of the unit starting.
func TestCollectorStartsWithTheUnitsCapabilities(t *testing.T) {
	testenv.RequireBPF(t)
	setpriv := requireCommand(t, "setpriv", "scripts/ensure-deps.sh installs util-linux")
	u := readUnit(t, "systemd/crumbs-collect.service")
	var bounding []string
	for _, c := range u.capabilities() {
		bounding = append(bounding, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	crumbs := crumbsBinary(t)
	// The state directory's parents must let crumbs through, as /var/lib does.
	state := filepath.Join(t.TempDir(), "state")
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(state); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, start := range []string{"fresh", "again"} {
		cmd := exec.Command(setpriv, "--bounding-set", "-all,"+strings.Join(bounding, ","), "--inh-caps", "-all", crumbs, "up")
		cmd.Env = append(cleanEnv(),
			"CRUMBS_UP_STAGES=collect,enrich", // the stages process needs a stage to run
			"CRUMBS_KAFKA_EMBEDDED_PORT="+strconv.Itoa(testenv.FreePort(t)),
			"CRUMBS_KAFKA_EMBEDDED_DATA_DIR="+filepath.Join(state, "kafka"),
			"CRUMBS_COLLECTORS_SPOOL_DIR="+filepath.Join(state, "spool"),
			"CRUMBS_COLLECTORS_FILE_STATE_DIR="+filepath.Join(state, "scan"),
			"CRUMBS_COLLECTORS_FILE_PATHS="+state, // a small scan
			"CRUMBS_METRICS_LISTEN=", "CRUMBS_STATUS_INTERVAL=0")
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout = io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var log bytes.Buffer
		up, done := make(chan bool, 1), make(chan struct{})
		go func() {
			defer close(done)
			sc := bufio.NewScanner(stderr)
			dropped := false
			for sc.Scan() {
				line := sc.Text()
				mu.Lock()
				log.WriteString(line + "\n")
				mu.Unlock()
				dropped = dropped || strings.Contains(line, `msg="privileges dropped" user=crumbs`)
				if dropped && strings.Contains(line, `msg="crumbs is up"`) {
					select {
					case up <- true:
					default:
					}
				}
			}
		}()
		ok := false
		select {
		case ok = <-up:
		case <-done:
		case <-time.After(3 * time.Minute): // a deadline on a loaded machine, not a measurement
		}
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			cmd.Process.Kill()
			<-done
		}
		werr := cmd.Wait()
		mu.Lock()
		out := log.String()
		mu.Unlock()
		if !ok {
			t.Fatalf("%s start: crumbs up under crumbs-collect's bounding set %v did not drop to crumbs and come up:\n%s", start, bounding, out)
		}
		if werr != nil {
			t.Errorf("%s start: crumbs up did not stop cleanly on SIGINT: %v\n%s", start, werr, out)
		}
	}
}
