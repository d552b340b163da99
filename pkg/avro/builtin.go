package avro

import (
	"fmt"
	"io/fs"

	"github.com/threatcrumbs/crumbs/schemas"
)

// NewBuiltinSerde returns a Serde that knows every schema built into crumbs (schemas.Avro),
// the earlier versions under avro/history for decoding, and the generated codec of each
// current version (schemas.Codecs), which then takes the hot path.
func NewBuiltinSerde() (*Serde, error) {
	s := NewSerde()
	for _, name := range schemas.AvroFiles() {
		b, err := schemas.Avro.ReadFile(name)
		if err != nil {
			return nil, err
		}
		if _, err := s.Register(string(b)); err != nil {
			return nil, fmt.Errorf("schemas/%s: %w", name, err)
		}
	}
	earlier, _ := fs.Glob(schemas.Avro, "avro/history/*.avsc")
	for _, name := range earlier {
		b, err := schemas.Avro.ReadFile(name)
		if err != nil {
			return nil, err
		}
		if _, err := s.RegisterEarlier(string(b)); err != nil {
			return nil, fmt.Errorf("schemas/%s: %w", name, err)
		}
	}
	for _, c := range schemas.Codecs {
		if err := s.UseCodec(func() Record { return c.New() }); err != nil {
			return nil, fmt.Errorf("schemas/%s: %w (run go generate ./schemas)", c.File, err)
		}
	}
	return s, nil
}
