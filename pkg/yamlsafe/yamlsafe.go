// Package yamlsafe parses YAML (and JSON, which YAML reads) from untrusted sources — context
// records, rule files, Sigma rules — within limits: bytes in, then nodes out. Every YAML input
// of crumbs goes through it, so that neither a large input nor an alias bomb (a few anchors
// whose aliases expand exponentially) can make a stage allocate without bound or answer with
// megabytes of errors.
//
// Three checks, each before the work it guards:
//   - the input's size, before anything is read of it;
//   - a count of the characters that can start a YAML node (`[ { , : - ? *` and line breaks),
//     before parsing: the parser makes at most three nodes per such character, so the parsed
//     tree is bounded before it is built;
//   - the nodes of the parsed tree with every alias counted as the nodes it stands for,
//     computed once per anchor without expanding anything, before the tree is decoded into
//     Go values (which expands aliases).
//
// Each refusal is one short *LimitError.
package yamlsafe

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Limits bound one input.
type Limits struct {
	// MaxBytes is the largest input accepted. Default 8388608 (8 MiB).
	MaxBytes int
	// MaxNodes is the most YAML nodes the input may hold, all documents together, aliases
	// counted as what they expand to. Default 100000 (a context list of about ten thousand
	// records, or a rule file a hundred times larger than any in the Sigma repository).
	MaxNodes int
	// MaxDocuments is the most documents (separated by ---) the input may hold. Default 1000.
	MaxDocuments int
}

// DefaultLimits returns the limits documented on Limits.
func DefaultLimits() Limits {
	return Limits{MaxBytes: 8 << 20, MaxNodes: 100_000, MaxDocuments: 1000}
}

// ErrLimit marks input refused for exceeding a limit (errors.Is).
var ErrLimit = errors.New("YAML input over a limit")

// LimitError says which limit the input exceeded.
type LimitError struct {
	What  string // "bytes", "nodes", "documents", "alias"
	Limit int
	Got   int // how far the count went before it stopped (at least Limit+1), or the size
}

func (e *LimitError) Error() string {
	switch e.What {
	case "bytes":
		return fmt.Sprintf("YAML input of %d bytes: larger than the limit of %d", e.Got, e.Limit)
	case "documents":
		return fmt.Sprintf("YAML input of more than %d documents", e.Limit)
	case "alias":
		return "YAML alias refers to a node that contains it"
	default:
		return fmt.Sprintf("YAML input of more than %d nodes (aliases counted as what they expand to)", e.Limit)
	}
}

// Is makes errors.Is(err, ErrLimit) true.
func (e *LimitError) Is(target error) bool { return target == ErrLimit }

func (l Limits) orDefault() Limits {
	d := DefaultLimits()
	if l.MaxBytes <= 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxNodes <= 0 {
		l.MaxNodes = d.MaxNodes
	}
	if l.MaxDocuments <= 0 {
		l.MaxDocuments = d.MaxDocuments
	}
	return l
}

// Parse parses every document of data into a node tree (yaml.DocumentNode each), within lim
// (zero fields take the defaults). A syntax error is returned as the YAML parser reports it;
// an exceeded limit as a *LimitError. An empty input has no documents.
func Parse(data []byte, lim Limits) ([]*yaml.Node, error) {
	lim = lim.orDefault()
	if len(data) > lim.MaxBytes {
		return nil, &LimitError{What: "bytes", Limit: lim.MaxBytes, Got: len(data)}
	}
	if n := nodeStarts(data, lim.MaxNodes); n > lim.MaxNodes {
		return nil, &LimitError{What: "nodes", Limit: lim.MaxNodes, Got: n}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	nodes := 0
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(docs) == lim.MaxDocuments {
			return nil, &LimitError{What: "documents", Limit: lim.MaxDocuments, Got: len(docs) + 1}
		}
		if err := count(&doc, lim.MaxNodes, &nodes); err != nil {
			return nil, err
		}
		docs = append(docs, &doc)
	}
}

