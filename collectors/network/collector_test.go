package network

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/collectors/internal/kernel"
	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/schemas"
)

// connSummary is what TestTCPConnectionLifecycle checks of a connection event.
type connSummary struct {
	Action, Direction, Protocol string
	PID                         int32
	IPVersion                   int32
	Src, Dst                    schemas.Endpoint
	BytesSent, BytesReceived    int64
}

func summarize(e *schemas.NetworkEvent) connSummary {
	return connSummary{
		Action: e.Action, Direction: e.Network.Direction, Protocol: e.Network.Protocol,
		PID: e.Process.PID, IPVersion: e.Network.IPVersion, Src: e.Network.Src, Dst: e.Network.Dst,
		BytesSent: e.Network.BytesSent, BytesReceived: e.Network.BytesReceived,
	}
}

// TestTCPConnectionLifecycle: a loopback server and client exchange a known number of bytes
// and close. With the default coalesce window each side's connection is one event, connect or
// accept, carrying the byte counts; with the window off, each side gets its connect or accept
// when it opens and a close with the byte counts.
func TestTCPConnectionLifecycle(t *testing.T) {
	testenv.RequireBPF(t)
	for _, mode := range []struct {
		name   string
		window time.Duration
	}{{"coalesced", DefaultConfig().CoalesceWindow}, {"every transition", 0}} {
		t.Run(mode.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.CoalesceWindow = mode.window
			_, events := runCollector(t, cfg)
			testLifecycle(t, events, mode.window > 0)
		})
	}
}

func testLifecycle(t *testing.T, events <-chan *schemas.NetworkEvent, coalesced bool) {
	tests := []struct {
		name      string
		listen    string
		ip        string
		ipVersion int32
	}{
		{name: "ipv4", listen: "127.0.0.1:0", ip: "127.0.0.1", ipVersion: 4},
		{name: "ipv6", listen: "[::1]:0", ip: "::1", ipVersion: 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const clientSends, serverSends = 100_000, 7_777
			server, out := startHelper(t, "tcp-server", fmt.Sprintf("%s,%d,%d", tt.listen, clientSends, serverSends))
			line, err := out.ReadString('\n')
			if err != nil {
				t.Fatalf("read the server's port: %v", err)
			}
			port, _ := strconv.Atoi(strings.TrimSpace(line))
			addr := net.JoinHostPort(tt.ip, strconv.Itoa(port))
			clientPID := runHelperToEnd(t, "tcp-client", fmt.Sprintf("%s,%d,%d", addr, clientSends, serverSends))
			if err := server.Wait(); err != nil {
				t.Fatalf("server: %v", err)
			}
			serverPID := int32(server.Process.Pid)

			pids := map[int32]bool{int32(clientPID): true, serverPID: true}
			what, done := "connect, accept, two closes and a listen", func(got []*schemas.NetworkEvent) bool {
				closes := 0
				for _, e := range got {
					if e.Action == schemas.ActionClose {
						closes++
					}
				}
				return closes == 2
			}
			if coalesced {
				what, done = "connect and accept with their bytes, and a listen", func(got []*schemas.NetworkEvent) bool {
					n := 0
					for _, e := range got {
						if e.Action == schemas.ActionConnect || e.Action == schemas.ActionAccept {
							n++
						}
					}
					return n == 2
				}
			}
			got := collect(t, events, what, func(e *schemas.NetworkEvent) bool { return pids[e.Process.PID] }, done)

			var clientPort int32
			for _, e := range got {
				if e.Action == schemas.ActionConnect {
					clientPort = e.Network.Src.Port
				}
			}
			client := schemas.Endpoint{IP: tt.ip, Port: clientPort}
			srv := schemas.Endpoint{IP: tt.ip, Port: int32(port)}
			want := map[string]connSummary{
				"listen": {Action: "listen", Direction: "none", Protocol: "tcp", PID: serverPID, IPVersion: tt.ipVersion,
					Dst: srv},
				"connect": {Action: "connect", Direction: "outbound", Protocol: "tcp", PID: int32(clientPID), IPVersion: tt.ipVersion,
					Src: client, Dst: srv},
				"accept": {Action: "accept", Direction: "inbound", Protocol: "tcp", PID: serverPID, IPVersion: tt.ipVersion,
					Src: client, Dst: srv},
				"close outbound": {Action: "close", Direction: "outbound", Protocol: "tcp", PID: int32(clientPID), IPVersion: tt.ipVersion,
					Src: client, Dst: srv, BytesSent: clientSends, BytesReceived: serverSends},
				"close inbound": {Action: "close", Direction: "inbound", Protocol: "tcp", PID: serverPID, IPVersion: tt.ipVersion,
					Src: client, Dst: srv, BytesSent: serverSends, BytesReceived: clientSends},
			}
			if coalesced {
				for key, close := range map[string]string{"connect": "close outbound", "accept": "close inbound"} {
					w := want[close]
					w.Action = key
					want[key] = w
					delete(want, close)
				}
			}
			gotByKey := make(map[string]connSummary)
			for _, e := range got {
				key := e.Action
				if key == schemas.ActionClose {
					key += " " + e.Network.Direction
				}
				if _, dup := gotByKey[key]; dup {
					t.Errorf("second %s event: %s", key, describe([]*schemas.NetworkEvent{e}))
				}
				gotByKey[key] = summarize(e)
				if coalesced && (key == "connect" || key == "accept") && e.Network.DurationNs <= 0 {
					t.Errorf("%s event of a closed connection without its duration", key)
				}
			}
			if diff := cmp.Diff(want, gotByKey); diff != "" {
				t.Errorf("connection events (-want +got):\n%s", diff)
			}
		})
	}
}

