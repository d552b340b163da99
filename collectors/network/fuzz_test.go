package network

import (
	"encoding/binary"
	"log/slog"
	"testing"
	"time"

	"github.com/threatcrumbs/crumbs/schemas"
)

// FuzzHandleRecord feeds arbitrary ring-buffer records (connections, listens, closes, DNS
// answers) to the network collector's user-space side, built without the kernel: a bad
// record is counted, never a panic, and every event it emits has an action.
func FuzzHandleRecord(f *testing.F) {
	add := func(v any, payload []byte) {
		b, err := binary.Append(nil, binary.LittleEndian, v)
		if err != nil {
			f.Fatalf("encode %T: %v", v, err)
		}
		f.Add(append(b, payload...))
	}
	conn := networkConnEvent{Kind: uint32(networkNetEventKindNET_EVENT_CONNECT), Pid: 1, KtimeNs: 2e9, StartNs: 1e9, SockId: 7,
		Direction: uint8(networkNetDirectionNET_DIR_OUTBOUND), Closed: 1}
	conn.T.Family, conn.T.Saddr, conn.T.Daddr, conn.T.Sport, conn.T.Dport = 2, [16]uint8{10, 0, 0, 1}, [16]uint8{10, 0, 0, 2}, 40000, 443
	add(&conn, nil)
	conn.Kind, conn.Closed = uint32(networkNetEventKindNET_EVENT_CLOSE), 0
	add(&conn, nil)
	// A DNS answer for example.com: A 93.184.216.34.
	answer := []byte{0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0,
		7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0, 0, 1, 0, 1,
		0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 93, 184, 216, 34}
	dns := networkDnsEvent{Kind: uint32(networkNetEventKindNET_EVENT_DNS), Pid: 1, Len: uint32(len(answer)), Size: uint32(len(answer))}
	dns.T.Family, dns.T.Saddr, dns.T.Sport = 2, [16]uint8{10, 0, 0, 53}, 53
	add(&dns, answer)
	f.Add([]byte{42, 0, 0, 0})
	f.Fuzz(func(t *testing.T, raw []byte) {
		c := newCollector(DefaultConfig(), testHost, slog.New(slog.DiscardHandler))
		c.procs = newProcCache("/nonexistent/proc", 16, time.Second) // records only
		c.handle(raw, time.Now(), func(ev *schemas.NetworkEvent) {
			if ev.Action == "" {
				t.Errorf("event without an action: %+v", ev)
			}
		})
	})
}
