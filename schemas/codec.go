package schemas

//go:generate go run ./internal/avrogen

// Every schema in avro/ whose top-level record names a Go type of this package has a codec
// generated from its .avsc file (zz_codec_<file>.go, by internal/avrogen): Avro binary
// encoding and decoding of the Go type, its goavro native form, a column buffer that decodes
// records straight into one slice per field, and field access by path. The Go fields bind to
// the Avro fields by their `avro` struct tags: `avro:"name"` names the field, a dotted tag
// (`avro:"user.uid"`) holds a field of a nested record in the enclosing struct, an embedded
// struct without a tag contributes its fields (the Envelope), a pointer to a struct is the
// union of null and that record, int32 is Avro int, int64 (or a type over it) long, float64
// double, slices are arrays. Every Avro field needs its Go field, and every tag its Avro
// field: go generate says which is missing.
//
// Ownership of decoded strings: UnmarshalAvro copies the record's bytes once and every string
// of the value is a view into that copy (so a decode costs a handful of allocations, not one
// per string); the copy lives as long as any of the strings does, and the caller may reuse
// its buffer at once. UnmarshalAvroNoCopy and the column buffers' Append make the strings
// views into the caller's bytes, which must then stay unchanged for as long as the value or
// the columns are used (a franz-go record's Value qualifies: the client never reuses it).
// Neither copy is ever written to after decoding.

// Record is a Go value with a generated Avro codec.
type Record interface {
	// AvroSchema returns the full name of the record's schema and the CRC-64-AVRO
	// fingerprint of the version the code was generated from.
	AvroSchema() (name string, fingerprint uint64)
	// AvroSize returns the length of the value's Avro binary encoding.
	AvroSize() int
	// AppendAvro appends the value's Avro binary encoding (the body, without framing) to b.
	AppendAvro(b []byte) []byte
	// UnmarshalAvro sets the value from exactly one Avro binary body written with the
	// schema version the code was generated from; its strings view a private copy of b.
	// Every field with an avro tag is set; on an error the whole value is zeroed.
	UnmarshalAvro(b []byte) error
	// UnmarshalAvroNoCopy is UnmarshalAvro with the strings viewing b itself, which must
	// stay unchanged for as long as the value is used.
	UnmarshalAvroNoCopy(b []byte) error
	// Native returns the value in goavro's native form.
	Native() map[string]any
	// FromNative sets the value from goavro's native form of any version of the schema:
	// fields the writer did not have take their defaults.
	FromNative(native any) error
	// Field returns the value at a dotted field path (one of the codec's Fields), as the
	// column of that path holds it; false when the path crosses an absent optional record
	// or names no field.
	Field(path string) (any, bool)
}

// ColumnBuffer holds decoded records column by column: one slice per field (see Field
// and Codec.Fields), ready for a batch insert that takes whole columns.
type ColumnBuffer interface {
	// Append decodes one Avro binary body (of the codec's schema version) into one more
	// row. Its strings view body, which must stay unchanged while the columns are used.
	// On an error nothing is appended.
	Append(body []byte) error
	// Len is the number of rows.
	Len() int
	// Reset forgets every row, keeping the memory; slices obtained earlier must not be
	// used after it.
	Reset()
	// Columns returns every column in the order of Codec.Fields: its path and its values,
	// a slice with one element per row ([]string, []int64, [][]string, ...).
	Columns() []Column
}

// Decoder decodes records into memory it reuses from one Decode to the next: the value
// returned, and everything it points to besides its strings, is valid until the next Decode;
// the strings view the bytes given, which must stay unchanged while they are used. It
// allocates nothing for records that fit its scratch space (a few array items). For judging
// one record at a time.
type Decoder interface {
	Decode(body []byte) (Record, error)
}

// Column is one column of a ColumnBuffer.
type Column struct {
	Path   string
	Values any
}

// Codec is the generated codec of one schema.
type Codec struct {
	// Schema is the schema's full name, e.g. crumbs.ProcessEvent.
	Schema string
	// Fingerprint is the CRC-64-AVRO fingerprint of the schema version the code was
	// generated from: records written with it take the generated path.
	Fingerprint uint64
	// File is the schema file, e.g. avro/process.avsc.
	File string
	// Fields are the field paths Field and the column buffer know, in schema order.
	Fields []FieldInfo
	// New returns a zero value of the schema's Go type.
	New func() Record
	// NewColumns returns an empty column buffer.
	NewColumns func() ColumnBuffer
	// NewDecoder returns a decoder that reuses its memory.
	NewDecoder func() Decoder
}

// FieldInfo describes one field path of a codec: one column of its column buffer.
type FieldInfo struct {
	// Path is the dotted Avro path, e.g. process.file.path or enrichment.changes.id.
	Path string
	// Type is the Avro type of the values: string, int, long, float, double or boolean.
	Type string
	// Arrays is how many arrays the path crosses, the field's own included: 0 for one
	// scalar per record, 1 for process.args or enrichment.changes.id ([]string per record).
	Arrays int
	// Optional says the path crosses an optional record; the column then holds zero values
	// for records where it is absent.
	Optional bool
	// Presence says the column tells whether the optional record at Path is present
	// (boolean), rather than holding one of its fields.
	Presence bool
}

// CodecOf returns the generated codec of a schema by its full name.
func CodecOf(schema string) (*Codec, bool) {
	for _, c := range Codecs {
		if c.Schema == schema {
			return c, true
		}
	}
	return nil, false
}
