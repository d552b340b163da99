// Package testenv is the one place where tests say what infrastructure they need: root, eBPF,
// Kafka (embedded kfake needs nothing), the shared ClickHouse server, or private
// clickhouse-server processes (and a ZooKeeper for a cluster of them) that a test starts,
// stops and kills itself. When a need is missing the test is skipped, unless CRUMBS_STRICT=1
// (set by .ci/run), in which case it fails.
package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"testing"
	"time"
)

// Strict reports whether missing infrastructure fails tests instead of skipping them.
func Strict() bool { return os.Getenv("CRUMBS_STRICT") == "1" }

// missing skips or, under CRUMBS_STRICT=1, fails the test.
func missing(t testing.TB, what string) {
	t.Helper()
	if Strict() {
		t.Fatalf("CRUMBS_STRICT=1 and %s", what)
	}
	t.Skipf("skipping (set CRUMBS_STRICT=1 to fail instead): %s", what)
}

// RequireRoot needs the test to run as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "the test needs root")
	}
}

// RequireBPF needs root, BTF and a mounted tracefs.
func RequireBPF(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		missing(t, "the kernel has no BTF (/sys/kernel/btf/vmlinux)")
	}
	if _, err := os.Stat("/sys/kernel/tracing/events"); err != nil {
		missing(t, "tracefs is not mounted at /sys/kernel/tracing (mount -t tracefs tracefs /sys/kernel/tracing)")
	}
}

// ClickHouseAddr returns the native-protocol address of the test ClickHouse server
// (CRUMBS_TEST_CLICKHOUSE_ADDR, default 127.0.0.1:9000) and needs it to answer.
func ClickHouseAddr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("CRUMBS_TEST_CLICKHOUSE_ADDR")
	if addr == "" {
		addr = "127.0.0.1:9000"
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		missing(t, fmt.Sprintf("no ClickHouse server at %s (run scripts/ensure-deps.sh): %v", addr, err))
		return addr
	}
	c.Close()
	return addr
}
