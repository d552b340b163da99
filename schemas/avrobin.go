package schemas

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"unsafe"
)

// What the generated codecs share: Avro binary primitives, a bounds-checked decoder and the
// conversion from goavro's native form.

// ErrShortBuffer says a record ended before its last field.
var ErrShortBuffer = errors.New("avro: record ends before its last field")

// ErrTrailingBytes says bytes were left after a record.
var ErrTrailingBytes = errors.New("avro: bytes left after the record")

// ErrBadBinary says a record's bytes are not a valid encoding of its schema.
var ErrBadBinary = errors.New("avro: invalid binary encoding")

func appendLong(b []byte, v int64) []byte { return binary.AppendVarint(b, v) }

func appendInt(b []byte, v int32) []byte { return binary.AppendVarint(b, int64(v)) }

func appendString(b []byte, s string) []byte {
	b = binary.AppendVarint(b, int64(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendDouble(b []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
}

func appendFloat(b []byte, v float32) []byte {
	return binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
}

// appendStrings writes an array of strings as one block.
func appendStrings(b []byte, ss []string) []byte {
	if len(ss) == 0 {
		return append(b, 0)
	}
	b = binary.AppendVarint(b, int64(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return append(b, 0)
}

// sizeLong is the length of a long's zig-zag varint.
func sizeLong(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	return (bits.Len64(u|1) + 6) / 7
}

func sizeString(s string) int { return sizeLong(int64(len(s))) + len(s) }

func sizeStrings(ss []string) int {
	if len(ss) == 0 {
		return 1
	}
	n := sizeLong(int64(len(ss))) + 1
	for _, s := range ss {
		n += sizeString(s)
	}
	return n
}

// stringPool is how many strings the decoder allocates at once for arrays of strings when
// the generated scratch block has none left.
const stringPool = 8

// decoder reads one Avro binary body. Every read checks the bounds: on the first error it
// records it, moves to the end and returns zero values from then on, so that generated code
// need not check after each field. Lengths and item counts are checked against the bytes
// left before anything is allocated for them.
type decoder struct {
	buf  []byte
	pos  int
	err  error
	pool []string // spare strings for arrays of strings
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.pos = len(d.buf)
}

// finish returns the decoding error, or ErrTrailingBytes when bytes are left.
func (d *decoder) finish() error {
	if d.err == nil && d.pos != len(d.buf) {
		return fmt.Errorf("%w: %d", ErrTrailingBytes, len(d.buf)-d.pos)
	}
	return d.err
}

func (d *decoder) long() int64 {
	if p := d.pos; p < len(d.buf) && d.buf[p] < 0x80 { // one byte: small values, lengths below 64
		d.pos = p + 1
		c := int64(d.buf[p])
		return c>>1 ^ -(c & 1)
	}
	return d.longSlow()
}

func (d *decoder) longSlow() int64 {
	v, n := binary.Varint(d.buf[d.pos:])
	if n <= 0 {
		if n == 0 {
			d.fail(ErrShortBuffer)
		} else {
			d.fail(fmt.Errorf("%w: varint overflows a long", ErrBadBinary))
		}
		return 0
	}
	d.pos += n
	return v
}

// int reads an Avro int. Like goavro, it keeps the low 32 bits of a longer varint.
func (d *decoder) int() int32 { return int32(d.long()) }

func (d *decoder) bool() bool {
	if p := d.pos; p < len(d.buf) && d.buf[p] <= 1 {
		d.pos = p + 1
		return d.buf[p] == 1
	}
	d.badBool()
	return false
}

func (d *decoder) badBool() {
	if d.pos >= len(d.buf) {
		d.fail(ErrShortBuffer)
		return
	}
	d.fail(fmt.Errorf("%w: boolean byte %d", ErrBadBinary, d.buf[d.pos]))
}

func (d *decoder) double() float64 {
	if len(d.buf)-d.pos < 8 {
		d.fail(ErrShortBuffer)
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.buf[d.pos:]))
	d.pos += 8
	return v
}

func (d *decoder) float() float32 {
	if len(d.buf)-d.pos < 4 {
		d.fail(ErrShortBuffer)
		return 0
	}
	v := math.Float32frombits(binary.LittleEndian.Uint32(d.buf[d.pos:]))
	d.pos += 4
	return v
}

// string returns a view into the buffer.
func (d *decoder) string() string {
	if p := d.pos; p < len(d.buf) {
		if c := d.buf[p]; c < 0x80 && c&1 == 0 { // a length below 64 in one byte
			if n := int(c >> 1); n < len(d.buf)-p {
				d.pos = p + 1 + n
				if n == 0 {
					return ""
				}
				return unsafe.String(&d.buf[p+1], n)
			}
		}
	}
	return d.stringSlow()
}

func (d *decoder) stringSlow() string {
	n := d.long()
	if n == 0 {
		return ""
	}
	if n < 0 || n > int64(len(d.buf)-d.pos) {
		if d.err == nil {
			if n < 0 {
				d.fail(fmt.Errorf("%w: negative length %d", ErrBadBinary, n))
			} else {
				d.fail(ErrShortBuffer)
			}
		}
		return ""
	}
	s := unsafe.String(&d.buf[d.pos], int(n))
	d.pos += int(n)
	return s
}

// union reads the index of a union of two branches.
func (d *decoder) union() int {
	if p := d.pos; p < len(d.buf) && d.buf[p]&^2 == 0 { // index 0 or 1: byte 0 or 2
		d.pos = p + 1
		return int(d.buf[p] >> 1)
	}
	return d.unionSlow()
}

func (d *decoder) unionSlow() int {
	i := d.long()
	if i < 0 || i > 1 {
		if d.err == nil {
			d.fail(fmt.Errorf("%w: union index %d", ErrBadBinary, i))
		}
		return -1
	}
	return int(i)
}

// block reads an array block's item count; 0 ends the array. Items take at least min bytes
// each, so a count the bytes left cannot hold is an error before anything is allocated.
func (d *decoder) block(min int) int {
	n := d.long()
	if n == 0 {
		return 0
	}
	if n < 0 {
		if n == math.MinInt64 {
			d.fail(fmt.Errorf("%w: block count %d", ErrBadBinary, n))
			return 0
		}
		n = -n
		d.long() // the block's size in bytes, which a reader of every item does not need
	}
	if d.err != nil {
		return 0
	}
	if n > int64((len(d.buf)-d.pos)/min) {
		d.fail(fmt.Errorf("%w: array block of %d items in %d bytes", ErrBadBinary, n, len(d.buf)-d.pos))
		return 0
	}
	return int(n)
}

// strings reads an array of strings whose first block has n > 0 items, taking the slice
// from the decoder's pool when it fits.
func (d *decoder) strings(n int) []string {
	var s []string
	switch {
	case n <= len(d.pool):
		s = d.pool[:0:n]
		d.pool = d.pool[n:]
	case n < stringPool:
		d.pool = make([]string, stringPool)
		s = d.pool[:0:n]
		d.pool = d.pool[n:]
	default:
		s = make([]string, 0, n)
	}
	for {
		for range n {
			s = append(s, d.string())
		}
		if n = d.block(1); n == 0 {
			return s
		}
	}
}

// take returns a slice of n items from pool when they fit (used counts those given out),
// else a new one. The slice's capacity ends at its length, so appending to it never
// reaches the next.
func take[T any](pool []T, used *int, n int) []T {
	if *used+n <= len(pool) {
		s := pool[*used : *used+n : *used+n]
		*used += n
		return s
	}
	return make([]T, n)
}

// cut returns s[start:] as a row of a column of arrays, never nil.
func cut[T any](s []T, start int) []T {
	if len(s) == start {
		return []T{}
	}
	return s[start:len(s):len(s)]
}

// ownCopy returns a copy of b that the decoded value's strings view.
func ownCopy(b []byte) []byte {
	if len(b) == 0 {
		return b
	}
	c := make([]byte, len(b))
	copy(c, b)
	return c
}

// nativeReader converts goavro's native form, remembering the first error. A field that is
// missing (the writer's schema did not have it) takes the default given.
type nativeReader struct{ err error }

func (r *nativeReader) fail(path, want string, got any) {
	if r.err == nil {
		r.err = fmt.Errorf("field %s: want %s, got %T", path, want, got)
	}
}

// record returns a record's map; nil (no error) when it is missing.
func (r *nativeReader) record(v any, path string) map[string]any {
	if v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		r.fail(path, "a record", v)
	}
	return m
}

// union returns the record of a union of null and a record: nil for null. goavro wraps
// it in a map keyed by the record's full name; an unwrapped record is taken as it is.
func (r *nativeReader) union(v any, path string) map[string]any {
	m := r.record(v, path)
	if len(m) == 1 {
		for k, inner := range m {
			if im, ok := inner.(map[string]any); ok && containsDot(k) {
				return im
			}
		}
	}
	return m
}

func containsDot(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return true
		}
	}
	return false
}

func (r *nativeReader) array(v any, path string) []any {
	if v == nil {
		return nil
	}
	a, ok := v.([]any)
	if !ok {
		if ss, ok := v.([]string); ok {
			out := make([]any, len(ss))
			for i, s := range ss {
				out[i] = s
			}
			return out
		}
		r.fail(path, "an array", v)
	}
	return a
}

func (r *nativeReader) str(v any, path, def string) string {
	switch x := v.(type) {
	case nil:
		return def
	case string:
		return x
	case []byte: // bytes promote to string
		return string(x)
	}
	r.fail(path, "a string", v)
	return ""
}

func (r *nativeReader) long(v any, path string, def int64) int64 {
	switch x := v.(type) {
	case nil:
		return def
	case int64:
		return x
	case int32:
		return int64(x)
	case int:
		return int64(x)
	}
	r.fail(path, "a long", v)
	return 0
}

func (r *nativeReader) int(v any, path string, def int32) int32 {
	switch x := v.(type) {
	case nil:
		return def
	case int32:
		return x
	case int64:
		return int32(x)
	case int:
		return int32(x)
	}
	r.fail(path, "an int", v)
	return 0
}

func (r *nativeReader) double(v any, path string, def float64) float64 {
	switch x := v.(type) {
	case nil:
		return def
	case float64:
		return x
	case float32: // int, long and float promote to double
		return float64(x)
	case int64:
		return float64(x)
	case int32:
		return float64(x)
	case int:
		return float64(x)
	}
	r.fail(path, "a double", v)
	return 0
}

func (r *nativeReader) float(v any, path string, def float32) float32 {
	switch x := v.(type) {
	case nil:
		return def
	case float32:
		return x
	case int64:
		return float32(x)
	case int32:
		return float32(x)
	}
	r.fail(path, "a float", v)
	return 0
}

func (r *nativeReader) bool(v any, path string, def bool) bool {
	switch x := v.(type) {
	case nil:
		return def
	case bool:
		return x
	}
	r.fail(path, "a boolean", v)
	return false
}

// strings converts an array of strings; nil when empty.
func (r *nativeReader) strings(v any, path string) []string {
	a := r.array(v, path)
	if len(a) == 0 {
		return nil
	}
	out := make([]string, len(a))
	for i, x := range a {
		out[i] = r.str(x, path, "")
	}
	return out
}

func nativeStrings(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
