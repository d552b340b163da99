package network

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/threatcrumbs/crumbs/collectors/internal/collectortest"
	"github.com/threatcrumbs/crumbs/schemas"
)

// The collector leaves out its own process, so the traffic the tests watch comes from
// children: the test binary run again with helperEnv naming what to do.
const helperEnv = "CRUMBS_NETWORK_TEST_HELPER"

// waitLimit bounds how long a test waits for an event before it fails.
const waitLimit = 15 * time.Second

var testHost = schemas.Host{ID: "test-machine-id", Name: "test-host"}

// TestHelperProcess is not a test: it is the child the other tests start.
func TestHelperProcess(t *testing.T) {
	role := os.Getenv(helperEnv)
	if role == "" {
		return
	}
	err := runHelper(role, os.Args[len(os.Args)-1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// runHelper plays one role. arg is role-specific, comma-separated.
func runHelper(role, arg string) error {
	f := strings.Split(arg, ",")
	switch role {
	case "tcp-server": // addr, bytes to read, bytes to write
		return tcpServer(f[0], atoi(f[1]), atoi(f[2]))
	case "tcp-client": // addr, bytes to write, bytes to read
		return tcpClient(f[0], atoi(f[1]), atoi(f[2]))
	case "udp-sendto": // addr, datagrams, size: unconnected sendto and recvfrom
		return udpSendTo(f[0], atoi(f[1]), atoi(f[2]))
	case "udp-connected": // addr, datagrams, size: connected write and read
		return udpConnected(f[0], atoi(f[1]), atoi(f[2]))
	case "dns-then-connect": // dns server addr, name, port to connect to at the answer
		return dnsThenConnect(f[0], f[1], atoi(f[2]))
	case "tcp-client-hold": // addr, bytes to write, bytes to read; closes when stdin does
		return tcpClientHold(f[0], atoi(f[1]), atoi(f[2]))
	case "tcp-storm": // connections, workers
		return tcpStorm(atoi(f[0]), atoi(f[1]))
	case "tcp-hold": // connections: opened to itself, held until stdin closes
		return tcpHold(atoi(f[0]))
	case "tcp-storm-bytes": // connections, bytes each client sends, bytes each server sends
		return tcpStormBytes(atoi(f[0]), atoi(f[1]), atoi(f[2]))
	}
	return fmt.Errorf("unknown helper role %q", role)
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// tcpServer listens twice on one port (SO_REUSEPORT), prints the port, accepts one
// connection, reads in bytes, writes out bytes, and closes after the client did.
func tcpServer(addr string, in, out int) error {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
		return errors.Join(err, serr)
	}}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	ln2, err := lc.Listen(context.Background(), "tcp", net.JoinHostPort(ln.Addr().(*net.TCPAddr).IP.String(), strconv.Itoa(port)))
	if err != nil {
		return err
	}
	ln2.Close()
	fmt.Println(port)
	conn, err := ln.Accept()
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := io.ReadFull(conn, make([]byte, in)); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if _, err := conn.Write(make([]byte, out)); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if n, err := io.Copy(io.Discard, conn); err != nil || n != 0 {
		return fmt.Errorf("wait for the client's close: %d bytes, %v", n, err)
	}
	return nil
}

func tcpClient(addr string, out, in int) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Write(make([]byte, out)); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if _, err := io.ReadFull(conn, make([]byte, in)); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	return nil
}

// tcpClientHold is tcpClient keeping the connection open until its stdin is closed; it
// prints a line once the bytes were exchanged.
func tcpClientHold(addr string, out, in int) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Write(make([]byte, out)); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if _, err := io.ReadFull(conn, make([]byte, in)); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	fmt.Println("exchanged")
	_, err = io.Copy(io.Discard, os.Stdin)
	return err
}

// tcpHold opens n loopback connections to itself, prints a line, and closes them once its
// stdin is closed.
func tcpHold(n int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	conns := make([]net.Conn, 0, 2*n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		s, err := ln.Accept()
		if err != nil {
			c.Close()
			return err
		}
		conns = append(conns, c, s)
	}
	fmt.Println("held")
	_, err = io.Copy(io.Discard, os.Stdin)
	return err
}