// iteratorModes are the values of iterators, each forcing one way of the two iterator jobs
// (auto: the first the kernel allows). Where the kernel refuses the iterator a mode names,
// the collector walks the connection map instead.
var iteratorModes = []string{IteratorsAuto, IteratorsMapElem, IteratorsTCP, IteratorsOff}

// checkIteratorWays checks the ways the collector took for its iterator jobs under mode:
// auto takes the first way the kernel does not refuse; the other modes take the iterator
// they name (announcing has no tcp iterator: the walk), or, where the kernel refuses it
// (its refusal not by configuration), the walk.
// It returns the way of the byte refresh.
func checkIteratorWays(t *testing.T, c *Collector, mode string) string {
	t.Helper()
	waysOf := map[string][]string{
		FeatureRefresh:  {WayMapElem, WayTCPIter, WayWalk},
		FeatureAnnounce: {WayMapElem, WayWalk}, // announcing needs no socket: no tcp iterator
	}
	for _, f := range c.Report().Features {
		ways, ok := waysOf[f.Feature]
		if !ok {
			continue
		}
		tcp := WayTCPIter
		if !slices.Contains(ways, tcp) {
			tcp = WayWalk
		}
		forced := map[string]string{IteratorsMapElem: WayMapElem, IteratorsTCP: tcp, IteratorsOff: WayWalk}
		t.Logf("iterators: %s: %s by %s (refused: %+v)", mode, f.Feature, f.Way, f.Refused)
		byConfig := slices.ContainsFunc(f.Refused, func(r kernel.Refusal) bool { return r.ByConfig })
		byKernel := slices.ContainsFunc(f.Refused, func(r kernel.Refusal) bool { return !r.ByConfig })
		switch want, ok := forced[mode]; {
		case !ok && (f.Way != ways[len(f.Refused)] || byConfig):
			t.Errorf("%s under iterators: auto: way %q after refusals %+v, want the first the kernel allows", f.Feature, f.Way, f.Refused)
		case ok && f.Way != want && (f.Way != WayWalk || !byKernel):
			t.Errorf("%s under iterators: %s: way %q after refusals %+v, want %q or, where the kernel refuses it, the walk", f.Feature, mode, f.Way, f.Refused, want)
		}
	}
	return c.ring.Way(FeatureRefresh)
}

