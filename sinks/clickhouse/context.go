package clickhouse

import (
	"fmt"
	"time"

	"github.com/threatcrumbs/crumbs/schemas"
)

// ContextRow is one version of a context record (change, deploy, inventory or account) as the
// context_* tables store it. Fields that do not belong to Kind stay empty.
type ContextRow struct {
	Kind      string // schemas.ContextChange, ContextDeploy, ContextInventory or ContextAccount
	ID        string
	UpdatedAt uint64 // ns since the epoch: the record's updated_at, or its Kafka timestamp
	Deleted   bool   // a tombstone

	Type     string   // change type or account type
	Title    string   // change
	Services []string // change
	Hosts    []string // change, deploy
	StartsAt int64    // change, ns
	EndsAt   int64    // change, ns
	// Expected effects of a change, index-aligned.
	ExpectedService, ExpectedMetric []string
	ExpectedFactor                  []float64

	Service    string // deploy, inventory
	Version    string // deploy
	DeployedAt int64  // deploy, ns
	// Artifacts of a deploy's manifest, index-aligned.
	ArtifactPath, ArtifactSHA256, ArtifactOwner, ArtifactGroup, ArtifactMode []string

	Host        string // inventory
	Environment string // inventory
	Role        string // inventory

	Name           string   // account
	Interactive    bool     // account
	AllowedSources []string // account
	AllowedUsers   []string // account
}

// contextKindOfSchema maps context schemas to their kinds.
var contextKindOfSchema = map[string]string{
	schemas.ChangeSchema: schemas.ContextChange, schemas.DeploySchema: schemas.ContextDeploy,
	schemas.InventorySchema: schemas.ContextInventory, schemas.AccountSchema: schemas.ContextAccount,
}

// ContextRowFromNative reads goavro's native form of a context record of kind. Records
// published without updated_at get fallback (the Kafka record's timestamp).
func ContextRowFromNative(kind string, native any, fallback time.Time) (*ContextRow, error) {
	m, ok := native.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("context record: want a record, got %T", native)
	}
	r := nativeReader{m: m}
	row := &ContextRow{Kind: kind, ID: r.str("id")}
	if u := r.i64("updated_at"); u > 0 {
		row.UpdatedAt = uint64(u)
	} else {
		row.UpdatedAt = uint64(max(fallback.UnixNano(), 0))
	}
	switch kind {
	case schemas.ContextChange:
		row.Type, row.Title, row.Services, row.Hosts = r.str("type"), r.str("title"), r.strs("services"), r.strs("hosts")
		row.StartsAt, row.EndsAt = r.i64("starts_at"), r.i64("ends_at")
		row.ExpectedService, row.ExpectedMetric, row.ExpectedFactor = []string{}, []string{}, []float64{}
		for _, e := range r.recs("expected") {
			er := nativeReader{m: e}
			row.ExpectedService = append(row.ExpectedService, er.str("service"))
			row.ExpectedMetric = append(row.ExpectedMetric, er.str("metric"))
			row.ExpectedFactor = append(row.ExpectedFactor, er.f64("up_to_factor"))
		}
	case schemas.ContextDeploy:
		row.Service, row.Version, row.Hosts, row.DeployedAt = r.str("service"), r.str("version"), r.strs("hosts"), r.i64("deployed_at")
		row.ArtifactPath, row.ArtifactSHA256, row.ArtifactOwner, row.ArtifactGroup, row.ArtifactMode = []string{}, []string{}, []string{}, []string{}, []string{}
		for _, a := range r.recs("artifacts") {
			ar := nativeReader{m: a}
			row.ArtifactPath = append(row.ArtifactPath, ar.str("path"))
			row.ArtifactSHA256 = append(row.ArtifactSHA256, ar.str("sha256"))
			row.ArtifactOwner = append(row.ArtifactOwner, ar.str("owner"))
			row.ArtifactGroup = append(row.ArtifactGroup, ar.str("group"))
			row.ArtifactMode = append(row.ArtifactMode, ar.str("mode"))
		}
	case schemas.ContextInventory:
		row.Host, row.Service, row.Environment, row.Role = r.str("host"), r.str("service"), r.str("environment"), r.str("role")
	case schemas.ContextAccount:
		row.Name, row.Type, row.Interactive = r.str("name"), r.str("type"), r.bool("interactive")
		row.AllowedSources, row.AllowedUsers = r.strs("allowed_sources"), r.strs("allowed_users")
	default:
		return nil, fmt.Errorf("context record: unknown kind %q", kind)
	}
	if r.err != nil {
		return nil, fmt.Errorf("context record %s: %w", kind, r.err)
	}
	return row, nil
}

// nativeReader reads fields of a goavro native record, remembering the first type error.
// Missing fields read as zero values (records of an older schema).
type nativeReader struct {
	m   map[string]any
	err error
}

func (r *nativeReader) fail(field string, want string, v any) {
	if r.err == nil {
		r.err = fmt.Errorf("field %s: want %s, got %T", field, want, v)
	}
}

func (r *nativeReader) str(f string) string {
	v, ok := r.m[f]
	if !ok || v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		r.fail(f, "string", v)
	}
	return s
}

func (r *nativeReader) i64(f string) int64 {
	switch v := r.m[f].(type) {
	case nil:
		return 0
	case int64:
		return v
	case int32:
		return int64(v)
	default:
		r.fail(f, "long", v)
		return 0
	}
}