// tcpStorm serves on loopback and connects to itself n times from workers goroutines,
// each connection closed by the client at once and by the server on EOF. It prints the
// storm's duration in nanoseconds.
func tcpStorm(n, workers int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	var served sync.WaitGroup
	served.Go(func() {
		for range n {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			served.Go(func() {
				io.Copy(io.Discard, c)
				c.Close()
			})
		}
	})
	addr := ln.Addr().String()
	var next atomic.Int64
	errs := make(chan error, workers)
	start := time.Now()
	var clients sync.WaitGroup
	for range workers {
		clients.Go(func() {
			for next.Add(1) <= int64(n) {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					errs <- err
					return
				}
				c.Close()
			}
		})
	}
	clients.Wait()
	served.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	fmt.Println(elapsed.Nanoseconds())
	return nil
}

// tcpStormBytes serves on loopback and connects to itself n times from 4 goroutines; in each
// connection the client sends in bytes and reads out bytes, the server reads in bytes, sends
// out bytes and closes once the client has.
func tcpStormBytes(n, in, out int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	errs := make(chan error, n+4)
	var served sync.WaitGroup
	served.Go(func() {
		for range n {
			c, err := ln.Accept()
			if err != nil {
				errs <- err
				return
			}
			served.Go(func() {
				defer c.Close()
				if _, err := io.ReadFull(c, make([]byte, in)); err != nil {
					errs <- fmt.Errorf("server read: %w", err)
					return
				}
				if _, err := c.Write(make([]byte, out)); err != nil {
					errs <- fmt.Errorf("server write: %w", err)
					return
				}
				io.Copy(io.Discard, c)
			})
		}
	})
	var next atomic.Int64
	var clients sync.WaitGroup
	for range 4 {
		clients.Go(func() {
			for next.Add(1) <= int64(n) {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					errs <- err
					return
				}
				_, err = c.Write(make([]byte, in))
				if err == nil {
					_, err = io.ReadFull(c, make([]byte, out))
				}
				c.Close()
				if err != nil {
					errs <- fmt.Errorf("client: %w", err)
					return
				}
			}
		})
	}
	clients.Wait()
	served.Wait()
	close(errs)
	return <-errs
}

func udpSendTo(addr string, n, size int) error {
	to, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return err
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: to.IP})
	if err != nil {
		return err
	}
	defer conn.Close()
	buf := make([]byte, size)
	for range n {
		if _, err := conn.WriteTo(buf, to); err != nil { // sendto
			return err
		}
		if _, _, err := conn.ReadFrom(buf); err != nil { // recvfrom
			return err
		}
	}
	return nil
}

func udpConnected(addr string, n, size int) error {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	buf := make([]byte, size)
	for range n {
		if _, err := conn.Write(buf); err != nil { // write
			return err
		}
		if _, err := conn.Read(buf); err != nil { // read
			return err
		}
	}
	return nil
}

// dnsThenConnect asks the DNS server at server for name's A record, once through an
// unconnected socket (recvfrom) and once through a connected one (read), then connects
// to the first address at port.
func dnsThenConnect(server, name string, port int) error {
	query := dnsQuery(name)
	to, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return err
	}
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	defer uc.Close()
	if _, err := uc.WriteTo(query, to); err != nil {
		return err
	}
	buf := make([]byte, 512)
	n, _, err := uc.ReadFrom(buf)
	if err != nil {
		return err
	}
	resp, err := parseDNSResponse(buf[:n])
	if err != nil || len(resp.Addrs) == 0 {
		return fmt.Errorf("dns answer: %v %v", resp, err)
	}
	cc, err := net.Dial("udp", server)
	if err != nil {
		return err
	}
	defer cc.Close()
	if _, err := cc.Write(query); err != nil {
		return err
	}
	if _, err := cc.Read(buf); err != nil {
		return err
	}
	conn, err := net.Dial("tcp", net.JoinHostPort(resp.Addrs[0].String(), strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return conn.Close()
}

// startHelper starts the test binary as a helper child playing role with arg, and returns
// it with its standard output. Cleanup kills it if it still runs.
func startHelper(t *testing.T, role, arg string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "--", arg)
	cmd.Env = append(os.Environ(), helperEnv+"="+role)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("helper stdout: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper %s: %v", role, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, bufio.NewReader(out)
}

// helperPipes are a helper's standard input and output.
type helperPipes struct {
	stdin io.WriteCloser
	out   *bufio.Reader
}

// startHelperStdin is startHelper with the child's standard input kept open for the test.
func startHelperStdin(t *testing.T, role, arg string) (*exec.Cmd, helperPipes) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "--", arg)
	cmd.Env = append(os.Environ(), helperEnv+"="+role)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("helper stdin: %v", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("helper stdout: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper %s: %v", role, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, helperPipes{stdin: stdin, out: bufio.NewReader(out)}
}

// runHelperToEnd runs a helper child to its end and returns its pid.
func runHelperToEnd(t *testing.T, role, arg string) int {
	t.Helper()
	cmd, out := startHelper(t, role, arg)
	io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper %s: %v", role, err)
	}
	return cmd.Process.Pid
}

