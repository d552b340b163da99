package network

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// DNS record types the parser reads answers of.
const (
	dnsTypeA     = 1
	dnsTypeCNAME = 5
	dnsTypeAAAA  = 28
)

// errNotResponse says a datagram from port 53 is not a DNS response.
var errNotResponse = errors.New("not a DNS response")

// dnsResponse is what a DNS response says: the name asked for and the addresses it
// resolves to (following CNAMEs within the response).
type dnsResponse struct {
	Name      string // the question's name, without the trailing dot, lower case
	Rcode     int
	Addrs     []netip.Addr
	Truncated bool // the payload ended before the last answer (cut by the kernel copy)
}

// parseDNSResponse parses a DNS response from its UDP payload, which may be cut short: the
// answers complete before the cut are kept and Truncated is set.
func parseDNSResponse(b []byte) (dnsResponse, error) {
	if len(b) < 12 {
		return dnsResponse{}, fmt.Errorf("dns header: %d bytes: %w", len(b), errNotResponse)
	}
	flags := binary.BigEndian.Uint16(b[2:])
	if flags&0x8000 == 0 {
		return dnsResponse{}, fmt.Errorf("dns header: query bit set: %w", errNotResponse)
	}
	qd, an := binary.BigEndian.Uint16(b[4:]), binary.BigEndian.Uint16(b[6:])
	if qd != 1 {
		return dnsResponse{}, fmt.Errorf("dns header: %d questions, want 1: %w", qd, errNotResponse)
	}
	r := dnsResponse{Rcode: int(flags & 0xf)}
	name, off, err := readName(b, 12)
	if err != nil {
		return dnsResponse{}, fmt.Errorf("dns question: %w", err)
	}
	if off+4 > len(b) {
		return dnsResponse{}, fmt.Errorf("dns question: cut short: %w", errNotResponse)
	}
	r.Name = name
	off += 4
	aliases := map[string]bool{name: true}
	for range an {
		var ok bool
		if off, ok = readAnswer(b, off, aliases, &r); !ok {
			r.Truncated = true
			break
		}
	}
	return r, nil
}

// readAnswer reads one resource record at off, adding its address to r when it answers
// one of the names in aliases; a CNAME adds its target to aliases. It reports false when
// the record does not fit in b.
func readAnswer(b []byte, off int, aliases map[string]bool, r *dnsResponse) (int, bool) {
	owner, off, err := readName(b, off)
	if err != nil || off+10 > len(b) {
		return off, false
	}
	typ := binary.BigEndian.Uint16(b[off:])
	rdlen := int(binary.BigEndian.Uint16(b[off+8:]))
	off += 10
	if off+rdlen > len(b) {
		return off, false
	}
	rdata := b[off : off+rdlen]
	if aliases[owner] {
		switch {
		case typ == dnsTypeA && rdlen == 4:
			r.Addrs = append(r.Addrs, netip.AddrFrom4([4]byte(rdata)))
		case typ == dnsTypeAAAA && rdlen == 16:
			r.Addrs = append(r.Addrs, netip.AddrFrom16([16]byte(rdata)))
		case typ == dnsTypeCNAME:
			if target, _, err := readName(b, off); err == nil {
				aliases[target] = true
			}
		}
	}
	return off + rdlen, true
}

// readName reads a possibly compressed domain name at off and returns it (lower case,
// without the trailing dot) and the offset after it.
func readName(b []byte, off int) (string, int, error) {
	var sb strings.Builder
	end := -1 // offset after the name where it started, once a pointer was followed
	for jumps := 0; ; {
		if off >= len(b) {
			return "", 0, errors.New("name runs past the payload")
		}
		l := int(b[off])
		switch {
		case l == 0:
			if end < 0 {
				end = off + 1
			}
			return strings.ToLower(sb.String()), end, nil
		case l&0xc0 == 0xc0:
			if off+1 >= len(b) {
				return "", 0, errors.New("name pointer runs past the payload")
			}
			if jumps++; jumps > 16 {
				return "", 0, errors.New("name has too many pointers")
			}
			if end < 0 {
				end = off + 2
			}
			off = int(binary.BigEndian.Uint16(b[off:]) & 0x3fff)
		case l&0xc0 != 0:
			return "", 0, fmt.Errorf("name label type %#x", l&0xc0)
		default:
			if off+1+l > len(b) {
				return "", 0, errors.New("name label runs past the payload")
			}
			if sb.Len()+l+1 > 255 {
				return "", 0, errors.New("name longer than 255 bytes")
			}
			if sb.Len() > 0 {
				sb.WriteByte('.')
			}
			sb.Write(b[off+1 : off+1+l])
			off += 1 + l
		}
	}
}

// hostnames maps addresses to the name a DNS answer gave them, the most recent answer
// winning. It holds at most max addresses, forgetting the oldest answers first, and
// forgets an answer after maxAge (connections are often opened long after the record's
// TTL, so the TTL is not used). Used from the reader goroutine only.
type hostnames struct {
	max    int
	maxAge time.Duration
	seq    uint64
	names  map[netip.Addr]hostname
	order  []orderMark // insertion order, oldest first; marks of overwritten answers stay
}

type hostname struct {
	name string
	at   time.Time
	seq  uint64
}

type orderMark struct {
	addr netip.Addr
	seq  uint64
}

func newHostnames(max int, maxAge time.Duration) *hostnames {
	return &hostnames{max: max, maxAge: maxAge, names: make(map[netip.Addr]hostname)}
}

func (h *hostnames) put(addr netip.Addr, name string, now time.Time) {
	addr = addr.Unmap()
	h.seq++
	h.names[addr] = hostname{name: name, at: now, seq: h.seq}
	h.order = append(h.order, orderMark{addr: addr, seq: h.seq})
	for len(h.names) > h.max || len(h.order) > 2*h.max {
		m := h.order[0]
		h.order = h.order[1:]
		if n, ok := h.names[m.addr]; ok && n.seq == m.seq {
			delete(h.names, m.addr)
		}
	}
}

// lookup returns the name of addr, or "" when no recent answer gave it one.
func (h *hostnames) lookup(addr netip.Addr, now time.Time) string {
	n, ok := h.names[addr.Unmap()]
	if !ok || now.Sub(n.at) > h.maxAge {
		return ""
	}
	return n.name
}
