// Package rules is crumbs' built-in rule pack, embedded in the binary. Each rule is one YAML
// file; fixtures for `crumbs rules test` sit beside it as <name>.fixtures.yaml.
package rules

import "embed"

// FS holds the built-in rules under "pack/".
//
//go:embed pack
var FS embed.FS

// Dir is the folder of FS that holds the rules.
const Dir = "pack"