// TestLongConnectionUpdates: a connection open longer than the coalesce window is reported
// by its connect while open, then by updates carrying its bytes so far; with every way of
// the iterator jobs. The walk of the connection map cannot read bytes: its updates carry
// none, and the bytes come with the close.
func TestLongConnectionUpdates(t *testing.T) {
	testenv.RequireBPF(t)
	for _, mode := range iteratorModes {
		t.Run("iterators="+mode, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.UpdateInterval = time.Second
			cfg.Iterators = mode
			c, events := runCollector(t, cfg)
			refreshWay := checkIteratorWays(t, c, mode)
			const clientSends, serverSends = 4_096, 1_000
			conn := holdConnection(t, clientSends, serverSends)
			pid := conn.clientPID()
			// Open longer than the coalesce window: its connect is reported while it is open,
			// then its updates.
			got := collect(t, events, "the connect and an update of the open connection",
				func(e *schemas.NetworkEvent) bool {
					return e.Process.PID == pid && (e.Action == schemas.ActionUpdate || e.Action == schemas.ActionConnect)
				},
				func(evs []*schemas.NetworkEvent) bool {
					return len(evs) > 0 && evs[len(evs)-1].Action == schemas.ActionUpdate
				})
			if got[0].Action != schemas.ActionConnect || got[0].Network.DurationNs != 0 {
				t.Errorf("first event of the open connection: %s (duration %d), want its connect, not yet closed", got[0].Action, got[0].Network.DurationNs)
			}
			update := got[len(got)-1]
			type bytes struct{ Sent, Received int64 }
			want := bytes{clientSends, serverSends}
			if refreshWay == WayWalk {
				want = bytes{} // lost until the close
			}
			if diff := cmp.Diff(want, bytes{update.Network.BytesSent, update.Network.BytesReceived}); diff != "" {
				t.Errorf("update bytes by the %s (-want +got):\n%s", refreshWay, diff)
			}
			if update.Network.Direction != "outbound" || update.Network.DurationNs <= 0 {
				t.Errorf("update: want an outbound connection with a duration, got %s duration %d", update.Network.Direction, update.Network.DurationNs)
			}
			// The cgroup's totals include this connection (and whatever else its cgroup runs).
			cg := c.Stats().Cgroups[uint64(update.Process.CgroupID)]
			if cg.Connections < 2 || refreshWay != WayWalk && (cg.BytesSent < clientSends+serverSends || cg.BytesReceived < clientSends+serverSends) {
				t.Errorf("cgroup %d totals %+v: want at least both ends of the connection open and their bytes", update.Process.CgroupID, cg)
			}
			conn.end()
			closed := collect(t, events, "the close of the connection",
				func(e *schemas.NetworkEvent) bool { return e.Process.PID == pid && e.Action == schemas.ActionClose },
				func(evs []*schemas.NetworkEvent) bool { return len(evs) > 0 })
			if diff := cmp.Diff(bytes{clientSends, serverSends}, bytes{closed[0].Network.BytesSent, closed[0].Network.BytesReceived}); diff != "" {
				t.Errorf("close bytes (-want +got):\n%s", diff)
			}
		})
	}
}

// TestOpenConnectionsReportedAtStop: a connection still within the coalesce window when the
// collector stops is reported by its connect and accept before Run returns, the same events
// whichever way announces it.
func TestOpenConnectionsReportedAtStop(t *testing.T) {
	testenv.RequireBPF(t)
	for _, mode := range iteratorModes {
		t.Run("iterators="+mode, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.CoalesceWindow = 30 * time.Second
			cfg.Iterators = mode
			c, err := New(cfg, testHost, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			checkIteratorWays(t, c, mode)
			var (
				mu  sync.Mutex
				got []*schemas.NetworkEvent
			)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			runErr := make(chan error, 1)
			go func() {
				runErr <- keepEvents(c.Run)(ctx, func(e *schemas.NetworkEvent) {
					mu.Lock()
					got = append(got, e)
					mu.Unlock()
				})
			}()

			conn := holdConnection(t, 10, 20)
			cancel()
			if err := <-runErr; err != nil {
				t.Fatalf("Run: %v", err)
			}
			client, server := conn.clientPID(), conn.serverPID()
			mu.Lock()
			gotByAction := make(map[string]connSummary)
			var serverPort int32
			for _, e := range got {
				if (e.Process.PID == client || e.Process.PID == server) && e.Action != schemas.ActionListen {
					if _, dup := gotByAction[e.Action]; dup {
						t.Errorf("second %s: %s", e.Action, describe([]*schemas.NetworkEvent{e}))
					}
					gotByAction[e.Action] = summarize(e)
					if e.Network.DurationNs != 0 {
						t.Errorf("%s of a connection still open has duration %d", e.Action, e.Network.DurationNs)
					}
					serverPort = e.Network.Dst.Port
				}
			}
			mu.Unlock()
			clientEnd := schemas.Endpoint{IP: "127.0.0.1", Port: gotByAction[schemas.ActionConnect].Src.Port}
			serverEnd := schemas.Endpoint{IP: "127.0.0.1", Port: serverPort}
			want := map[string]connSummary{
				schemas.ActionConnect: {Action: "connect", Direction: "outbound", Protocol: "tcp", PID: client, IPVersion: 4, Src: clientEnd, Dst: serverEnd},
				schemas.ActionAccept:  {Action: "accept", Direction: "inbound", Protocol: "tcp", PID: server, IPVersion: 4, Src: clientEnd, Dst: serverEnd},
			}
			if diff := cmp.Diff(want, gotByAction); diff != "" {
				t.Errorf("events of the open connection at stop (-want +got):\n%s", diff)
			}
			conn.end()
		})
	}
}