// ParseOne parses data that holds at most one document and returns its node (a
// yaml.DocumentNode), or nil when data holds none.
func ParseOne(data []byte, lim Limits) (*yaml.Node, error) {
	docs, err := Parse(data, lim)
	if err != nil {
		return nil, err
	}
	switch len(docs) {
	case 0:
		return nil, nil
	case 1:
		return docs[0], nil
	default:
		return nil, fmt.Errorf("%d YAML documents where one is expected", len(docs))
	}
}

// Unmarshal decodes the one document of data into v within lim, like yaml.Unmarshal; with
// knownFields, a mapping key that v has no field for is an error (yaml.Decoder.KnownFields).
// Empty input leaves v as it is.
func Unmarshal(data []byte, v any, lim Limits, knownFields bool) error {
	doc, err := ParseOne(data, lim)
	if err != nil || doc == nil {
		return err
	}
	if !knownFields {
		return doc.Decode(v)
	}
	// The input is known to be within limits: decode it again with the decoder that checks
	// field names (yaml.Node.Decode cannot).
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	return dec.Decode(v)
}

// nodeStarts counts, up to a little past max, the bytes of data that can start a YAML node:
// flow collection starts, separators, indicators of keys, values, sequence entries and aliases,
// and line breaks (LF, CR, and the last bytes of NEL, LS and PS). It counts inside quoted
// scalars and comments too: an overcount only makes the bound looser, while skipping what
// looks like a quote could be fooled into undercounting.
func nodeStarts(data []byte, max int) int {
	n := 0
	for _, c := range data {
		switch c {
		case '[', '{', ',', ':', '-', '?', '*', '\n', '\r', 0x85, 0xa8, 0xa9:
			n++
		}
	}
	// Each of them makes at most three nodes (a key, its value and the mapping opened
	// with them); a document adds its own.
	if n > (max-3)/3 {
		return max + 1
	}
	return 3*n + 3
}

// count adds the nodes of n to *total, each alias counted as the nodes of what it refers to,
// and fails once *total passes max. An anchor's size is computed once and remembered, so a
// bomb of nested aliases costs as much as its text to count, never its expansion.
func count(n *yaml.Node, max int, total *int) error {
	sizes := map[*yaml.Node]int{}
	const inProgress = -1
	var size func(n *yaml.Node) (int, error)
	size = func(n *yaml.Node) (int, error) {
		if n == nil {
			return 0, nil
		}
		if n.Kind == yaml.AliasNode {
			s, seen := sizes[n.Alias]
			switch {
			case seen && s == inProgress:
				return 0, &LimitError{What: "alias"}
			case !seen:
				var err error
				if s, err = size(n.Alias); err != nil {
					return 0, err
				}
			}
			return s, nil
		}
		if n.Anchor != "" {
			if s, seen := sizes[n]; seen {
				if s == inProgress {
					return 0, &LimitError{What: "alias"}
				}
				return s, nil
			}
			sizes[n] = inProgress
		}
		s := 1
		for _, c := range n.Content {
			cs, err := size(c)
			if err != nil {
				return 0, err
			}
			s += cs
			if s > max {
				return 0, &LimitError{What: "nodes", Limit: max, Got: s}
			}
		}
		if n.Anchor != "" {
			sizes[n] = s
		}
		return s, nil
	}
	s, err := size(n)
	if err != nil {
		return err
	}
	*total += s
	if *total > max {
		return &LimitError{What: "nodes", Limit: max, Got: *total}
	}
	return nil
}

// Line returns the line a YAML parser error names, or 0.
func Line(err error) int {
	var line int
	msg := err.Error()
	if i := strings.Index(msg, "line "); i >= 0 {
		if _, e := fmt.Sscanf(msg[i:], "line %d", &line); e == nil {
			return line
		}
	}
	return 0
}
