package enrichers

import (
	"hash/maphash"
	"unsafe"
)

// hostIndex holds the hosts' contexts by name. Every event looks its host up, among thousands
// and in no order, so the index avoids what costs there: the map is keyed by the name's hash
// (no miss for a key's bytes) and a short name is kept inside its hostContext, so that checking
// it touches memory the join reads anyway. Names whose hashes collide are chained.
type hostIndex struct {
	seed maphash.Seed
	m    map[uint64]*hostContext
	hash func(string) uint64 // nil: maphash with seed (tests force collisions with their own)
}

func (x *hostIndex) key(name string) uint64 {
	if x.hash != nil {
		return x.hash(name)
	}
	return maphash.String(x.seed, name)
}

func newHostIndex() hostIndex {
	return hostIndex{seed: maphash.MakeSeed(), m: map[uint64]*hostContext{}}
}

func (x *hostIndex) len() int { return len(x.m) }

// get returns the context of the host name, or nil.
func (x *hostIndex) get(name string) *hostContext {
	for h := x.m[x.key(name)]; h != nil; h = h.next {
		if h.name == name {
			return h
		}
	}
	return nil
}

// add returns the context of the host name, creating it.
func (x *hostIndex) add(name string) *hostContext {
	if h := x.get(name); h != nil {
		return h
	}
	key := x.key(name)
	h := &hostContext{next: x.m[key]}
	if len(name) <= len(h.nameBuf) {
		copy(h.nameBuf[:], name)
		h.name = unsafe.String(&h.nameBuf[0], len(name))
	} else {
		h.name = name
	}
	x.m[key] = h
	return h
}

// each calls f with every host's context.
func (x *hostIndex) each(f func(*hostContext)) {
	for _, h := range x.m {
		for ; h != nil; h = h.next {
			f(h)
		}
	}
}

// remove drops the context of the host name.
func (x *hostIndex) remove(name string) {
	key := x.key(name)
	for p := x.m[key]; p != nil; p = p.next {
		if p.name == name {
			if p.next == nil {
				delete(x.m, key)
			} else {
				x.m[key] = p.next
			}
			return
		}
		if p.next != nil && p.next.name == name {
			p.next = p.next.next
			return
		}
	}
}