// TestMissedCloseReported: a connection whose close the kernel programs did not see (here,
// because the collector was paused) is reported, marked stale, once a new socket takes its
// memory, and counted in ClosesMissed; it is not lost under the new connection.
func TestMissedCloseReported(t *testing.T) {
	testenv.RequireBPF(t)
	c, events := runCollector(t, DefaultConfig())
	conn := holdConnection(t, 10, 20)
	pid := conn.clientPID()
	c.Pause()
	conn.end()
	if err := c.Resume(); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	// New sockets take the closed ones' memory: the allocator hands out what was freed last.
	storms := make(chan error, 1)
	go func() {
		for i := 0; i < 10 && c.Stats().ClosesMissed == 0; i++ {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "--", "2000,1")
			cmd.Env = append(cmd.Environ(), helperEnv+"=tcp-storm")
			if b, err := cmd.CombinedOutput(); err != nil {
				storms <- fmt.Errorf("storm: %v\n%s", err, b)
				return
			}
		}
		storms <- nil
	}()
	got := collect(t, events, "the end of the connection whose close was missed",
		func(e *schemas.NetworkEvent) bool { return e.Process.PID == pid },
		func(evs []*schemas.NetworkEvent) bool {
			return slices.ContainsFunc(evs, func(e *schemas.NetworkEvent) bool {
				return e.Action == schemas.ActionClose || e.Network.DurationNs > 0
			})
		})
	if err := <-storms; err != nil {
		t.Fatal(err)
	}
	if n := c.Stats().ClosesMissed; n == 0 {
		t.Errorf("ClosesMissed = 0 after the end of %s was reported", describe(got))
	}
}

// connTally adds up the connections one process's events report in one direction, and
// their bytes: each summary counts as as many connections as it sums, a connect or accept
// with a duration (closed within the coalesce window) as one, and a close as one (its
// connection was reported open first). Opens counts the connect and accept events,
// Summaries the summary events.
type connTally struct {
	Connections, Sent, Received int64
	Opens, Summaries            int64
}

func (c *connTally) add(e *schemas.NetworkEvent) {
	n := e.Network
	switch {
	case e.Action == schemas.ActionConnectSummary || e.Action == schemas.ActionAcceptSummary:
		c.Connections += n.Packets
		c.Summaries++
	case e.Action == schemas.ActionConnect || e.Action == schemas.ActionAccept:
		c.Opens++
		if n.DurationNs <= 0 {
			return // still open: its close counts it
		}
		c.Connections++
	case e.Action == schemas.ActionClose:
		c.Connections++
	default:
		return
	}
	c.Sent += n.BytesSent
	c.Received += n.BytesReceived
}