// runCollector starts a collector with cfg and returns the channel its events arrive on.
// Cleanup stops it and checks that Run returned nil.
func runCollector(t testing.TB, cfg Config) (*Collector, <-chan *schemas.NetworkEvent) {
	t.Helper()
	c, err := New(cfg, testHost, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, collectortest.Run(t, keepEvents(c.Run), 1<<14)
}

// keepEvents wraps a collector's Run so that emit gets a copy of each event, which it may
// keep: Run reuses its own.
func keepEvents(run func(context.Context, func(*schemas.NetworkEvent)) error) func(context.Context, func(*schemas.NetworkEvent)) error {
	return func(ctx context.Context, emit func(*schemas.NetworkEvent)) error {
		return run(ctx, func(e *schemas.NetworkEvent) {
			kept := *e
			emit(&kept)
		})
	}
}

// collect gathers events until done accepts the events so far, failing after waitLimit.
func collect(t testing.TB, events <-chan *schemas.NetworkEvent, what string, keep func(*schemas.NetworkEvent) bool, done func([]*schemas.NetworkEvent) bool) []*schemas.NetworkEvent {
	t.Helper()
	var got []*schemas.NetworkEvent
	limit := time.After(waitLimit)
	for !done(got) {
		select {
		case e := <-events:
			if keep(e) {
				got = append(got, e)
			}
		case <-limit:
			t.Fatalf("no %s within %v; got %d events: %s", what, waitLimit, len(got), describe(got))
		}
	}
	return got
}

func describe(evs []*schemas.NetworkEvent) string {
	var sb strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&sb, "\n  %s pid=%d %s %s:%d -> %s:%d sent=%d recv=%d", e.Action, e.Process.PID, e.Network.Direction,
			e.Network.Src.IP, e.Network.Src.Port, e.Network.Dst.IP, e.Network.Dst.Port, e.Network.BytesSent, e.Network.BytesReceived)
	}
	return sb.String()
}

// heldConn is a loopback TCP connection between a tcp-server and a tcp-client-hold helper,
// which exchanged their bytes and stay connected until end.
type heldConn struct {
	t              *testing.T
	server, client *exec.Cmd
	stdin          io.Closer
}

// holdConnection opens a held connection whose client sends clientSends bytes and whose
// server sends serverSends, and returns once both were exchanged.
func holdConnection(t *testing.T, clientSends, serverSends int) *heldConn {
	t.Helper()
	server, out := startHelper(t, "tcp-server", fmt.Sprintf("127.0.0.1:0,%d,%d", clientSends, serverSends))
	line, err := out.ReadString('\n')
	if err != nil {
		t.Fatalf("read the server's port: %v", err)
	}
	client, pipes := startHelperStdin(t, "tcp-client-hold", fmt.Sprintf("127.0.0.1:%s,%d,%d", strings.TrimSpace(line), clientSends, serverSends))
	if _, err := pipes.out.ReadString('\n'); err != nil {
		t.Fatalf("wait for the exchange: %v", err)
	}
	return &heldConn{t: t, server: server, client: client, stdin: pipes.stdin}
}

func (h *heldConn) clientPID() int32 { return int32(h.client.Process.Pid) }
func (h *heldConn) serverPID() int32 { return int32(h.server.Process.Pid) }

// end closes the connection and waits for both helpers to exit.
func (h *heldConn) end() {
	h.t.Helper()
	h.stdin.Close()
	if err := h.client.Wait(); err != nil {
		h.t.Fatalf("client: %v", err)
	}
	if err := h.server.Wait(); err != nil {
		h.t.Fatalf("server: %v", err)
	}
}
