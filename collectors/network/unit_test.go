package network

import (
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/threatcrumbs/crumbs/schemas"
)

func TestParseDNSResponse(t *testing.T) {
	query := dnsQuery("www.Example.com")
	v4 := netip.MustParseAddr("93.184.215.14")
	v6 := netip.MustParseAddr("2606:2800:21f:cb07:6820:80da:af6b:8b2c")
	other := netip.MustParseAddr("10.9.9.9")
	cnameThenA := dnsResponseFor(query,
		dnsRecord{typ: dnsTypeCNAME, target: "edge.example.net"},
		dnsRecord{typ: dnsTypeA, addr: v4})
	tests := []struct {
		name    string
		payload []byte
		want    dnsResponse
		wantErr bool
	}{
		{
			name:    "A and AAAA",
			payload: dnsResponseFor(query, dnsRecord{typ: dnsTypeA, addr: v4}, dnsRecord{typ: dnsTypeAAAA, addr: v6}),
			want:    dnsResponse{Name: "www.example.com", Addrs: []netip.Addr{v4, v6}},
		},
		{
			name:    "CNAME chain",
			payload: cnameThenA,
			want:    dnsResponse{Name: "www.example.com", Addrs: []netip.Addr{v4}},
		},
		{
			name:    "cut inside the second answer",
			payload: dnsResponseFor(query, dnsRecord{typ: dnsTypeA, addr: v4}, dnsRecord{typ: dnsTypeA, addr: other})[:len(query)+16+10],
			want:    dnsResponse{Name: "www.example.com", Addrs: []netip.Addr{v4}, Truncated: true},
		},
		{
			name:    "no answers",
			payload: dnsResponseFor(query),
			want:    dnsResponse{Name: "www.example.com"},
		},
		{name: "a query, not a response", payload: query, wantErr: true},
		{name: "short header", payload: query[:5], wantErr: true},
		{name: "pointer loop", payload: pointerLoop(), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDNSResponse(tt.payload)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseDNSResponse error: want error %v, got %v", tt.wantErr, err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
				t.Errorf("parseDNSResponse (-want +got):\n%s", diff)
			}
		})
	}
}

// pointerLoop is a response whose question name points at itself.
func pointerLoop() []byte {
	b := dnsResponseFor(dnsQuery("a"))
	b[12], b[13] = 0xc0, 12
	return b
}

func FuzzParseDNSResponse(f *testing.F) {
	q := dnsQuery("svc.example.org")
	f.Add(q)
	f.Add(dnsResponseFor(q, dnsRecord{typ: dnsTypeCNAME, target: "x.example.org"}, dnsRecord{typ: dnsTypeA, addr: netip.MustParseAddr("10.0.0.1")}))
	f.Add(pointerLoop())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseDNSResponse(b)
		if err == nil && len(r.Name) > 255 {
			t.Errorf("name of %d bytes", len(r.Name))
		}
	})
}

func TestHostnames(t *testing.T) {
	at := time.Unix(1_700_000_000, 0)
	a := netip.MustParseAddr("10.0.0.1")
	b := netip.MustParseAddr("10.0.0.2")
	c := netip.MustParseAddr("10.0.0.3")
	mapped := netip.MustParseAddr("::ffff:10.0.0.1")
	tests := []struct {
		name   string
		puts   func(h *hostnames)
		lookup netip.Addr
		now    time.Time
		want   string
	}{
		{name: "known", puts: func(h *hostnames) { h.put(a, "one", at) }, lookup: a, now: at, want: "one"},
		{name: "v4-mapped finds v4", puts: func(h *hostnames) { h.put(a, "one", at) }, lookup: mapped, now: at, want: "one"},
		{name: "latest answer wins", puts: func(h *hostnames) { h.put(a, "one", at); h.put(a, "uno", at) }, lookup: a, now: at, want: "uno"},
		{name: "too old", puts: func(h *hostnames) { h.put(a, "one", at) }, lookup: a, now: at.Add(2 * time.Hour), want: ""},
		{name: "oldest evicted", puts: func(h *hostnames) { h.put(a, "one", at); h.put(b, "two", at); h.put(c, "three", at) }, lookup: a, now: at, want: ""},
		{
			name: "re-answered survives its first mark",
			puts: func(h *hostnames) {
				h.put(a, "one", at)
				h.put(b, "two", at)
				h.put(a, "one", at)
				h.put(c, "three", at)
			},
			lookup: a, now: at, want: "one",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHostnames(2, time.Hour)
			tt.puts(h)
			if got := h.lookup(tt.lookup, tt.now); got != tt.want {
				t.Errorf("lookup(%s): want %q, got %q", tt.lookup, tt.want, got)
			}
			if len(h.names) > h.max || len(h.order) > 2*h.max {
				t.Errorf("cache holds %d names and %d marks, max %d", len(h.names), len(h.order), h.max)
			}
		})
	}
}

