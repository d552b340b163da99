package enrichers

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/threatcrumbs/crumbs/schemas"
)

// A scanner reads the few fields the join needs straight from an event's Avro binary body,
// without building goavro's native maps, checks that the body is well-formed to its end, and
// says where the enrichment field's value lies, so the enriched event is the raw bytes with
// that value replaced. This is what makes the enricher nearly as cheap as a pass-through.

// Avro node types of the scanner's schema tree.
const (
	tNull = iota
	tBoolean
	tInt
	tLong
	tFloat
	tDouble
	tBytes
	tString
	tRecord
	tEnum
	tArray
	tMap
	tUnion
	tFixed
)

var primitives = map[string]int{"null": tNull, "boolean": tBoolean, "int": tInt, "long": tLong,
	"float": tFloat, "double": tDouble, "bytes": tBytes, "string": tString}

// snode is one node of a parsed schema, with capture slots compiled in for one event schema.
type snode struct {
	typ      int
	name     string   // full name of named types
	fields   []sfield // record
	items    *snode   // array and map values
	branches []*snode // union
	size     int      // fixed
	symbols  int      // enum
}

type sfield struct {
	name string
	node *snode
	slot int // capture slot of a string or long field at this path; -1: none
}

// Capture slots: the fields the join reads, at the paths the event's kind names
// (schemas.JoinFields). A schema without one of them leaves it empty.
const (
	slotTime = iota
	slotHost
	slotKind
	slotAction
	slotUser // the first of maxUserPaths slots: the kind's User paths in order
)

const (
	slotPath = slotUser + maxUserPaths + iota
	slotNewPath
	slotSHA
	slotOwner
	slotGroup
	slotMode
	numSlots
)

// maxUserPaths is how many user paths a kind may name.
const maxUserPaths = 4

