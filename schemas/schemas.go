// Package schemas holds the contracts between crumbs' stages: the Avro schemas of every
// record on the topics (avro/*.avsc), the ClickHouse migrations (clickhouse/*.sql), and the Go
// types that stages build and read, with the Avro codecs generated for them from the schemas
// (codec.go). It imports nothing of the project: the framing and the schema registry side
// live in pkg/avro, whose NewBuiltinSerde serves these schemas.
package schemas

import (
	"embed"
	"io/fs"
	"sort"
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
