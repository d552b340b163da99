package testenv

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// zooKeeperJar is where Debian's zookeeper package puts the server.
const zooKeeperJar = "/usr/share/java/zookeeper.jar"

// StartZooKeeper starts a private, standalone ZooKeeper (Debian's zookeeper package) on a
// free port with its own data directory, and returns its address; t.Cleanup kills it.
// ClickHouse needs it for ON CLUSTER statements and Replicated tables.
func StartZooKeeper(t testing.TB) string {
	t.Helper()
	java, err := exec.LookPath("java")
	if err != nil {
		missing(t, "java is not installed (scripts/ensure-deps.sh installs zookeeper, which needs it)")
	}
	if _, err := os.Stat(zooKeeperJar); err != nil {
		missing(t, "ZooKeeper is not installed (run scripts/ensure-deps.sh): "+err.Error())
	}
	dir, err := os.MkdirTemp("", "crumbs-zookeeper-")
	if err != nil {
		t.Fatalf("private zookeeper: %v", err)
	}
	port := FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := fmt.Sprintf("tickTime=500\ndataDir=%s/data\nclientPort=%d\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n"+
		"4lw.commands.whitelist=ruok,srvr\nmaxClientCnxns=0\n", dir, port)
	if err := os.WriteFile(filepath.Join(dir, "zoo.cfg"), []byte(cfg), 0o600); err != nil {
		t.Fatalf("private zookeeper: %v", err)
	}
	out, err := os.Create(filepath.Join(dir, "out.log"))
	if err != nil {
		t.Fatalf("private zookeeper: %v", err)
	}
	defer out.Close()
	cmd := exec.Command(java, "-Xmx128m", "-XX:+UseSerialGC", "-cp", zooKeeperJar,
		"org.apache.zookeeper.server.quorum.QuorumPeerMain", filepath.Join(dir, "zoo.cfg"))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start private zookeeper: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		os.RemoveAll(dir)
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if zkServing(addr) {
			return addr
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "out.log"))
			t.Fatalf("private zookeeper exited at start:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("private zookeeper at %s not answering within 60s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// zkServing asks ZooKeeper "srvr" and reports whether it serves requests (its answer names
// its mode). "ruok" answers imok as soon as the process runs, before it takes sessions;
// ClickHouse 18.16 refused the handshake then, and crashed (SIGSEGV) in its DDL worker.
func zkServing(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("srvr")); err != nil {
		return false
	}
	b, _ := io.ReadAll(io.LimitReader(c, 4096))
	return strings.Contains(string(b), "Mode: ")
}

// StartClickHouseCluster starts a private ZooKeeper and one private clickhouse-server per
// shard (one replica each), all knowing the cluster name in remote_servers, the {shard}
// and {replica} macros and the distributed DDL queue, so that ON CLUSTER statements,
// Replicated tables and Distributed tables work across them. It returns the servers in
// shard order.
func StartClickHouseCluster(t testing.TB, name string, shards int) []*ClickHouseServer {
	t.Helper()
	clickHouseBinary(t)
	zk := StartZooKeeper(t)
	zkHost, zkPort, _ := net.SplitHostPort(zk)
	servers := make([]*ClickHouseServer, shards)
	var remote strings.Builder
	fmt.Fprintf(&remote, "  <remote_servers>\n    <%s>\n", name)
	ports := make([]int, shards)
	for i := range ports {
		ports[i] = FreePort(t)
		fmt.Fprintf(&remote, "      <shard><internal_replication>true</internal_replication><replica><host>127.0.0.1</host><port>%d</port></replica></shard>\n", ports[i])
	}
	fmt.Fprintf(&remote, "    </%s>\n  </remote_servers>\n", name)
	fmt.Fprintf(&remote, "  <zookeeper><node><host>%s</host><port>%s</port></node><session_timeout_ms>30000</session_timeout_ms></zookeeper>\n", zkHost, zkPort)
	remote.WriteString("  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>\n")
	for i := range servers {
		port := ports[i]
		servers[i] = NewClickHouseServer(t, func(s *ClickHouseServer) {
			s.tcp = port
			s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
			s.cluster = remote.String()
			s.macros = fmt.Sprintf("  <macros><shard>%02d</shard><replica>r1</replica></macros>\n", i+1)
		})
	}
	for _, s := range servers {
		s.Start()
	}
	// Each server's ZooKeeper session is up before the test's first ON CLUSTER statement.
	for _, s := range servers {
		s.waitForZooKeeper()
	}
	return servers
}

// waitForZooKeeper waits until the server reads ZooKeeper (system.zookeeper), or fails the
// test after 60 s with the server's logs.
func (s *ClickHouseServer) waitForZooKeeper() {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := s.query("SELECT count() FROM system.zookeeper WHERE path = '/'")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("private clickhouse %s: no ZooKeeper session within 60s: %v\n%s", s.Addr, err, s.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
