package network

import (
	"encoding/binary"
	"net/netip"
	"strings"
)

// dnsQuery builds a DNS wire-format query for name's A record.
func dnsQuery(name string) []byte {
	b := binary.BigEndian.AppendUint16(nil, 0x4242) // id
	b = binary.BigEndian.AppendUint16(b, 0x0100)    // RD
	b = binary.BigEndian.AppendUint16(b, 1)         // QDCOUNT
	b = append(b, 0, 0, 0, 0, 0, 0)                 // AN, NS, AR
	b = appendName(b, name)
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, dnsTypeA), 1)
}

func appendName(b []byte, name string) []byte {
	for _, label := range strings.Split(name, ".") {
		b = append(b, byte(len(label)))
		b = append(b, label...)
	}
	return append(b, 0)
}

// dnsRecord is one answer of a response dnsResponseFor builds.
type dnsRecord struct {
	typ    uint16
	target string     // CNAME
	addr   netip.Addr // A, AAAA
}

// dnsResponseFor builds the response to query: its question (by pointer-free copy), and
// answers owned by the question's name (the first) and then by each CNAME target, with
// the answers' owner names compressed as pointers to the question.
func dnsResponseFor(query []byte, answers ...dnsRecord) []byte {
	b := append([]byte(nil), query...)
	binary.BigEndian.PutUint16(b[2:], 0x8180) // QR, RD, RA
	binary.BigEndian.PutUint16(b[6:], uint16(len(answers)))
	owner := []byte{0xc0, 12} // pointer to the question's name
	for _, a := range answers {
		b = append(b, owner...)
		b = binary.BigEndian.AppendUint16(b, a.typ)
		b = binary.BigEndian.AppendUint16(b, 1)   // IN
		b = binary.BigEndian.AppendUint32(b, 300) // TTL
		var rdata []byte
		switch a.typ {
		case dnsTypeCNAME:
			rdata = appendName(nil, a.target)
		default:
			rdata = a.addr.AsSlice()
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(rdata)))
		rdStart := len(b)
		b = append(b, rdata...)
		if a.typ == dnsTypeCNAME {
			// Later answers are owned by the CNAME's target, as resolvers send them.
			owner = []byte{0xc0 | byte(rdStart>>8), byte(rdStart)}
		}
	}
	return b
}
