package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/threatcrumbs/crumbs/pkg/testenv"
)

// stageProc is a stage process started by startStage.
type stageProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// kill SIGKILLs the stage, as a crash would, and waits for it to exit.
func (s *stageProc) kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// startStage runs one stage (`crumbs collect|enrich|detect|sink`) against the pipeline's
// broker until the test ends or it is killed; env adds CRUMBS_ settings.
func (p *pipeline) startStage(stage string, env ...string) *stageProc {
	p.t.Helper()
	cmd := exec.Command(crumbsBin, stage)
	cmd.Env = append(append([]string{}, p.env...), fmt.Sprintf("CRUMBS_KAFKA_BROKERS=127.0.0.1:%d", p.port))
	cmd.Env = append(cmd.Env, env...)
	logs := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	s := &stageProc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	p.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-s.done
		}
		if p.t.Failed() {
			p.t.Logf("crumbs %s logs:\n%s", stage, logs.String())
		}
	})
	return s
}

// buildPAMHelper builds the identity collector's PAM client (cgo, libpam0g-dev).
func buildPAMHelper(t testing.TB) (helper, confdir string) {
	t.Helper()
	helper = filepath.Join(tempDir(t), "pamauth")
	out, err := exec.Command("go", "build", "-o", helper, "../../collectors/identity/testdata/pamauth").CombinedOutput()
	if err != nil {
		t.Fatalf("build the PAM helper (needs gcc and libpam0g-dev, installed by scripts/ensure-deps.sh): %v\n%s", err, out)
	}
	confdir, err = filepath.Abs("../../collectors/identity/testdata/pam.d")
	if err != nil {
		t.Fatal(err)
	}
	return helper, confdir
}

// TestEveryKindLandsInClickHouse: a connection, a file write, a PAM authentication and the
// system sampler's readings reach their ClickHouse tables, and so does the connect of a
// connection held open past the coalesce window, which only the network collector's
// iterator jobs (or their fallback) report: with every stage inside `crumbs up` and with the
// stages run apart as `crumbs collect|enrich|detect|sink`, with the iterators as the kernel
// allows them (auto) and forced off (the connection map walked from user space). With the
// iterators off the process collector cannot run either (its ring buffer refused by
// configuration): it is reported, and the rest runs.
func TestEveryKindLandsInClickHouse(t *testing.T) {
	for _, tc := range []struct {
		name      string
		apart     bool
		iterators string
	}{
		{name: "together/iterators=auto", iterators: "auto"},
		{name: "together/iterators=off", iterators: "off"},
		{name: "apart/iterators=auto", apart: true, iterators: "auto"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testenv.RequireBPF(t)
			watched := tempDir(t)
			env := []string{
				"CRUMBS_COLLECTORS_FILE_PATHS=" + watched,
				"CRUMBS_COLLECTORS_FILE_STATE_DIR=" + tempDir(t),
				"CRUMBS_COLLECTORS_SYSTEM_INTERVAL=1s",
				"CRUMBS_COLLECTORS_NETWORK_ITERATORS=" + tc.iterators,
			}
			offProcess := tc.iterators == "off"
			if offProcess {
				env = append(env, "CRUMBS_COLLECTORS_PROCESS_REFUSE=ring_buffer")
			}
			if tc.apart {
				env = append(env, "CRUMBS_UP_STAGES=")
			}
			p := newPipeline(t, env...)
			p.start()
			if tc.apart {
				for _, st := range []string{"sink", "detect", "enrich", "collect"} {
					p.startStage(st)
				}
			}
			helper, confdir := buildPAMHelper(t)
			host, _ := os.Hostname()
			marker := randomName("kinds-")

			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			port := ln.Addr().(*net.TCPAddr).Port
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						buf := make([]byte, 4096)
						for {
							if _, err := c.Read(buf); err != nil {
								break
							}
						}
						c.Close()
					}()
				}
			}()
			// Held open for the whole test, past the coalesce window (1s), by a child (the
			// collectors leave out crumbs' own process): its connect is reported while it is
			// open, by the iterator jobs or their fallback.
			held := exec.Command("bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d; read line", port))
			heldIn, err := held.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := held.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { heldIn.Close(); _ = held.Wait() }()

			// Act until the collectors are attached (apart, the collect process needs a moment):
			// each round makes one event of every kind, and the test waits for the first of each.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			acted := make(chan struct{})
			go func() {
				defer close(acted)
				for i := 0; ctx.Err() == nil; i++ {
					if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
						_, _ = c.Write(make([]byte, 1000))
						c.Close()
					}
					_ = os.WriteFile(filepath.Join(watched, fmt.Sprintf("%s-%d.conf", marker, i)), []byte("x=1\n"), 0o644)
					_ = exec.Command(helper, confdir, "crumbs-test", "nobody", "alice", "192.0.2.1").Run()
					select {
					case <-ctx.Done():
					case <-time.After(time.Second):
					}
				}
			}()
			defer func() { cancel(); <-acted }()

			db := p.database
			for _, q := range []struct{ what, query string }{
				{"network_events", fmt.Sprintf("SELECT count() FROM %s.network_events WHERE host_name = '%s' AND dst_port = %d", db, host, port)},
				{"the held connection's connect, while it is open", fmt.Sprintf("SELECT count() FROM %s.network_events WHERE host_name = '%s' AND dst_port = %d AND action = 'connect' AND pid = %d AND duration_ns = 0", db, host, port, held.Process.Pid)},
				{"file_events", fmt.Sprintf("SELECT count() FROM %s.file_events WHERE host_name = '%s' AND startsWith(file_path, '%s/%s')", db, host, watched, marker)},
				{"identity_events", fmt.Sprintf("SELECT count() FROM %s.identity_events WHERE host_name = '%s' AND target_user = 'nobody' AND identity_service = 'crumbs-test' AND result = 'failure'", db, host)},
				{"system_events", fmt.Sprintf("SELECT count() FROM %s.system_events WHERE host_name = '%s'", db, host)},
			} {
				p.eventually(60*time.Second, q.what+" rows of this test", func() (bool, string) {
					n := p.count(q.query)
					return n > 0, fmt.Sprintf("%d rows", n)
				})
			}
			if offProcess && !tc.apart {
				for _, want := range []string{`msg="process collector cannot run on this host"`, `capability=ring_buffer`,
					`msg="kernel capability turned off by configuration"`, `capability="iter/bpf_map_elem, iter/tcp"`} {
					if !strings.Contains(p.logs.String(), want) {
						t.Errorf("crumbs up's log does not say %q:\n%s", want, p.logs.String())
					}
				}
			}
		})
	}
}
