package avro

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// ErrNoCodec is returned by DecodeRecord and CurrentBody for a schema without a generated codec.
var ErrNoCodec = errors.New("no generated codec")

// Record is a Go value with a generated Avro codec for one schema (the schemas package
// generates them; see schemas.Record for the full contract).
type Record interface {
	// AvroSchema returns the schema's full name and the fingerprint of the version the
	// code was generated from.
	AvroSchema() (name string, fingerprint uint64)
	// AvroSize returns the length of AppendAvro's output.
	AvroSize() int
	// AppendAvro appends the value's Avro binary body to b.
	AppendAvro(b []byte) []byte
	// UnmarshalAvro sets the value from one body of that version; its strings view a copy.
	UnmarshalAvro(b []byte) error
	// Native returns the value in goavro's native form.
	Native() map[string]any
	// FromNative sets the value from goavro's native form of any version of the schema.
	FromNative(native any) error
}

// UseCodec makes the Serde encode and decode the schema version a generated codec was
// generated from with that codec instead of goavro: Encode of such a value appends its
// body directly, Decode builds the native form from it, DecodeRecord and DecodeInto return
// it. Records written with other versions of the schema still go through goavro. The
// version must be registered (Register or RegisterEarlier) first, and UseCodec called
// before the Serde is shared between goroutines.
func (s *Serde) UseCodec(newRecord func() Record) error {
	name, fp := newRecord().AvroSchema()
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, ok := s.byFP[fp]
	if !ok || sc.Name != name {
		return fmt.Errorf("codec of %s (fingerprint %016x): %w", name, fp, ErrUnknownSchema)
	}
	sc.newRecord = newRecord
	s.codecs[name] = newRecord
	return nil
}

// encodeRecord appends the framed encoding of r under sc: with the generated codec when r
// was generated from sc's version, else through goavro with r's native form.
func (s *Serde) encodeRecord(buf []byte, sc *Schema, r Record) ([]byte, error) {
	name, fp := r.AvroSchema()
	if name != sc.Name {
		return nil, fmt.Errorf("encode %s: the value is a %s", sc.Name, name)
	}
	if fp != sc.Fingerprint {
		return s.encodeNative(buf, sc, r.Native())
	}
	buf = slices.Grow(buf, frameLen(sc)+r.AvroSize())
	return r.AppendAvro(appendFrame(buf, sc)), nil
}

func frameLen(sc *Schema) int {
	if sc.RegistryID != 0 {
		return 5
	}
	return 10
}

func appendFrame(buf []byte, sc *Schema) []byte {
	if sc.RegistryID != 0 {
		buf = append(buf, 0)
		return binary.BigEndian.AppendUint32(buf, uint32(sc.RegistryID))
	}
	buf = append(buf, 0xC3, 0x01)
	return binary.LittleEndian.AppendUint64(buf, sc.Fingerprint)
}

// Frame splits a framed record into its writer schema and body. Errors are *DecodeError
// values.
func (s *Serde) Frame(b []byte) (*Schema, []byte, error) {
	sc, body, err := s.frame(b)
	if err != nil {
		return nil, nil, &DecodeError{Err: err}
	}
	return sc, body, nil
}

// DecodeRecord decodes one framed record into a value of the Go type generated for its
// schema: with the generated codec when the writer used the version it was generated
// from, else through goavro, fields the writer did not have taking their defaults. The
// value's strings view a copy of b. Errors are *DecodeError values; a schema without a
// generated codec is ErrNoCodec.
func (s *Serde) DecodeRecord(b []byte) (*Schema, Record, error) {
	sc, body, err := s.frame(b)
	if err != nil {
		return nil, nil, &DecodeError{Err: err}
	}
	newRecord := sc.newRecord
	if newRecord == nil {
		s.mu.RLock()
		newRecord = s.codecs[sc.Name]
		s.mu.RUnlock()
		if newRecord == nil {
			return sc, nil, &DecodeError{Schema: sc.Name, Err: ErrNoCodec}
		}
	}
	r := newRecord()
	if err := s.decodeBody(sc, body, r); err != nil {
		return sc, nil, err
	}
	return sc, r, nil
}

// DecodeInto decodes one framed record into v, whose type must be generated for the
// writer's schema (any version of it). The value's strings view a copy of b. Errors are
// *DecodeError values.
func (s *Serde) DecodeInto(b []byte, v Record) (*Schema, error) {
	sc, body, err := s.frame(b)
	if err != nil {
		return nil, &DecodeError{Err: err}
	}
	if name, _ := v.AvroSchema(); name != sc.Name {
		return sc, &DecodeError{Schema: sc.Name, Err: fmt.Errorf("the record is a %s, not a %s", sc.Name, name)}
	}
	return sc, s.decodeBody(sc, body, v)
}

// decodeBody sets r from a body written with sc.
func (s *Serde) decodeBody(sc *Schema, body []byte, r Record) error {
	if _, fp := r.AvroSchema(); fp == sc.Fingerprint {
		if err := r.UnmarshalAvro(body); err != nil {
			return &DecodeError{Schema: sc.Name, Err: err}
		}
		return nil
	}
	native, rest, err := sc.nativeFromBinary(body)
	if err == nil && len(rest) != 0 {
		err = fmt.Errorf("%d trailing bytes after record", len(rest))
	}
	if err == nil {
		err = r.FromNative(native)
	}
	if err != nil {
		return &DecodeError{Schema: sc.Name, Err: err}
	}
	return nil
}

// CurrentBody returns the body of a framed record as the generated codec of its schema
// reads it: the body itself when the writer used the version the codec was generated
// from, else the record decoded with the writer's version through goavro and encoded
// again with the generated codec. It is what a column buffer appends. Errors are
// *DecodeError values; a schema without a generated codec is ErrNoCodec.
func (s *Serde) CurrentBody(b []byte) (*Schema, []byte, error) {
	sc, body, err := s.frame(b)
	if err != nil {
		return nil, nil, &DecodeError{Err: err}
	}
	if sc.newRecord != nil {
		return sc, body, nil
	}
	_, r, err := s.DecodeRecord(b)
	if err != nil {
		return sc, nil, err
	}
	return sc, r.AppendAvro(nil), nil
}
