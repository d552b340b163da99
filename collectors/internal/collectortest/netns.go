package collectortest

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Veth is a network namespace joined to this one by a veth pair: traffic to Addr leaves
// through one end of the pair and is received by the other end's namespace, crossing two
// devices and a second network stack, as traffic between containers does, rather than
// loopback's shortcut.
type Veth struct {
	Namespace string     // the namespace's name (ip netns)
	Addr      netip.Addr // its end of the pair
}

// NewVeth creates a namespace and a veth pair into it with ip (iproute2); cleanup removes
// both. It needs root.
func NewVeth(t testing.TB) *Veth {
	t.Helper()
	pid := os.Getpid()
	ns := fmt.Sprintf("crumbs-veth-%d", pid)
	host, peer := fmt.Sprintf("crv%da", pid), fmt.Sprintf("crv%db", pid)
	// A /30 of 10.213.0.0/16 picked by the pid, so that two test processes do not meet.
	sub := (pid % 16384) * 4
	prefix := func(last int) string { return fmt.Sprintf("10.213.%d.%d", sub>>8, sub&0xff+last) }
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	exec.Command("ip", "netns", "del", ns).Run() // left over by a killed run of this pid
	ip("netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() }) // takes the pair with it
	ip("link", "add", host, "type", "veth", "peer", "name", peer, "netns", ns)
	ip("addr", "add", prefix(1)+"/30", "dev", host)
	ip("link", "set", host, "up")
	ip("-n", ns, "addr", "add", prefix(2)+"/30", "dev", peer)
	ip("-n", ns, "link", "set", peer, "up")
	ip("-n", ns, "link", "set", "lo", "up")
	return &Veth{Namespace: ns, Addr: netip.MustParseAddr(prefix(2))}
}

// ListenIn listens for TCP on addr inside the network namespace named namespace (ip netns):
// the socket belongs to that namespace, whichever thread accepts on it later.
func ListenIn(namespace, addr string) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	done := make(chan result, 1)
	go func() {
		// Never unlocked: the thread, moved into the namespace, ends with this goroutine.
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + namespace)
		if err != nil {
			done <- result{err: fmt.Errorf("open network namespace: %w", err)}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("enter network namespace %s: %w", namespace, err)}
			return
		}
		ln, err := net.Listen("tcp", addr)
		done <- result{ln, err}
	}()
	r := <-done
	return r.ln, r.err
}
