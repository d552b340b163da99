// Package schemas holds the contracts between crumbs' stages: the Avro schemas of every
// record on the topics (avro/*.avsc), the ClickHouse migrations (clickhouse/*.sql), and the Go
// types that stages build and read, with their conversion to and from goavro's native form.
package schemas

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"

	"github.com/threatcrumbs/crumbs/pkg/avro"
)

// Avro holds the Avro schema files, and under avro/history every earlier committed version
// of them, so that records written before a schema changed still decode.
//
//go:embed avro/*.avsc avro/history/*.avsc
var Avro embed.FS

// ClickHouse holds the ClickHouse migrations, applied in file-name order.
//
//go:embed clickhouse/*.sql
var ClickHouse embed.FS

// Full names of the schemas in Avro.
const (
	EnvelopeSchema  = "crumbs.Envelope"
	ProcessSchema   = "crumbs.ProcessEvent"
	AlertSchema     = "crumbs.Alert"
	InventorySchema = "crumbs.context.InventoryRecord"
)

// AvroFiles returns the names of the embedded Avro schema files, sorted.
func AvroFiles() []string {
	names, _ := fs.Glob(Avro, "avro/*.avsc")
	sort.Strings(names)
	return names
}

// NewSerde returns a Serde that knows every schema in Avro.
func NewSerde() (*avro.Serde, error) {
	s := avro.NewSerde()
	for _, name := range AvroFiles() {
		b, err := Avro.ReadFile(name)
		if err != nil {
			return nil, err
		}
		if _, err := s.Register(string(b)); err != nil {
			return nil, fmt.Errorf("schemas/%s: %w", name, err)
		}
	}
	earlier, _ := fs.Glob(Avro, "avro/history/*.avsc")
	for _, name := range earlier {
		b, err := Avro.ReadFile(name)
		if err != nil {
			return nil, err
		}
		if _, err := s.RegisterEarlier(string(b)); err != nil {
			return nil, fmt.Errorf("schemas/%s: %w", name, err)
		}
	}
	return s, nil
}
