// Package avro encodes and decodes crumbs records as Avro binary with goavro.
//
// Records are written in Avro single-object encoding (C3 01, the 8-byte CRC-64-AVRO
// fingerprint of the writer schema, then the body) unless a schema registry id is known for
// the schema, in which case the Confluent framing (0x00, 4-byte big-endian schema id, body) is
// written. Decode accepts both framings. The package knows nothing of crumbs' event kinds: it
// works on the schemas it is given.
package avro

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/linkedin/goavro/v2"
)

// ErrUnknownSchema is returned by Decode when the frame names a schema this Serde does not hold.
var ErrUnknownSchema = errors.New("unknown schema")

// ErrBadFrame is returned by Decode when the bytes carry neither framing.
var ErrBadFrame = errors.New("not an Avro single-object or Confluent frame")

// DecodeError says why a record could not be decoded. Callers dead-letter such records.
type DecodeError struct {
	Schema string // the schema name, when the frame named a known one
	Err    error
}

func (e *DecodeError) Error() string {
	if e.Schema != "" {
		return fmt.Sprintf("decode %s: %v", e.Schema, e.Err)
	}
	return fmt.Sprintf("decode: %v", e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// Schema is one parsed schema known to a Serde.
type Schema struct {
	Name        string // full name, e.g. crumbs.ProcessEvent
	Codec       *goavro.Codec
	Fingerprint uint64 // CRC-64-AVRO of the canonical form
	RegistryID  int32  // Confluent schema registry id; 0 when not registered
	Text        string // the schema as it was registered (JSON)

	tree      *cnode        // the parsed schema, to check bodies before goavro decodes them
	newRecord func() Record // the generated codec of exactly this version; nil: goavro
}

// Serde holds the schemas a process reads and writes. It is safe for concurrent use.
type Serde struct {
	mu     sync.RWMutex
	byName map[string]*Schema
	byFP   map[uint64]*Schema
	byID   map[int32]*Schema
	codecs map[string]func() Record // generated codecs by schema name (see UseCodec)

	registry *registrySource // nil: Confluent ids not set by SetRegistryID are unknown
}

// NewSerde returns an empty Serde.
func NewSerde() *Serde {
	return &Serde{byName: map[string]*Schema{}, byFP: map[uint64]*Schema{}, byID: map[int32]*Schema{},
		codecs: map[string]func() Record{}}
}

// Register parses an Avro schema (JSON) and makes it available under its full name.
// Registering a second schema with the same name replaces the writer schema for that name;
// records written with the earlier one can still be decoded by fingerprint.
func (s *Serde) Register(schemaJSON string) (*Schema, error) {
	sc, err := parseSchema(schemaJSON)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byName[sc.Name] = sc
	s.byFP[sc.Fingerprint] = sc
	return sc, nil
}

// RegisterEarlier makes an earlier version of a schema known for decoding only: records
// written with it decode by their fingerprint, while Encode keeps writing the version
// registered under the name. A fingerprint already known is left as it is.
func (s *Serde) RegisterEarlier(schemaJSON string) (*Schema, error) {
	sc, err := parseSchema(schemaJSON)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if known, ok := s.byFP[sc.Fingerprint]; ok {
		return known, nil
	}
	s.byFP[sc.Fingerprint] = sc
	return sc, nil
}

// parseSchema parses one named schema.
func parseSchema(schemaJSON string) (*Schema, error) {
	codec, err := goavro.NewCodec(schemaJSON)
	if err != nil {
		return nil, fmt.Errorf("parse schema: %w", err)
	}
	name, err := schemaName(schemaJSON)
	if err != nil {
		return nil, err
	}
	tree, err := parseCompatSchema(schemaJSON)
	if err != nil {
		return nil, err
	}
	return &Schema{Name: name, Codec: codec, Fingerprint: uint64(codec.SchemaCRC64Avro()), Text: schemaJSON, tree: tree}, nil
}

// SetRegistryID records the schema registry id of a registered schema, so that it is written
// with the Confluent framing and frames carrying that id decode with it.
func (s *Serde) SetRegistryID(name string, id int32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, ok := s.byName[name]
	if !ok {
		return fmt.Errorf("set registry id for %s: %w", name, ErrUnknownSchema)
	}
	sc.RegistryID = id
	s.byID[id] = sc
	return nil
}

// Lookup returns the schema registered under name.
func (s *Serde) Lookup(name string) (*Schema, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	sc, ok := s.byName[name]
	return sc, ok
}

// Encode appends the framed Avro encoding of v under the named schema to buf. v is a Record
// of that schema, encoded by its generated codec when it was generated from the schema
// version registered under the name, or goavro's native form (maps, slices and Go scalars).
func (s *Serde) Encode(buf []byte, name string, v any) ([]byte, error) {
	sc, ok := s.Lookup(name)
	if !ok {
		return nil, fmt.Errorf("encode %s: %w", name, ErrUnknownSchema)
	}
	if r, ok := v.(Record); ok {
		return s.encodeRecord(buf, sc, r)
	}
	return s.encodeNative(buf, sc, v)
}

func (s *Serde) encodeNative(buf []byte, sc *Schema, native any) ([]byte, error) {
	out, err := sc.Codec.BinaryFromNative(appendFrame(buf, sc), native)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", sc.Name, err)
	}
	return out, nil
}

// Decode reads one framed record and returns its schema and native value. Errors are
// *DecodeError values.
func (s *Serde) Decode(b []byte) (*Schema, any, error) {
	sc, body, err := s.frame(b)
	if err != nil {
		return nil, nil, &DecodeError{Err: err}
	}
	if sc.newRecord != nil {
		r := sc.newRecord()
		if err := r.UnmarshalAvro(body); err != nil {
			return sc, nil, &DecodeError{Schema: sc.Name, Err: err}
		}
		return sc, r.Native(), nil
	}
	native, rest, err := sc.nativeFromBinary(body)
	if err != nil {
		return sc, nil, &DecodeError{Schema: sc.Name, Err: err}
	}
	if len(rest) != 0 {
		return sc, nil, &DecodeError{Schema: sc.Name, Err: fmt.Errorf("%d trailing bytes after record", len(rest))}
	}
	return sc, native, nil
}

// DecodePrefix decodes the leading fields of a framed record with the named schema, which
// must be a prefix of the writer's record (as crumbs.Envelope is of every event). The
// remaining bytes are ignored.
func (s *Serde) DecodePrefix(b []byte, prefixSchema string) (any, error) {
	_, body, err := s.frame(b)
	if err != nil {
		return nil, &DecodeError{Err: err}
	}
	sc, ok := s.Lookup(prefixSchema)
	if !ok {
		return nil, &DecodeError{Schema: prefixSchema, Err: ErrUnknownSchema}
	}
	native, _, err := sc.nativeFromBinary(body)
	if err != nil {
		return nil, &DecodeError{Schema: prefixSchema, Err: err}
	}
	return native, nil
}

// nativeFromBinary decodes one value from the front of body. The body is checked first, so
// that hostile input cannot make goavro allocate without bound (see checkBody), and a panic
// in goavro becomes an error.
func (sc *Schema) nativeFromBinary(body []byte) (native any, rest []byte, err error) {
	if _, err := checkBody(sc.tree, body); err != nil {
		return nil, nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			native, rest, err = nil, nil, fmt.Errorf("goavro panicked: %v", r)
		}
	}()
	return sc.Codec.NativeFromBinary(body)
}