// slotPaths returns the path of each slot for events of kind k, by path.
func slotPaths(k *schemas.Kind) (map[string]int, error) {
	j := k.Join
	if len(j.User) > maxUserPaths {
		return nil, fmt.Errorf("kind %s: %d user paths, at most %d", k.Name, len(j.User), maxUserPaths)
	}
	m := map[string]int{"time": slotTime, "host.name": slotHost, "kind": slotKind, "action": slotAction}
	add := func(path string, slot int) error {
		if path == "" {
			return nil
		}
		if _, dup := m[path]; dup {
			return fmt.Errorf("kind %s: join field %s named twice", k.Name, path)
		}
		m[path] = slot
		return nil
	}
	for i, p := range j.User {
		if err := add(p, slotUser+i); err != nil {
			return nil, err
		}
	}
	for _, ps := range []struct {
		path string
		slot int
	}{{j.Path, slotPath}, {j.NewPath, slotNewPath}, {j.SHA256, slotSHA}, {j.Owner, slotOwner}, {j.Group, slotGroup}, {j.Mode, slotMode}} {
		if err := add(ps.path, ps.slot); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// scanner reads events of one schema.
type scanner struct {
	prog  []op   // the schema flattened: nested records inline, so most fields cost one step
	shape string // shape of the enrichment field, "" when the schema has none
}

// newScanner parses an event schema (JSON) and compiles the capture slots at the given paths
// into it.
func newScanner(schemaJSON string, slots map[string]int) (*scanner, error) {
	var raw any
	if err := json.Unmarshal([]byte(schemaJSON), &raw); err != nil {
		return nil, fmt.Errorf("parse schema: %w", err)
	}
	p := &schemaParser{named: map[string]*snode{}}
	root, err := p.parse(raw, "", "")
	if err != nil {
		return nil, err
	}
	if root.typ != tRecord {
		return nil, errors.New("event schema is not a record")
	}
	root = compileSlots(root, "", slots)
	prog, err := compileRecord(nil, root, true, 0)
	if err != nil {
		return nil, err
	}
	sc := &scanner{prog: prog}
	for _, f := range root.fields {
		if f.name == "enrichment" {
			sc.shape = shapeOf(f.node, 0)
		}
	}
	return sc, nil
}

type schemaParser struct{ named map[string]*snode }

func (p *schemaParser) parse(v any, ns string, depth string) (*snode, error) {
	if len(depth) > 64 {
		return nil, errors.New("schema nested too deeply")
	}
	switch x := v.(type) {
	case string:
		if t, ok := primitives[x]; ok {
			return &snode{typ: t}, nil
		}
		if n, ok := p.named[x]; ok {
			return n, nil
		}
		if n, ok := p.named[ns+"."+x]; ok {
			return n, nil
		}
		return nil, fmt.Errorf("unknown type %q", x)
	case []any:
		u := &snode{typ: tUnion}
		for _, b := range x {
			n, err := p.parse(b, ns, depth+".")
			if err != nil {
				return nil, err
			}
			u.branches = append(u.branches, n)
		}
		return u, nil
	case map[string]any:
		t, _ := x["type"].(string)
		if _, ok := primitives[t]; ok && len(x) >= 1 && x["name"] == nil {
			return &snode{typ: primitives[t]}, nil
		}
		name, _ := x["name"].(string)
		if n, _ := x["namespace"].(string); n != "" {
			ns = n
		}
		full := name
		if name != "" && !strings.Contains(name, ".") && ns != "" {
			full = ns + "." + name
		}
		if strings.Contains(name, ".") {
			ns = name[:strings.LastIndex(name, ".")]
		}
		switch t {
		case "record", "error":
			n := &snode{typ: tRecord, name: full}
			p.named[full] = n
			fields, _ := x["fields"].([]any)
			for _, fv := range fields {
				fm, _ := fv.(map[string]any)
				fname, _ := fm["name"].(string)
				fn, err := p.parse(fm["type"], ns, depth+".")
				if err != nil {
					return nil, fmt.Errorf("field %s: %w", fname, err)
				}
				n.fields = append(n.fields, sfield{name: fname, node: fn, slot: -1})
			}
			return n, nil
		case "enum":
			syms, _ := x["symbols"].([]any)
			n := &snode{typ: tEnum, name: full, symbols: len(syms)}
			p.named[full] = n
			return n, nil
		case "fixed":
			size, _ := x["size"].(float64)
			n := &snode{typ: tFixed, name: full, size: int(size)}
			p.named[full] = n
			return n, nil
		case "array":
			it, err := p.parse(x["items"], ns, depth+".")
			return &snode{typ: tArray, items: it}, err
		case "map":
			it, err := p.parse(x["values"], ns, depth+".")
			return &snode{typ: tMap, items: it}, err
		}
		return nil, fmt.Errorf("unsupported type %v", x["type"])
	}
	return nil, fmt.Errorf("unsupported schema element %T", v)
}

// compileSlots copies the record nodes along the paths that hold capture slots, so that a
// named type used at several paths (File in process.file and process.parent.file) captures at
// the intended one only.
func compileSlots(n *snode, prefix string, slotPaths map[string]int) *snode {
	if n.typ != tRecord || !hasSlotUnder(prefix, slotPaths) {
		return n
	}
	cp := *n
	cp.fields = make([]sfield, len(n.fields))
	for i, f := range n.fields {
		p := f.name
		if prefix != "" {
			p = prefix + "." + f.name
		}
		f.slot = -1
		if s, ok := slotPaths[p]; ok && (f.node.typ == tString || f.node.typ == tLong) {
			f.slot = s
		}
		f.node = compileSlots(f.node, p, slotPaths)
		cp.fields[i] = f
	}
	return &cp
}

func hasSlotUnder(prefix string, slotPaths map[string]int) bool {
	if prefix == "" {
		return true
	}
	for p := range slotPaths {
		if strings.HasPrefix(p, prefix+".") {
			return true
		}
	}
	return false
}

// shapeOf writes a node's structure: {name:T,...} records, array<T>, map<T>, union<T,...>.
func shapeOf(n *snode, depth int) string {
	if depth > 32 {
		return "?"
	}
	switch n.typ {
	case tRecord:
		parts := make([]string, len(n.fields))
		for i, f := range n.fields {
			parts[i] = f.name + ":" + shapeOf(f.node, depth+1)
		}
		return "{" + strings.Join(parts, ",") + "}"
	case tArray:
		return "array<" + shapeOf(n.items, depth+1) + ">"
	case tMap:
		return "map<" + shapeOf(n.items, depth+1) + ">"
	case tUnion:
		parts := make([]string, len(n.branches))
		for i, b := range n.branches {
			parts[i] = shapeOf(b, depth+1)
		}
		return "union<" + strings.Join(parts, ",") + ">"
	case tEnum:
		return "enum"
	case tFixed:
		return fmt.Sprintf("fixed(%d)", n.size)
	}
	for name, t := range primitives {
		if t == n.typ {
			return name
		}
	}
	return "?"
}

// scanned is what a scan captured: strings by slot (sub-slices of the body), the event time,
// and where the enrichment value lies in the body.
type scanned struct {
	strs          [numSlots]span // no pointers: clearing one costs no write barriers
	time          int64
	enStart, enEd int
}

// span is where a captured string lies in the body.
type span struct{ start, end int32 }

var errTruncated = errors.New("truncated Avro body")

// An op is one step of a flattened schema: a value to read or skip, a capture, or a mark.
// Records are inlined into their parent's program; unions, arrays and maps hold sub-programs.
type op struct {
	code uint8
	slot int8  // opCapture
	n    int32 // opFixed: size; opEnum: symbols
	sub  [][]op
}

const (
	opNull = iota
	opBoolean
	opInt
	opLong
	opEnum
	opFixed  // also float and double
	opString // also bytes
	opCapture
	opTime
	opUnion
	opArray
	opMap
	opEnrichStart
	opEnrichEnd
)

// compileRecord appends the program of record n to prog. Records nest at most 32 deep (a
// recursive schema is refused: the enricher then uses goavro for it).
func compileRecord(prog []op, n *snode, top bool, depth int) ([]op, error) {
	if depth > 32 {
		return nil, errors.New("records nested too deeply (recursive schema?)")
	}
	var err error
	for _, f := range n.fields {
		if top && f.name == "enrichment" {
			prog = append(prog, op{code: opEnrichStart})
		}
		switch {
		case f.slot >= 0 && f.node.typ == tString:
			prog = append(prog, op{code: opCapture, slot: int8(f.slot)})
		case f.slot == slotTime:
			prog = append(prog, op{code: opTime})
		default:
			if prog, err = compileValue(prog, f.node, depth+1); err != nil {
				return nil, err
			}
		}
		if top && f.name == "enrichment" {
			prog = append(prog, op{code: opEnrichEnd})
		}
	}
	return prog, nil
}

func compileValue(prog []op, n *snode, depth int) ([]op, error) {
	if depth > 64 {
		return nil, errors.New("schema nested too deeply")
	}
	switch n.typ {
	case tNull:
		return prog, nil
	case tBoolean:
		return append(prog, op{code: opBoolean}), nil
	case tInt:
		return append(prog, op{code: opInt}), nil
	case tLong:
		return append(prog, op{code: opLong}), nil
	case tEnum:
		return append(prog, op{code: opEnum, n: int32(n.symbols)}), nil
	case tFloat:
		return append(prog, op{code: opFixed, n: 4}), nil
	case tDouble:
		return append(prog, op{code: opFixed, n: 8}), nil
	case tFixed:
		return append(prog, op{code: opFixed, n: int32(n.size)}), nil
	case tBytes, tString:
		return append(prog, op{code: opString}), nil
	case tRecord:
		return compileRecord(prog, n, false, depth)
	case tUnion:
		o := op{code: opUnion}
		for _, b := range n.branches {
			sub, err := compileValue(nil, b, depth+1)
			if err != nil {
				return nil, err
			}
			o.sub = append(o.sub, sub)
		}
		return append(prog, o), nil
	case tArray, tMap:
		sub, err := compileValue(nil, n.items, depth+1)
		if err != nil {
			return nil, err
		}
		code := uint8(opArray)
		if n.typ == tMap {
			code = opMap
		}
		// n: whether an item may take no bytes (null), which caps hostile counts differently.
		empty := int32(0)
		if len(sub) == 0 {
			empty = 1
		}
		return append(prog, op{code: code, n: empty, sub: [][]op{sub}}), nil
	}
	return nil, fmt.Errorf("unsupported node type %d", n.typ)
}

// scan walks body to its end, capturing slots. An error means the body is malformed.
func (sc *scanner) scan(body []byte, out *scanned) error {
	*out = scanned{enStart: -1}
	w := walker{b: body, out: out}
	if err := w.run(sc.prog, 0); err != nil {
		return err
	}
	if w.i != len(body) {
		return fmt.Errorf("%d trailing bytes after record", len(body)-w.i)
	}
	return nil
}

type walker struct {
	b   []byte
	i   int
	out *scanned
}

// long reads a zig-zag varint; one-byte values (most lengths and small numbers) take the
// short path.
func (w *walker) long() (int64, error) {
	if w.i < len(w.b) {
		if c := w.b[w.i]; c < 0x80 {
			w.i++
			return int64(c>>1) ^ -int64(c&1), nil
		}
	}
	v, n := binary.Varint(w.b[w.i:])
	if n <= 0 {
		return 0, errTruncated
	}
	w.i += n
	return v, nil
}

func (w *walker) skip(n int64) error {
	if n < 0 || n > int64(len(w.b)-w.i) {
		return errTruncated
	}
	w.i += int(n)
	return nil
}

func (w *walker) bytes() ([]byte, error) {
	n, err := w.long()
	if err != nil {
		return nil, err
	}
	start := w.i
	if err := w.skip(n); err != nil {
		return nil, err
	}
	return w.b[start:w.i], nil
}

// run executes a program over the body from the current position.
func (w *walker) run(prog []op, depth int) error {
	if depth > 64 {
		return errors.New("value nested too deeply")
	}
	for k := range prog {
		o := &prog[k]
		switch o.code {
		case opString:
			n, err := w.long()
			if err != nil {
				return err
			}
			if err := w.skip(n); err != nil {
				return err
			}
		case opLong:
			if _, err := w.long(); err != nil {
				return err
			}
		case opInt:
			v, err := w.long()
			if err != nil {
				return err
			}
			if v < math.MinInt32 || v > math.MaxInt32 {
				return fmt.Errorf("int %d out of range", v)
			}
		case opCapture:
			n, err := w.long()
			if err != nil {
				return err
			}
			start := w.i
			if err := w.skip(n); err != nil {
				return err
			}
			w.out.strs[o.slot] = span{int32(start), int32(w.i)}
		case opTime:
			v, err := w.long()
			if err != nil {
				return err
			}
			w.out.time = v
		case opBoolean:
			if w.i >= len(w.b) || w.b[w.i] > 1 {
				return errors.New("boolean is neither 0 nor 1")
			}
			w.i++
		case opEnum:
			v, err := w.long()
			if err != nil {
				return err
			}
			if v < 0 || v >= int64(o.n) {
				return fmt.Errorf("enum index %d out of range", v)
			}
		case opFixed:
			if err := w.skip(int64(o.n)); err != nil {
				return err
			}
		case opUnion:
			idx, err := w.long()
			if err != nil {
				return err
			}
			if idx < 0 || idx >= int64(len(o.sub)) {
				return fmt.Errorf("union index %d out of range", idx)
			}
			if sub := o.sub[idx]; len(sub) > 0 {
				if err := w.run(sub, depth+1); err != nil {
					return err
				}
			}
		case opArray, opMap:
			if err := w.blocks(o, depth); err != nil {
				return err
			}
		case opEnrichStart:
			w.out.enStart = w.i
		case opEnrichEnd:
			w.out.enEd = w.i
		case opNull:
		default:
			return fmt.Errorf("unsupported op %d", o.code)
		}
	}
	return nil
}

func (w *walker) blocks(o *op, depth int) error {
	items := o.sub[0]
	for {
		count, err := w.long()
		if err != nil {
			return err
		}
		if count == 0 {
			return nil
		}
		if count < 0 {
			count = -count
			if _, err := w.long(); err != nil { // block size in bytes
				return err
			}
		}
		// Every item but a null takes at least one byte; nulls are capped so that a hostile
		// count cannot spin.
		if count > int64(len(w.b)-w.i) && (o.n == 0 || count > 1<<20) {
			return errTruncated
		}
		for k := int64(0); k < count; k++ {
			if o.code == opMap {
				if _, err := w.bytes(); err != nil {
					return err
				}
			}
			if err := w.run(items, depth+1); err != nil {
				return err
			}
		}
	}
}
