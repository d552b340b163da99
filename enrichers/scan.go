package enrichers

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
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
	mark bool
}

// Capture slots: the fields the join reads. A schema without one of them leaves it empty.
const (
	slotTime = iota
	slotHost
	slotKind
	slotAction
	slotProcPath
	slotProcSHA
	slotProcUser
	slotFilePath
	slotFileNewPath
	slotFileSHA
	slotFileOwner
	slotFileGroup
	slotFileMode
	slotIdentUser
	slotIdentTarget
	numSlots
)

var slotPaths = map[string]int{
	"time": slotTime, "host.name": slotHost, "kind": slotKind, "action": slotAction,
	"process.file.path": slotProcPath, "process.file.sha256": slotProcSHA, "process.user.name": slotProcUser,
	"file.path": slotFilePath, "file.new_path": slotFileNewPath, "file.sha256": slotFileSHA,
	"file.owner": slotFileOwner, "file.group": slotFileGroup, "file.mode": slotFileMode,
	"identity.user": slotIdentUser, "identity.target_user": slotIdentTarget,
}

// scanner reads events of one schema.
type scanner struct {
	root  *snode
	shape string // shape of the enrichment field, "" when the schema has none
}

// newScanner parses an event schema (JSON) and compiles the capture slots into it.
func newScanner(schemaJSON string) (*scanner, error) {
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
	root = compileSlots(root, "")
	sc := &scanner{root: root}
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
func compileSlots(n *snode, prefix string) *snode {
	if n.typ != tRecord || !hasSlotUnder(prefix) {
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
		f.node = compileSlots(f.node, p)
		cp.fields[i] = f
	}
	return &cp
}

func hasSlotUnder(prefix string) bool {
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
	strs          [numSlots][]byte
	time          int64
	enStart, enEd int
}

var errTruncated = errors.New("truncated Avro body")

// scan walks body to its end, capturing slots. An error means the body is malformed.
func (sc *scanner) scan(body []byte, out *scanned) error {
	*out = scanned{enStart: -1}
	w := walker{b: body, out: out}
	if err := w.record(sc.root, true); err != nil {
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

func (w *walker) long() (int64, error) {
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

func (w *walker) record(n *snode, top bool) error {
	for _, f := range n.fields {
		if top && f.name == "enrichment" {
			w.out.enStart = w.i
		}
		switch {
		case f.slot >= 0 && f.node.typ == tString:
			s, err := w.bytes()
			if err != nil {
				return err
			}
			w.out.strs[f.slot] = s
		case f.slot == slotTime:
			v, err := w.long()
			if err != nil {
				return err
			}
			w.out.time = v
		default:
			if err := w.value(f.node, 0); err != nil {
				return err
			}
		}
		if top && f.name == "enrichment" {
			w.out.enEd = w.i
		}
	}
	return nil
}

func (w *walker) value(n *snode, depth int) error {
	if depth > 64 {
		return errors.New("value nested too deeply")
	}
	switch n.typ {
	case tNull:
		return nil
	case tBoolean:
		if w.i >= len(w.b) || w.b[w.i] > 1 {
			return errors.New("boolean is neither 0 nor 1")
		}
		w.i++
		return nil
	case tInt:
		v, err := w.long()
		if err == nil && (v < math.MinInt32 || v > math.MaxInt32) {
			err = fmt.Errorf("int %d out of range", v)
		}
		return err
	case tLong:
		_, err := w.long()
		return err
	case tEnum:
		v, err := w.long()
		if err == nil && (v < 0 || v >= int64(n.symbols)) {
			err = fmt.Errorf("enum index %d out of range", v)
		}
		return err
	case tFloat:
		return w.skip(4)
	case tDouble:
		return w.skip(8)
	case tBytes, tString:
		_, err := w.bytes()
		return err
	case tFixed:
		return w.skip(int64(n.size))
	case tRecord:
		return w.record(n, false)
	case tUnion:
		idx, err := w.long()
		if err != nil {
			return err
		}
		if idx < 0 || idx >= int64(len(n.branches)) {
			return fmt.Errorf("union index %d out of range", idx)
		}
		return w.value(n.branches[idx], depth+1)
	case tArray, tMap:
		return w.blocks(n, depth)
	}
	return fmt.Errorf("unsupported node type %d", n.typ)
}

func (w *walker) blocks(n *snode, depth int) error {
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
		if count > int64(len(w.b)-w.i) && (n.items.typ != tNull || count > 1<<20) {
			return errTruncated
		}
		for k := int64(0); k < count; k++ {
			if n.typ == tMap {
				if _, err := w.bytes(); err != nil {
					return err
				}
			}
			if err := w.value(n.items, depth+1); err != nil {
				return err
			}
		}
	}
}
