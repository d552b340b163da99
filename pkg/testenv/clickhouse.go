package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
)

// ClickHouseServer is a private clickhouse-server process that a test starts, stops and
// starts again: its own data directory and free ports, never the shared server. It runs as
// the clickhouse user when the test runs as root and that user exists (the Debian package
// creates it), else as the test's user. t.Cleanup kills it and removes its directory.
type ClickHouseServer struct {
	// Addr is the native-protocol address, 127.0.0.1:<port>; it stays the same across
	// Stop and Start.
	Addr string
	// Dir holds the server's config.xml, users.xml, data and logs.
	Dir string

	t       testing.TB
	tcp     int
	cred    *syscall.Credential
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	cluster string // remote_servers section, when part of a cluster
	macros  string
	// exits records how each start ended when it ended on its own (not by Stop or Kill):
	// a server that crashed mid-test explains a client's "connection refused".
	exitMu   sync.Mutex
	exits    []string
	stopping atomic.Bool // set by Stop and Kill before they signal
}

// ClickHouseServerOption configures a private server before its first start.
type ClickHouseServerOption func(*ClickHouseServer)

// clickHouseBinary finds clickhouse-server or fails (or skips) the test.
func clickHouseBinary(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"clickhouse-server", "/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	missing(t, "clickhouse-server is not installed (run scripts/ensure-deps.sh)")
	return ""
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on right now.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// NewClickHouseServer prepares a private server (config, directories, ports) without
// starting it; Start starts it.
func NewClickHouseServer(t testing.TB, opts ...ClickHouseServerOption) *ClickHouseServer {
	t.Helper()
	clickHouseBinary(t)
	dir, err := os.MkdirTemp("", "crumbs-clickhouse-")
	if err != nil {
		t.Fatalf("private clickhouse: %v", err)
	}
	s := &ClickHouseServer{t: t, Dir: dir, tcp: FreePort(t)}
	s.Addr = "127.0.0.1:" + strconv.Itoa(s.tcp)
	for _, o := range opts {
		o(s)
	}
	if os.Geteuid() == 0 {
		if u, err := user.Lookup("clickhouse"); err == nil {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			// What the server said is what explains a test that found it away.
			t.Logf("private clickhouse %s, its logs:\n%s", s.Addr, s.logTail())
		}
		s.Kill()
		os.RemoveAll(dir)
	})
	if err := s.writeConfig(); err != nil {
		t.Fatalf("private clickhouse: %v", err)
	}
	return s
}

// StartClickHouseServer starts a private server and waits until it answers queries.
func StartClickHouseServer(t testing.TB, opts ...ClickHouseServerOption) *ClickHouseServer {
	t.Helper()
	s := NewClickHouseServer(t, opts...)
	s.Start()
	return s
}

func (s *ClickHouseServer) writeConfig() error {
	for _, d := range []string{"data", "tmp", "user_files", "format_schemas", "log"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, d), 0o750); err != nil {
			return err
		}
	}
	// Small caches: several of these run beside the shared server on a small machine.
	config := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>%[1]s/log/server.log</log><errorlog>%[1]s/log/server.err.log</errorlog><size>10M</size><count>1</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>%[2]d</tcp_port>
  <http_port>%[3]d</http_port>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <interserver_http_port>%[4]d</interserver_http_port>
  <path>%[1]s/data/</path>
  <tmp_path>%[1]s/tmp/</tmp_path>
  <user_files_path>%[1]s/user_files/</user_files_path>
  <format_schema_path>%[1]s/format_schemas/</format_schema_path>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <max_concurrent_queries>50</max_concurrent_queries>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mlock_executable>false</mlock_executable>
  <shutdown_wait_unfinished>1</shutdown_wait_unfinished>
%[5]s%[6]s</yandex>
`, s.Dir, s.tcp, FreePort(s.t), FreePort(s.t), s.cluster, s.macros)
	// poll_interval 1: a connection's handler notices a shutdown within a second, not ten.
	users := `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage><poll_interval>1</poll_interval></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
`
	if err := os.WriteFile(filepath.Join(s.Dir, "config.xml"), []byte(config), 0o640); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "users.xml"), []byte(users), 0o640); err != nil {
		return err
	}
	if s.cred != nil {
		return filepath.Walk(s.Dir, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, int(s.cred.Uid), int(s.cred.Gid))
		})
	}
	return nil
}

// Start starts the server (again) on its data and ports, and waits until it answers.
func (s *ClickHouseServer) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatalf("private clickhouse %s: already running", s.Addr)
	}
	cmd := exec.Command(clickHouseBinary(s.t), "--config-file="+filepath.Join(s.Dir, "config.xml"))
	cmd.Dir = s.Dir
	out, err := os.OpenFile(filepath.Join(s.Dir, "log", "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		s.t.Fatalf("private clickhouse: %v", err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group: a signal to the test's group does not reach it, and Kill
	// reaches whatever it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: s.cred, Pdeathsig: syscall.SIGKILL}
	s.stopping.Store(false)
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start private clickhouse: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		err := cmd.Wait()
		if !s.stopping.Load() {
			s.exitMu.Lock()
			s.exits = append(s.exits, fmt.Sprintf("pid %d exited on its own at %s: %v", cmd.Process.Pid, time.Now().Format(time.TimeOnly), err))
			s.exitMu.Unlock()
		}
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := s.ping()
		if err == nil {
			return
		}
		select {
		case <-exited:
			s.cmd = nil
			s.t.Fatalf("private clickhouse %s exited at start: %v\n%s", s.Addr, err, s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("private clickhouse %s not answering within 60s: %v\n%s", s.Addr, err, s.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// query runs a statement that returns rows on the server and reads them.
func (s *ClickHouseServer) query(q string) error {
	conn, err := ch.Open(&ch.Options{Addr: []string{s.Addr}, DialTimeout: time.Second})
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
	}
	return rows.Err()
}

func (s *ClickHouseServer) ping() error {
	conn, err := ch.Open(&ch.Options{Addr: []string{s.Addr}, DialTimeout: time.Second})
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return conn.Ping(ctx)
}

func (s *ClickHouseServer) logTail() string {
	var b strings.Builder
	s.exitMu.Lock()
	for _, e := range s.exits {
		fmt.Fprintf(&b, "--- %s\n", e)
	}
	s.exitMu.Unlock()
	for _, f := range []string{"stdout.log", "server.err.log"} {
		data, _ := os.ReadFile(filepath.Join(s.Dir, "log", f))
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		fmt.Fprintf(&b, "--- %s:\n%s\n", f, data)
	}
	return b.String()
}

// Stop shuts the server down (SIGTERM, as a service manager does) and waits for it to exit,
// killing it after 30 s. Its data stays for the next Start.
func (s *ClickHouseServer) Stop() { s.signal(syscall.SIGTERM, 30*time.Second) }

// Kill kills the server (SIGKILL) and waits for it to exit. Its data stays for the next Start.
func (s *ClickHouseServer) Kill() { s.signal(syscall.SIGKILL, 30*time.Second) }

func (s *ClickHouseServer) signal(sig syscall.Signal, grace time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.stopping.Store(true)
	_ = syscall.Kill(-s.cmd.Process.Pid, sig)
	select {
	case <-s.exited:
	case <-time.After(grace):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
	s.cmd = nil
}