// TestSummarize: a process makes a storm of short connections to itself, with known bytes
// each way, while another connection is held open past the coalesce window.
//
// Without summarize (the default), every connection of the storm is reported by its own
// connect and accept, and there is no summary. With summarize, the storm is reported by
// connect_summary and accept_summary events, fewer than the connections they sum, one
// destination each way (the server's port; the ephemeral port is 0). Either way the
// connections and bytes reported add up exactly to the storm's (a connection the kernel could
// not sum, or that outlived the window on a slow host, counts from its own events), and the
// held connection keeps its own connect and accept while open and its closes with their
// bytes.
func TestSummarize(t *testing.T) {
	testenv.RequireBPF(t)
	for _, mode := range []struct {
		name      string
		summarize bool
	}{{"one event per connection", false}, {"summarize", true}} {
		t.Run(mode.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Summarize = mode.summarize
			cfg.SummaryInterval = time.Second
			c, events := runCollector(t, cfg)
			testStorm(t, c, events, mode.summarize)
		})
	}
}

func testStorm(t *testing.T, c *Collector, events <-chan *schemas.NetworkEvent, summarized bool) {
	const storm, clientSends, serverSends = 500, 300, 2_000
	held := holdConnection(t, 10, 20)
	stormPID := int32(runHelperToEnd(t, "tcp-storm-bytes", fmt.Sprintf("%d,%d,%d", storm, clientSends, serverSends)))
	heldPIDs := map[int32]bool{held.clientPID(): true, held.serverPID(): true}
	var out, in connTally
	reached := map[string]map[schemas.Endpoint]bool{} // per summary action: the endpoints reached
	heldEvents := map[string]connSummary{}
	ended, counted := false, 0
	collect(t, events, "the storm's connections, and the held connection's connect, accept and closes",
		func(e *schemas.NetworkEvent) bool { return e.Process.PID == stormPID || heldPIDs[e.Process.PID] },
		func(got []*schemas.NetworkEvent) bool {
			for _, e := range got[counted:] {
				switch {
				case e.Process.PID == stormPID && e.Network.Direction == "outbound":
					out.add(e)
				case e.Process.PID == stormPID && e.Network.Direction == "inbound":
					in.add(e)
				case e.Action != schemas.ActionListen:
					key := e.Action
					if key == schemas.ActionClose {
						key += " " + e.Network.Direction
					}
					if _, dup := heldEvents[key]; dup {
						t.Errorf("second %s of the held connection: %s", key, describe([]*schemas.NetworkEvent{e}))
					}
					heldEvents[key] = summarize(e)
				}
				if e.Action == schemas.ActionConnectSummary || e.Action == schemas.ActionAcceptSummary {
					if reached[e.Action] == nil {
						reached[e.Action] = map[schemas.Endpoint]bool{}
					}
					reached[e.Action][e.Network.Dst] = true
					if e.Network.Src.Port != 0 {
						t.Errorf("%s with the ephemeral port %d", e.Action, e.Network.Src.Port)
					}
				}
			}
			counted = len(got)
			_, connected := heldEvents[schemas.ActionConnect]
			_, accepted := heldEvents[schemas.ActionAccept]
			if connected && accepted && !ended {
				held.end() // announced while open: its closes come next
				ended = true
			}
			return out.Connections >= storm && in.Connections >= storm && len(heldEvents) == 4
		})

	type reported struct{ Connections, Sent, Received int64 }
	want := map[string]reported{
		"outbound": {Connections: storm, Sent: storm * clientSends, Received: storm * serverSends},
		"inbound":  {Connections: storm, Sent: storm * serverSends, Received: storm * clientSends},
	}
	got := map[string]reported{
		"outbound": {out.Connections, out.Sent, out.Received},
		"inbound":  {in.Connections, in.Sent, in.Received},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the storm's connections as reported (-want +got):\n%s", diff)
	}
	t.Logf("outbound: %+v; inbound: %+v", out, in)
	if !summarized {
		// One connect and one accept per connection, nothing summed.
		if out.Opens != storm || in.Opens != storm || out.Summaries+in.Summaries != 0 || c.Stats().Summaries != 0 {
			t.Errorf("without summarize: %d connects, %d accepts and %d summaries, want %d, %d and none",
				out.Opens, in.Opens, out.Summaries+in.Summaries, storm, storm)
		}
	} else {
		for _, tally := range []connTally{out, in} {
			// Summed: fewer summaries than the connections they sum, and connects or accepts
			// only for the few connections the kernel could not sum.
			if summed := tally.Connections - tally.Opens; tally.Summaries == 0 || tally.Summaries >= summed {
				t.Errorf("with summarize: %d summaries for %d connections summed", tally.Summaries, summed)
			}
		}
		// One destination each way: the server's port, reached from the storm's ephemeral ports.
		for _, action := range []string{schemas.ActionConnectSummary, schemas.ActionAcceptSummary} {
			if len(reached[action]) != 1 {
				t.Errorf("%s events reached %d endpoints, want 1: %v", action, len(reached[action]), reached[action])
			}
		}
		if st := c.Stats(); st.Summarized < uint64(out.Connections-out.Opens+in.Connections-in.Opens) {
			t.Errorf("Stats: %d connections summed, fewer than the storm's events sum", st.Summarized)
		}
	}

	serverPort := heldEvents[schemas.ActionAccept].Dst.Port
	client := schemas.Endpoint{IP: "127.0.0.1", Port: heldEvents[schemas.ActionConnect].Src.Port}
	srv := schemas.Endpoint{IP: "127.0.0.1", Port: serverPort}
	wantHeld := map[string]connSummary{
		"connect": {Action: "connect", Direction: "outbound", Protocol: "tcp", PID: held.clientPID(), IPVersion: 4, Src: client, Dst: srv},
		"accept":  {Action: "accept", Direction: "inbound", Protocol: "tcp", PID: held.serverPID(), IPVersion: 4, Src: client, Dst: srv},
		"close outbound": {Action: "close", Direction: "outbound", Protocol: "tcp", PID: held.clientPID(), IPVersion: 4,
			Src: client, Dst: srv, BytesSent: 10, BytesReceived: 20},
		"close inbound": {Action: "close", Direction: "inbound", Protocol: "tcp", PID: held.serverPID(), IPVersion: 4,
			Src: client, Dst: srv, BytesSent: 20, BytesReceived: 10},
	}
	if diff := cmp.Diff(wantHeld, heldEvents); diff != "" {
		t.Errorf("the held connection's events (-want +got):\n%s", diff)
	}
}

