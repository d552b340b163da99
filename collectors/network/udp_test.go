package network

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/schemas"
)

// udpEcho serves UDP on addr from the test process (which the collector leaves out),
// sending every datagram back. Cleanup stops it.
func udpEcho(t *testing.T, addr string) *net.UDPAddr {
	t.Helper()
	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("listen udp %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			conn.WriteTo(buf[:n], from)
		}
	}()
	return conn.LocalAddr().(*net.UDPAddr)
}

// flowTotals is what TestUDPFlow checks, summed over the udp_flow events of one flow.
type flowTotals struct {
	Protocol, Direction      string
	Dst                      schemas.Endpoint
	BytesSent, BytesReceived int64
	Packets                  int64
}

func TestUDPFlow(t *testing.T) {
	testenv.RequireBPF(t)
	cfg := DefaultConfig()
	cfg.UDPFlowInterval = time.Second
	_, events := runCollector(t, cfg)
	tests := []struct {
		name, role, listen string
	}{
		{name: "sendto and recvfrom ipv4", role: "udp-sendto", listen: "127.0.0.1:0"},
		{name: "connected write and read ipv4", role: "udp-connected", listen: "127.0.0.1:0"},
		{name: "sendto and recvfrom ipv6", role: "udp-sendto", listen: "[::1]:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const datagrams, size = 20, 300
			server := udpEcho(t, tt.listen)
			pid := runHelperToEnd(t, tt.role, fmt.Sprintf("%s,%d,%d", server, datagrams, size))
			ip, _ := netip.AddrFromSlice(server.IP)
			want := flowTotals{
				Protocol: "udp", Direction: "outbound",
				Dst:       schemas.Endpoint{IP: ip.Unmap().String(), Port: int32(server.Port)},
				BytesSent: datagrams * size, BytesReceived: datagrams * size, Packets: 2 * datagrams,
			}
			var got flowTotals
			collect(t, events, "udp_flow events adding up to the exchange",
				func(e *schemas.NetworkEvent) bool {
					return e.Action == schemas.ActionUDPFlow && e.Process.PID == int32(pid)
				},
				func(evs []*schemas.NetworkEvent) bool {
					got = flowTotals{}
					for _, e := range evs {
						got.Protocol, got.Dst = e.Network.Protocol, e.Network.Dst
						if got.Direction == "" {
							got.Direction = e.Network.Direction
						}
						got.BytesSent += e.Network.BytesSent
						got.BytesReceived += e.Network.BytesReceived
						got.Packets += e.Network.Packets
					}
					return got.Packets >= want.Packets
				})
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("udp flow (-want +got):\n%s", diff)
			}
		})
	}
}

// dnsServer answers every A query on addr with answer, from the test process. Cleanup
// stops it.
func dnsServer(t *testing.T, addr string, answer netip.Addr) {
	t.Helper()
	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("listen udp %s for the fake DNS server: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			conn.WriteTo(dnsResponseFor(buf[:n], dnsRecord{typ: dnsTypeA, addr: answer}), from)
		}
	}()
}

func TestDNSNamesConnections(t *testing.T) {
	testenv.RequireBPF(t)
	const name = "svc.crumbs-test.example"
	dnsAddr := "127.0.0.2:53"
	target := netip.MustParseAddr("127.0.0.3")
	dnsServer(t, dnsAddr, target)
	ln, err := net.Listen("tcp", net.JoinHostPort(target.String(), "0"))
	if err != nil {
		t.Fatalf("listen on %s: %v", target, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	_, events := runCollector(t, DefaultConfig())

	pid := runHelperToEnd(t, "dns-then-connect", dnsAddr+","+name+","+strconv.Itoa(port))
	got := collect(t, events, "two dns events and a connect",
		func(e *schemas.NetworkEvent) bool {
			return e.Process.PID == int32(pid) && (e.Action == schemas.ActionDNS || e.Action == schemas.ActionConnect)
		},
		func(evs []*schemas.NetworkEvent) bool {
			for _, e := range evs {
				if e.Action == schemas.ActionConnect {
					return true
				}
			}
			return false
		})
	type summary struct {
		Action, Protocol string
		Dst              schemas.Endpoint
		DNSAnswers       []string
	}
	want := []summary{
		{Action: "dns", Protocol: "udp", Dst: schemas.Endpoint{IP: "127.0.0.2", Port: 53, Hostname: name}, DNSAnswers: []string{target.String()}},
		{Action: "dns", Protocol: "udp", Dst: schemas.Endpoint{IP: "127.0.0.2", Port: 53, Hostname: name}, DNSAnswers: []string{target.String()}},
		{Action: "connect", Protocol: "tcp", Dst: schemas.Endpoint{IP: target.String(), Port: int32(port), Hostname: name}},
	}
	var gotSum []summary
	for _, e := range got {
		gotSum = append(gotSum, summary{Action: e.Action, Protocol: e.Network.Protocol, Dst: e.Network.Dst, DNSAnswers: e.Network.DNSAnswers})
	}
	if diff := cmp.Diff(want, gotSum); diff != "" {
		t.Errorf("dns and connect events (-want +got):\n%s", diff)
	}
}
