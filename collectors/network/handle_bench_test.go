package network

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/threatcrumbs/crumbs/schemas"
)

// BenchmarkHandleShortConnection measures the user-space work for one record of a
// connection that closed within the coalesce window (the bulk of a connect storm): decoding
// it and building its event, the process details cached.
func BenchmarkHandleShortConnection(b *testing.B) {
	c := newCollector(DefaultConfig(), testHost, slog.New(slog.DiscardHandler))
	rec := networkConnEvent{
		Kind: uint32(networkNetEventKindNET_EVENT_CONNECT), Pid: uint32(os.Getpid()), KtimeNs: 2e9, StartNs: 1e9,
		SockId: 0xffff8880, CgroupId: 1, BytesSent: 100, BytesReceived: 200, Uid: 0,
		Direction: uint8(networkNetDirectionNET_DIR_OUTBOUND), Closed: 1,
	}
	rec.T.Family = 2
	rec.T.Saddr = [16]uint8{127, 0, 0, 1}
	rec.T.Daddr = [16]uint8{127, 0, 0, 1}
	rec.T.Sport, rec.T.Dport = 40000, 8080
	copy(rec.Comm[:], []int8{'c', 'u', 'r', 'l'})
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, &rec); err != nil {
		b.Fatal(err)
	}
	raw := buf.Bytes()
	var n int
	emit := func(*schemas.NetworkEvent) { n++ }
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		c.handle(raw, now, emit)
	}
	if n != b.N {
		b.Fatalf("%d events for %d records", n, b.N)
	}
}