// TestSummariesReportedAtStop: short connections summed in the kernel and not yet reported
// when the collector stops (the summary interval an hour away) are reported by their
// summaries before Run returns: stopping loses none of them.
func TestSummariesReportedAtStop(t *testing.T) {
	testenv.RequireBPF(t)
	cfg := DefaultConfig()
	cfg.Summarize = true
	cfg.SummaryInterval = time.Hour
	cfg.CoalesceWindow = 30 * time.Second // every connection of the storm is a short one
	c, err := New(cfg, testHost, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	const storm, clientSends, serverSends = 200, 30, 50
	// The programs are attached from New on: the storm is summed before Run starts.
	stormPID := uint32(runHelperToEnd(t, "tcp-storm-bytes", fmt.Sprintf("%d,%d,%d", storm, clientSends, serverSends)))
	summed := func() (n uint64) {
		var key networkTcpSummaryKey
		var sum networkTcpSummary
		it := c.summaries[c.summaryCur].Iterate()
		for it.Next(&key, &sum) {
			if key.Pid == stormPID {
				n += sum.Connections
			}
		}
		return n
	}
	for limit := time.Now().Add(waitLimit); summed() < 2*storm; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(limit) {
			t.Fatalf("the kernel summed %d of the storm's %d connections within %v", summed(), 2*storm, waitLimit)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	var out, in connTally
	runErr := make(chan error, 1)
	go func() {
		runErr <- c.Run(ctx, func(e *schemas.NetworkEvent) {
			if e.Process.PID != int32(stormPID) {
				return
			}
			if e.Network.Direction == "outbound" {
				out.add(e)
			} else {
				in.add(e)
			}
		})
	}()
	cancel()
	if err := <-runErr; err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := []connTally{
		{Connections: storm, Sent: storm * clientSends, Received: storm * serverSends, Summaries: 1},
		{Connections: storm, Sent: storm * serverSends, Received: storm * clientSends, Summaries: 1},
	}
	if diff := cmp.Diff(want, []connTally{out, in}); diff != "" {
		t.Errorf("the storm's summaries at stop, outbound and inbound (-want +got):\n%s", diff)
	}
}
