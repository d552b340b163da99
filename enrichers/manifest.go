package enrichers

import (
	"encoding/binary"
	"encoding/hex"
	"hash/maphash"
	"strings"

	"github.com/threatcrumbs/crumbs/schemas"
)

// manifestIndex is a deploy's artifacts by path. The join looks up a path for every exec and
// file event, among many thousand manifest entries and at random, so what costs is memory
// latency: a Go map of strings to artifacts takes a miss for the table, one for the key's bytes,
// one for the artifact and one for its sha256. Here the table is a small array of offsets and
// each entry lies in one piece — hash, decoded sha256, parsed mode, path — so a lookup costs
// about one miss. Nothing in it is a pointer: the garbage collector does not scan it.
type manifestIndex struct {
	seed    maphash.Seed
	slots   []uint32 // a power of two, at most half full; 0: empty, else entry offset + 1
	entries []byte   // entries back to back, as entryHeader describes
}

// An entry is: hash (8 bytes), sha256 (32), mode (4), artifact index (4), flags (1), path
// length (4), path.
const (
	entryHash     = 0
	entrySHA      = 8
	entryMode     = 40
	entryArtifact = 44
	entryFlags    = 48
	entryPathLen  = 49
	entryHeader   = 53

	flagSHA  = 1 // the sha256 is decoded
	flagMode = 2 // the mode is parsed
)

// newManifestIndex indexes artifacts by path; of two with the same path the later wins.
func newManifestIndex(artifacts []schemas.Artifact) *manifestIndex {
	size := 8
	for size < 2*len(artifacts) {
		size *= 2
	}
	n := 0
	for i := range artifacts {
		n += entryHeader + len(artifacts[i].Path)
	}
	m := &manifestIndex{seed: maphash.MakeSeed(), slots: make([]uint32, size), entries: make([]byte, 0, n)}
	for i := range artifacts {
		a := &artifacts[i]
		h := m.hash(a.Path)
		slot := m.find(h, a.Path)
		var e []byte
		if m.slots[slot] == 0 {
			off := len(m.entries)
			m.entries = append(m.entries, make([]byte, entryHeader)...)
			m.entries = append(m.entries, a.Path...)
			m.slots[slot] = uint32(off) + 1
			e = m.entries[off:]
			binary.LittleEndian.PutUint64(e[entryHash:], h)
			binary.LittleEndian.PutUint32(e[entryPathLen:], uint32(len(a.Path)))
		} else {
			e = m.entries[m.slots[slot]-1:]
		}
		binary.LittleEndian.PutUint32(e[entryArtifact:], uint32(i))
		var flags byte
		if decodeSHA256(a.SHA256, (*[32]byte)(e[entrySHA:])) {
			flags |= flagSHA
		}
		if mode, err := schemas.ParseMode(a.Mode); err == nil {
			binary.LittleEndian.PutUint32(e[entryMode:], mode)
			flags |= flagMode
		}
		e[entryFlags] = flags
	}
	return m
}

func (m *manifestIndex) hash(path string) uint64 { return maphash.String(m.seed, path) }

// find returns the slot of path: its entry's, or the empty one where it would go.
func (m *manifestIndex) find(h uint64, path string) int {
	mask := len(m.slots) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		o := m.slots[i]
		if o == 0 {
			return i
		}
		e := m.entries[o-1:]
		if binary.LittleEndian.Uint64(e[entryHash:]) == h {
			n := int(binary.LittleEndian.Uint32(e[entryPathLen:]))
			if n == len(path) && string(e[entryHeader:entryHeader+n]) == path {
				return i
			}
		}
	}
}

// manifestEntry is one artifact as the index holds it.
type manifestEntry []byte

// lookup returns the entry of path, or nil.
func (m *manifestIndex) lookup(path string) manifestEntry {
	if o := m.slots[m.find(m.hash(path), path)]; o != 0 {
		return manifestEntry(m.entries[o-1:])
	}
	return nil
}

// artifact is the index of the entry's artifact in the deploy record.
func (e manifestEntry) artifact() int { return int(binary.LittleEndian.Uint32(e[entryArtifact:])) }

// mode returns the artifact's mode, when it parsed.
func (e manifestEntry) mode() (uint32, bool) {
	return binary.LittleEndian.Uint32(e[entryMode:]), e[entryFlags]&flagMode != 0
}

// sameSHA256 compares a sha256 in hex with the entry's; decided is false when the entry's did
// not decode, and the caller compares the text as published.
func (e manifestEntry) sameSHA256(hexSum string) (same, decided bool) {
	if e[entryFlags]&flagSHA == 0 {
		return false, false
	}
	if len(hexSum) != 64 {
		return false, true
	}
	var want [64]byte
	hex.Encode(want[:], e[entrySHA:entrySHA+32])
	return string(want[:]) == hexSum || strings.EqualFold(string(want[:]), hexSum), true
}

// size is the memory the index holds, for the tables' estimate.
func (m *manifestIndex) size() int64 { return int64(4*len(m.slots) + cap(m.entries)) }

// decodeSHA256 decodes 64 hex digits into out without allocating.
func decodeSHA256(s string, out *[32]byte) bool {
	if len(s) != 64 {
		return false
	}
	for i := range out {
		hi, ok1 := unhex(s[2*i])
		lo, ok2 := unhex(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		out[i] = hi<<4 | lo
	}
	return true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