// SingleObjectFingerprint returns the writer schema's fingerprint of a record in Avro
// single-object encoding (C3 01, then the CRC-64-AVRO fingerprint, little-endian), and false
// for any other framing.
func SingleObjectFingerprint(b []byte) (uint64, bool) {
	if len(b) >= 10 && b[0] == 0xC3 && b[1] == 0x01 {
		return binary.LittleEndian.Uint64(b[2:10]), true
	}
	return 0, false
}

// frame splits a framed record into its writer schema and body.
func (s *Serde) frame(b []byte) (*Schema, []byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	fp, single := SingleObjectFingerprint(b)
	switch {
	case single:
		sc, ok := s.byFP[fp]
		if !ok {
			return nil, nil, fmt.Errorf("fingerprint %016x: %w", fp, ErrUnknownSchema)
		}
		return sc, b[10:], nil
	case len(b) >= 5 && b[0] == 0:
		id := int32(binary.BigEndian.Uint32(b[1:5]))
		sc, ok := s.byID[id]
		if !ok && s.registry != nil {
			s.mu.RUnlock()
			var err error
			sc, err = s.fromRegistry(id)
			s.mu.RLock()
			if err != nil {
				return nil, nil, err
			}
			ok = true
		}
		if !ok {
			return nil, nil, fmt.Errorf("registry id %d: %w", id, ErrUnknownSchema)
		}
		return sc, b[5:], nil
	default:
		return nil, nil, ErrBadFrame
	}
}

// schemaName returns the full name of a named schema (namespace.name).
func schemaName(schemaJSON string) (string, error) {
	var head struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	}
	if err := json.Unmarshal([]byte(schemaJSON), &head); err != nil || head.Name == "" {
		return "", fmt.Errorf("parse schema: top level is not a named type")
	}
	if head.Namespace == "" || strings.Contains(head.Name, ".") {
		return head.Name, nil
	}
	return head.Namespace + "." + head.Name, nil
}