func (r *nativeReader) f64(f string) float64 {
	switch v := r.m[f].(type) {
	case nil:
		return 0
	case float64:
		return v
	case float32:
		return float64(v)
	default:
		r.fail(f, "double", v)
		return 0
	}
}

func (r *nativeReader) bool(f string) bool {
	switch v := r.m[f].(type) {
	case nil:
		return false
	case bool:
		return v
	default:
		r.fail(f, "boolean", v)
		return false
	}
}

func (r *nativeReader) strs(f string) []string {
	out := []string{}
	v, ok := r.m[f].([]any)
	if !ok {
		if r.m[f] != nil {
			r.fail(f, "array of strings", r.m[f])
		}
		return out
	}
	for _, x := range v {
		s, ok := x.(string)
		if !ok {
			r.fail(f, "array of strings", x)
			continue
		}
		out = append(out, s)
	}
	return out
}

func (r *nativeReader) recs(f string) []map[string]any {
	var out []map[string]any
	v, _ := r.m[f].([]any)
	for _, x := range v {
		m, ok := x.(map[string]any)
		if !ok {
			r.fail(f, "array of records", x)
			continue
		}
		out = append(out, m)
	}
	return out
}

type ctxRow = *ContextRow

func dateTimeOf(ns int64) time.Time { t, _, _ := eventTime(ns); return t }

// contextTables are the table and columns of each context kind.
var contextTables = map[string]struct {
	table   string
	columns []column[ctxRow]
}{
	schemas.ContextChange: {ContextChangesTable, []column[ctxRow]{
		col("id", func(r ctxRow) string { return r.ID }),
		col("type", func(r ctxRow) string { return r.Type }),
		col("title", func(r ctxRow) string { return r.Title }),
		col("services", func(r ctxRow) []string { return nonNil(r.Services) }),
		col("hosts", func(r ctxRow) []string { return nonNil(r.Hosts) }),
		col("starts_at", func(r ctxRow) time.Time { return dateTimeOf(r.StartsAt) }),
		col("ends_at", func(r ctxRow) time.Time { return dateTimeOf(r.EndsAt) }),
		col("expected_service", func(r ctxRow) []string { return nonNil(r.ExpectedService) }),
		col("expected_metric", func(r ctxRow) []string { return nonNil(r.ExpectedMetric) }),
		col("expected_up_to_factor", func(r ctxRow) []float64 {
			if r.ExpectedFactor == nil {
				return []float64{}
			}
			return r.ExpectedFactor
		}),
		col("updated_at", func(r ctxRow) uint64 { return r.UpdatedAt }),
		col("deleted", func(r ctxRow) uint8 { return boolUInt8(r.Deleted) }),
	}},
	schemas.ContextDeploy: {ContextDeploysTable, []column[ctxRow]{
		col("id", func(r ctxRow) string { return r.ID }),
		col("service", func(r ctxRow) string { return r.Service }),
		col("version", func(r ctxRow) string { return r.Version }),
		col("hosts", func(r ctxRow) []string { return nonNil(r.Hosts) }),
		col("deployed_at", func(r ctxRow) time.Time { return dateTimeOf(r.DeployedAt) }),
		col("artifact_path", func(r ctxRow) []string { return nonNil(r.ArtifactPath) }),
		col("artifact_sha256", func(r ctxRow) []string { return nonNil(r.ArtifactSHA256) }),
		col("artifact_owner", func(r ctxRow) []string { return nonNil(r.ArtifactOwner) }),
		col("artifact_group", func(r ctxRow) []string { return nonNil(r.ArtifactGroup) }),
		col("artifact_mode", func(r ctxRow) []string { return nonNil(r.ArtifactMode) }),
		col("updated_at", func(r ctxRow) uint64 { return r.UpdatedAt }),
		col("deleted", func(r ctxRow) uint8 { return boolUInt8(r.Deleted) }),
	}},
	schemas.ContextInventory: {ContextInventoryTable, []column[ctxRow]{
		col("id", func(r ctxRow) string { return r.ID }),
		col("host", func(r ctxRow) string { return r.Host }),
		col("service", func(r ctxRow) string { return r.Service }),
		col("environment", func(r ctxRow) string { return r.Environment }),
		col("role", func(r ctxRow) string { return r.Role }),
		col("updated_at", func(r ctxRow) uint64 { return r.UpdatedAt }),
		col("deleted", func(r ctxRow) uint8 { return boolUInt8(r.Deleted) }),
	}},
	schemas.ContextAccount: {ContextAccountsTable, []column[ctxRow]{
		col("id", func(r ctxRow) string { return r.ID }),
		col("name", func(r ctxRow) string { return r.Name }),
		col("type", func(r ctxRow) string { return r.Type }),
		col("interactive", func(r ctxRow) uint8 { return boolUInt8(r.Interactive) }),
		col("allowed_sources", func(r ctxRow) []string { return nonNil(r.AllowedSources) }),
		col("allowed_users", func(r ctxRow) []string { return nonNil(r.AllowedUsers) }),
		col("updated_at", func(r ctxRow) uint64 { return r.UpdatedAt }),
		col("deleted", func(r ctxRow) uint8 { return boolUInt8(r.Deleted) }),
	}},
}
