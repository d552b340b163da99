package avro

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// errBlockTooLarge says an array or map block claims more items than bytes remain.
var errBlockTooLarge = errors.New("block claims more items than bytes remain")

// checkBody walks an Avro binary body with the schema n without allocating, so that hostile
// input cannot make goavro allocate without bound: goavro sizes an array or map from the
// block count in the data (up to 2^31 items) before reading the items. Besides the
// structure (lengths and sizes within the data, union indexes in range), it requires every
// array or map block to claim no more items than bytes remain after its header, which holds
// for any data whose items take at least one byte each: an array of nulls or of empty records
// with more items than the record has bytes is refused. It returns the bytes after the value.
func checkBody(n *cnode, buf []byte) ([]byte, error) {
	var err error
	switch n.typ {
	case "null":
		return buf, nil
	case "boolean":
		return need(buf, 1)
	case "int", "long", "enum":
		_, buf, err = varint(buf)
		return buf, err
	case "float":
		return need(buf, 4)
	case "double":
		return need(buf, 8)
	case "bytes", "string":
		var size int64
		if size, buf, err = varint(buf); err != nil {
			return nil, err
		}
		if size < 0 {
			return nil, fmt.Errorf("negative length %d", size)
		}
		return need(buf, size)
	case "fixed":
		return need(buf, int64(n.size))
	case "union":
		var idx int64
		if idx, buf, err = varint(buf); err != nil {
			return nil, err
		}
		if idx < 0 || idx >= int64(len(n.branches)) {
			return nil, fmt.Errorf("union index %d out of range", idx)
		}
		return checkBody(n.branches[idx], buf)
	case "record":
		for _, f := range n.fields {
			if buf, err = checkBody(f.typ, buf); err != nil {
				return nil, err
			}
		}
		return buf, nil
	case "array", "map":
		for {
			var count int64
			if count, buf, err = varint(buf); err != nil {
				return nil, err
			}
			if count == 0 {
				return buf, nil
			}
			if count < 0 {
				if count == math.MinInt64 {
					return nil, fmt.Errorf("block count %d", count)
				}
				count = -count
				if _, buf, err = varint(buf); err != nil { // block size in bytes
					return nil, err
				}
			}
			if count > int64(len(buf)) {
				return nil, fmt.Errorf("%s of %d items in %d bytes: %w", n.typ, count, len(buf), errBlockTooLarge)
			}
			for range count {
				if n.typ == "map" {
					if buf, err = checkBody(stringNode, buf); err != nil {
						return nil, err
					}
				}
				if buf, err = checkBody(n.items, buf); err != nil {
					return nil, err
				}
			}
		}
	default:
		return nil, fmt.Errorf("unknown type %q", n.typ)
	}
}

var stringNode = &cnode{typ: "string"}

func need(buf []byte, n int64) ([]byte, error) {
	if n > int64(len(buf)) {
		return nil, fmt.Errorf("need %d bytes, have %d: short buffer", n, len(buf))
	}
	return buf[n:], nil
}

func varint(buf []byte) (int64, []byte, error) {
	v, n := binary.Varint(buf)
	if n <= 0 {
		return 0, nil, errors.New("bad or short varint")
	}
	return v, buf[n:], nil
}