func TestEventFilter(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ExcludePorts = []int{22}
	cfg.ExcludeExecutables = []string{"/usr/sbin/*"}
	cfg.ExcludeUsers = []string{"backup", "1001"}
	f := newEventFilter(cfg)
	ev := func(path, user string, uid int64, src, dst int32) *schemas.NetworkEvent {
		return &schemas.NetworkEvent{
			Process: schemas.Actor{File: schemas.File{Path: path}, User: schemas.User{UID: uid, Name: user}},
			Network: schemas.Network{Src: schemas.Endpoint{Port: src}, Dst: schemas.Endpoint{Port: dst}},
		}
	}
	tests := []struct {
		name string
		ev   *schemas.NetworkEvent
		want bool
	}{
		{name: "kept", ev: ev("/usr/bin/curl", "alice", 1000, 40000, 443), want: false},
		{name: "remote port", ev: ev("/usr/bin/ssh", "alice", 1000, 40000, 22), want: true},
		{name: "local port", ev: ev("/usr/bin/curl", "alice", 1000, 22, 443), want: true},
		{name: "executable glob", ev: ev("/usr/sbin/chronyd", "alice", 1000, 40000, 123), want: true},
		{name: "glob does not cross directories", ev: ev("/usr/sbin/x/y", "alice", 1000, 40000, 123), want: false},
		{name: "user name", ev: ev("/usr/bin/rsync", "backup", 34, 40000, 873), want: true},
		{name: "uid", ev: ev("/usr/bin/rsync", "", 1001, 40000, 873), want: true},
		{name: "gone process has no path", ev: ev("", "alice", 1000, 40000, 443), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := f.excludes(tt.ev); got != tt.want {
				t.Errorf("excludes: want %v, got %v", tt.want, got)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		modify  func(*Config)
		wantMsg string // "" = valid
	}{
		{name: "defaults", modify: func(*Config) {}},
		{name: "ring not power of two", modify: func(c *Config) { c.RingBufferBytes = 3 << 20 }, wantMsg: "collectors.network.ring_buffer_bytes: 3145728:"},
		{name: "udp interval", modify: func(c *Config) { c.UDPFlowInterval = 0 }, wantMsg: "collectors.network.udp_flow_interval: 0s: must be at least 1s"},
		{name: "update interval", modify: func(c *Config) { c.UpdateInterval = time.Millisecond }, wantMsg: "collectors.network.update_interval: 1ms: must be at least 1s"},
		{name: "port", modify: func(c *Config) { c.ExcludePorts = []int{0} }, wantMsg: "collectors.network.exclude_ports: 0:"},
		{name: "glob", modify: func(c *Config) { c.ExcludeExecutables = []string{"/usr/[bin"} }, wantMsg: "collectors.network.exclude_executables: /usr/[bin:"},
		{name: "user", modify: func(c *Config) { c.ExcludeUsers = []string{""} }, wantMsg: "collectors.network.exclude_users:"},
		{name: "max connections", modify: func(c *Config) { c.MaxConnections = 1 }, wantMsg: "collectors.network.max_connections: 1:"},
		{name: "summarize", modify: func(c *Config) { c.Summarize = true }},
		{name: "summarize without a window", modify: func(c *Config) { c.Summarize, c.CoalesceWindow = true, 0 }, wantMsg: "collectors.network.summarize: true: needs coalesce_window above 0"},
		{name: "summary interval", modify: func(c *Config) { c.SummaryInterval = 100 * time.Millisecond }, wantMsg: "collectors.network.summary_interval: 100ms: must be at least 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.modify(&cfg)
			err := cfg.Validate()
			switch {
			case tt.wantMsg == "" && err != nil:
				t.Errorf("Validate: want nil, got %v", err)
			case tt.wantMsg != "" && (err == nil || !strings.Contains(err.Error(), tt.wantMsg)):
				t.Errorf("Validate: want an error containing %q, got %v", tt.wantMsg, err)
			}
		})
	}
}

// TestSummaryEvent checks the event of a kernel summary of short connections: the service
// port on the side that was reached, the other side's port 0, the count in packets, the
// bytes, the time of the first connection and the span to the last one's close.
func TestSummaryEvent(t *testing.T) {
	c := newCollector(DefaultConfig(), testHost, slog.New(slog.DiscardHandler))
	c.procs = newProcCache("/nonexistent/proc", 16, time.Second) // the record's comm only
	c.bootOffset = 1_000_000_000_000
	local, remote := [16]uint8{10, 0, 0, 1}, [16]uint8{10, 0, 0, 2}
	comm := [16]int8{'c', 'u', 'r', 'l'}
	sum := networkTcpSummary{FirstNs: 5_000, LastNs: 9_000, CgroupId: 7, Connections: 3, BytesSent: 300, BytesReceived: 30,
		Uid: 1000, LocalAddr: local, Comm: comm}
	type got struct {
		Action, Direction string
		Time              int64
		Src, Dst          schemas.Endpoint
		Packets, Duration int64
		Sent, Received    int64
		PID               int32
		Name              string
	}
	tests := []struct {
		name string
		key  networkTcpSummaryKey
		want got
	}{
		{
			name: "outbound",
			key:  networkTcpSummaryKey{Pid: 42, Direction: uint8(networkNetDirectionNET_DIR_OUTBOUND), Family: 2, Port: 443, Addr: remote},
			want: got{Action: schemas.ActionConnectSummary, Direction: "outbound", Time: 1_000_000_005_000,
				Src: schemas.Endpoint{IP: "10.0.0.1"}, Dst: schemas.Endpoint{IP: "10.0.0.2", Port: 443},
				Packets: 3, Duration: 4_000, Sent: 300, Received: 30, PID: 42, Name: "curl"},
		},
		{
			name: "inbound",
			key:  networkTcpSummaryKey{Pid: 42, Direction: uint8(networkNetDirectionNET_DIR_INBOUND), Family: 2, Port: 8080, Addr: remote},
			want: got{Action: schemas.ActionAcceptSummary, Direction: "inbound", Time: 1_000_000_005_000,
				Src: schemas.Endpoint{IP: "10.0.0.2"}, Dst: schemas.Endpoint{IP: "10.0.0.1", Port: 8080},
				Packets: 3, Duration: 4_000, Sent: 300, Received: 30, PID: 42, Name: "curl"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var events []got
			c.summaryEvent(&tt.key, &sum, time.Now(), func(e *schemas.NetworkEvent) {
				n := e.Network
				events = append(events, got{Action: e.Action, Direction: n.Direction, Time: e.Time, Src: n.Src, Dst: n.Dst,
					Packets: n.Packets, Duration: n.DurationNs, Sent: n.BytesSent, Received: n.BytesReceived,
					PID: e.Process.PID, Name: e.Process.File.Name})
			})
			if diff := cmp.Diff([]got{tt.want}, events); diff != "" {
				t.Errorf("summary event (-want +got):\n%s", diff)
			}
		})
	}
}
