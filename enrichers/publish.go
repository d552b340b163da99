package enrichers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.yaml.in/yaml/v3"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/schemas"
)

// ErrInvalidContext marks context input that is refused; nothing of it is published.
var ErrInvalidContext = errors.New("invalid context")

// ContextKinds are the kinds of context records that can be published now.
var ContextKinds = []string{"inventory"}

// ContextRecord is one validated context record ready to publish.
type ContextRecord struct {
	Kind   string
	ID     string
	Schema string
	Native map[string]any
}

// ParseContext reads context records of one kind from JSON or YAML (one record or a list) and
// validates all of them. The error names each bad record (by position and id), the field and
// the problem, and wraps ErrInvalidContext.
func ParseContext(kind, source string, data []byte) ([]ContextRecord, error) {
	if kind != "inventory" {
		return nil, fmt.Errorf("%w: %s: unknown kind %q (have: %s)", ErrInvalidContext, source, kind, strings.Join(ContextKinds, ", "))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: %s: not JSON or YAML: %v", ErrInvalidContext, source, err)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%w: %s: no records", ErrInvalidContext, source)
	}
	nodes := []*yaml.Node{doc.Content[0]}
	if doc.Content[0].Kind == yaml.SequenceNode {
		nodes = doc.Content[0].Content
	}
	var errs []error
	var out []ContextRecord
	now := time.Now().UnixNano()
	for i, n := range nodes {
		where := fmt.Sprintf("%s: record %d (line %d)", source, i+1, n.Line)
		var rec schemas.InventoryRecord
		if err := decodeStrict(n, &rec); err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", where, err))
			continue
		}
		if rec.ID != "" {
			where += fmt.Sprintf(" id %q", rec.ID)
		}
		if rec.Kind != "" && rec.Kind != kind {
			errs = append(errs, fmt.Errorf("%s: field kind: %q, but --kind is %q", where, rec.Kind, kind))
		}
		for _, f := range []struct{ name, v string }{{"id", rec.ID}, {"host", rec.Host}, {"service", rec.Service}} {
			if strings.TrimSpace(f.v) == "" {
				errs = append(errs, fmt.Errorf("%s: field %s: is required", where, f.name))
			}
		}
		rec.UpdatedAt = now
		out = append(out, ContextRecord{Kind: kind, ID: rec.ID, Schema: schemas.InventorySchema, Native: rec.Native()})
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w:\n%w", ErrInvalidContext, errors.Join(errs...))
	}
	return out, nil
}

// decodeStrict decodes a YAML node refusing unknown fields.
func decodeStrict(n *yaml.Node, v any) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	return dec.Decode(v)
}

// PublishContext produces validated records to their compacted topic, keyed by id, and waits
// until the brokers acknowledged all of them.
func PublishContext(ctx context.Context, kcfg kafka.Config, serde *avro.Serde, recs []ContextRecord) error {
	records := make([]*kgo.Record, 0, len(recs))
	for _, r := range recs {
		v, err := serde.Encode(nil, r.Schema, r.Native)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", r.Kind, r.ID, err)
		}
		records = append(records, &kgo.Record{Topic: kcfg.Topics().Context(r.Kind), Key: []byte(r.ID), Value: v})
	}
	cl, err := kgo.NewClient(append(kcfg.ClientOpts(), kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, records...).FirstErr(); err != nil {
		return fmt.Errorf("publish context: %w", err)
	}
	return nil
}
