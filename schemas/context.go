package schemas

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Context record kinds; each has a compacted topic crumbs.context.<kind>.
const (
	ContextChange    = "change"
	ContextDeploy    = "deploy"
	ContextInventory = "inventory"
	ContextAccount   = "account"
)

// ContextSchemas maps each context kind to its schema's full name.
var ContextSchemas = map[string]string{
	ContextChange:    ChangeSchema,
	ContextDeploy:    DeploySchema,
	ContextInventory: InventorySchema,
	ContextAccount:   AccountSchema,
}

// Change types.
const (
	ChangePlanned     = "planned_change"
	ChangeLaunch      = "launch"
	ChangeCampaign    = "campaign"
	ChangeMaintenance = "maintenance"
)

// Account types.
const (
	AccountHuman   = "human"
	AccountService = "service"
	AccountSystem  = "system"
)

// Timestamp is a time as nanoseconds since the epoch (Avro long) that reads and writes itself
// as an RFC 3339 string in JSON and YAML, the form change systems publish.
type Timestamp int64

// TimestampOf returns t as a Timestamp.
func TimestampOf(t time.Time) Timestamp { return Timestamp(t.UnixNano()) }

// Time returns the timestamp as a time.Time in UTC.
func (t Timestamp) Time() time.Time { return time.Unix(0, int64(t)).UTC() }

// String returns the RFC 3339 form.
func (t Timestamp) String() string { return t.Time().Format(time.RFC3339Nano) }

// ParseTimestamp reads an RFC 3339 time.
func ParseTimestamp(s string) (Timestamp, error) {
	tm, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not an RFC 3339 time (e.g. 2026-11-27T06:00:00Z)", s)
	}
	return TimestampOf(tm), nil
}

// MarshalJSON writes the RFC 3339 form.
func (t Timestamp) MarshalJSON() ([]byte, error) { return json.Marshal(t.String()) }

// UnmarshalJSON reads the RFC 3339 form.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want an RFC 3339 time string: %w", err)
	}
	v, err := ParseTimestamp(s)
	*t = v
	return err
}

// MarshalYAML writes the RFC 3339 form.
func (t Timestamp) MarshalYAML() (any, error) { return t.String(), nil }

// UnmarshalYAML reads the RFC 3339 form.
func (t *Timestamp) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseTimestamp(n.Value)
	*t = v
	return err
}

// ChangeRecord is a planned change, launch, campaign or maintenance window (schema
// crumbs.context.ChangeRecord). Empty Hosts means every host of its Services.
type ChangeRecord struct {
	Kind      string           `avro:"kind" json:"kind" yaml:"kind"`
	ID        string           `avro:"id" json:"id" yaml:"id"`
	Type      string           `avro:"type" json:"type" yaml:"type"`
	Title     string           `avro:"title" json:"title" yaml:"title"`
	Services  []string         `avro:"services" json:"services" yaml:"services"`
	Hosts     []string         `avro:"hosts" json:"hosts" yaml:"hosts"`
	StartsAt  Timestamp        `avro:"starts_at" json:"starts_at" yaml:"starts_at"`
	EndsAt    Timestamp        `avro:"ends_at" json:"ends_at" yaml:"ends_at"`
	Expected  []ExpectedEffect `avro:"expected" json:"expected" yaml:"expected"`
	UpdatedAt int64            `avro:"updated_at" json:"-" yaml:"-"`
	Source    string           `avro:"source" json:"-" yaml:"-"`
}

// Artifact is one file of a deploy's manifest, as `crumbs manifest build` writes it.
type Artifact struct {
	Path   string `avro:"path" json:"path" yaml:"path"`
	SHA256 string `avro:"sha256" json:"sha256" yaml:"sha256"` // lower-case hex
	Owner  string `avro:"owner" json:"owner" yaml:"owner"`
	Group  string `avro:"group" json:"group" yaml:"group"`
	Mode   string `avro:"mode" json:"mode" yaml:"mode"` // octal, e.g. 0755
}

// DeployRecord is a deployment of a service version to hosts with its artifact manifest
// (schema crumbs.context.DeployRecord). Empty Hosts means every host of its Service.
type DeployRecord struct {
	Kind       string     `avro:"kind" json:"kind" yaml:"kind"`
	ID         string     `avro:"id" json:"id" yaml:"id"`
	Service    string     `avro:"service" json:"service" yaml:"service"`
	Version    string     `avro:"version" json:"version" yaml:"version"`
	Hosts      []string   `avro:"hosts" json:"hosts" yaml:"hosts"`
	DeployedAt Timestamp  `avro:"deployed_at" json:"deployed_at" yaml:"deployed_at"`
	Artifacts  []Artifact `avro:"artifacts" json:"artifacts" yaml:"artifacts"`
	UpdatedAt  int64      `avro:"updated_at" json:"-" yaml:"-"`
	Source     string     `avro:"source" json:"-" yaml:"-"`
}

// AccountRecord is an account's kind and login policy (schema crumbs.context.AccountRecord).
type AccountRecord struct {
	Kind           string   `avro:"kind" json:"kind" yaml:"kind"`
	ID             string   `avro:"id" json:"id" yaml:"id"`
	Name           string   `avro:"name" json:"name" yaml:"name"`
	Type           string   `avro:"type" json:"type" yaml:"type"`
	Interactive    bool     `avro:"interactive" json:"interactive" yaml:"interactive"`
	AllowedSources []string `avro:"allowed_sources" json:"allowed_sources" yaml:"allowed_sources"`
	AllowedUsers   []string `avro:"allowed_users" json:"allowed_users" yaml:"allowed_users"`
	UpdatedAt      int64    `avro:"updated_at" json:"-" yaml:"-"`
	Source         string   `avro:"source" json:"-" yaml:"-"`
}

// FieldProblem is one reason a context record is invalid: the field (a path such as
// artifacts[2].sha256) and what is wrong with it.
type FieldProblem struct {
	Field   string `json:"field"`
	Problem string `json:"problem"`
}

type problems []FieldProblem

func (p *problems) add(field, format string, a ...any) {
	*p = append(*p, FieldProblem{Field: field, Problem: fmt.Sprintf(format, a...)})
}

func (p *problems) required(field, v string) {
	if strings.TrimSpace(v) == "" {
		p.add(field, "is required")
	}
}

// Validate reports every invalid field of the change record.
func (r *ChangeRecord) Validate() []FieldProblem {
	var p problems
	p.required("id", r.ID)
	switch r.Type {
	case ChangePlanned, ChangeLaunch, ChangeCampaign, ChangeMaintenance:
	case "":
		p.add("type", "is required (planned_change, launch, campaign or maintenance)")
	default:
		p.add("type", "%q: must be planned_change, launch, campaign or maintenance", r.Type)
	}
	if len(r.Services) == 0 && len(r.Hosts) == 0 {
		p.add("services", "is required: name the services or the hosts the change affects")
	}
	nonEmpty(&p, "services", r.Services)
	nonEmpty(&p, "hosts", r.Hosts)
	if r.StartsAt == 0 {
		p.add("starts_at", "is required")
	}
	if r.EndsAt == 0 {
		p.add("ends_at", "is required")
	}
	if r.StartsAt != 0 && r.EndsAt != 0 && r.EndsAt <= r.StartsAt {
		p.add("ends_at", "%s is not after starts_at %s", r.EndsAt, r.StartsAt)
	}
	for i, e := range r.Expected {
		f := fmt.Sprintf("expected[%d]", i)
		p.required(f+".service", e.Service)
		p.required(f+".metric", e.Metric)
		if e.UpToFactor <= 0 {
			p.add(f+".up_to_factor", "%g: must be greater than 0", e.UpToFactor)
		}
	}
	return p
}

// Validate reports every invalid field of the deploy record.
func (r *DeployRecord) Validate() []FieldProblem {
	var p problems
	p.required("id", r.ID)
	p.required("service", r.Service)
	p.required("version", r.Version)
	nonEmpty(&p, "hosts", r.Hosts)
	if r.DeployedAt == 0 {
		p.add("deployed_at", "is required")
	}
	seen := map[string]int{}
	for i, a := range r.Artifacts {
		f := fmt.Sprintf("artifacts[%d]", i)
		switch {
		case a.Path == "":
			p.add(f+".path", "is required")
		case !path.IsAbs(a.Path) || path.Clean(a.Path) != a.Path:
			p.add(f+".path", "%q: must be an absolute, clean path", a.Path)
		default:
			if j, dup := seen[a.Path]; dup {
				p.add(f+".path", "%q: already listed as artifacts[%d]", a.Path, j)
			}
			seen[a.Path] = i
		}
		if err := CheckSHA256(a.SHA256); err != nil {
			p.add(f+".sha256", "%v", err)
		}
		if a.Mode != "" {
			if _, err := ParseMode(a.Mode); err != nil {
				p.add(f+".mode", "%v", err)
			}
		}
	}
	return p
}

// Validate reports every invalid field of the account record.
func (r *AccountRecord) Validate() []FieldProblem {
	var p problems
	p.required("id", r.ID)
	p.required("name", r.Name)
	switch r.Type {
	case AccountHuman, AccountService, AccountSystem:
	case "":
		p.add("type", "is required (human, service or system)")
	default:
		p.add("type", "%q: must be human, service or system", r.Type)
	}
	for i, s := range r.AllowedSources {
		if err := CheckSource(s); err != nil {
			p.add(fmt.Sprintf("allowed_sources[%d]", i), "%v", err)
		}
	}
	nonEmpty(&p, "allowed_users", r.AllowedUsers)
	return p
}

// ValidateInventory reports every invalid field of an inventory record.
func ValidateInventory(r *InventoryRecord) []FieldProblem {
	var p problems
	p.required("id", r.ID)
	p.required("host", r.Host)
	p.required("service", r.Service)
	return p
}

func nonEmpty(p *problems, field string, ss []string) {
	for i, s := range ss {
		if strings.TrimSpace(s) == "" {
			p.add(fmt.Sprintf("%s[%d]", field, i), "must not be empty")
		}
	}
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// CheckSHA256 reports whether s is a sha256 as 64 lower-case hex digits.
func CheckSHA256(s string) error {
	if s == "" {
		return fmt.Errorf("is required")
	}
	if !sha256Hex.MatchString(s) {
		if _, err := hex.DecodeString(s); err == nil && len(s) == 64 {
			return fmt.Errorf("%q: must be lower-case hex", s)
		}
		return fmt.Errorf("%q: not a sha256 (64 hex digits)", s)
	}
	return nil
}

// ParseMode reads an octal file mode such as 0755 or 755 and returns its permission bits
// (with setuid, setgid and sticky).
func ParseMode(s string) (uint32, error) {
	if len(s) < 3 || len(s) > 5 {
		return 0, fmt.Errorf("%q: not an octal mode such as 0755", s)
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return 0, fmt.Errorf("%q: not an octal mode such as 0755", s)
	}
	return uint32(v), nil
}

var hostName = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$`)

// CheckSource reports whether s is a CIDR, an IP address or a host name.
func CheckSource(s string) error {
	if strings.Contains(s, "/") {
		if _, _, err := net.ParseCIDR(s); err != nil {
			return fmt.Errorf("%q: not a CIDR (e.g. 10.20.0.0/16)", s)
		}
		return nil
	}
	if net.ParseIP(s) != nil {
		return nil
	}
	if len(s) > 253 || !hostName.MatchString(s) || allDigitsAndDots(s) {
		return fmt.Errorf("%q: neither a CIDR, an IP address nor a host name", s)
	}
	return nil
}

// allDigitsAndDots catches malformed IPv4 addresses such as 10.20.0.300 that would otherwise
// pass as host names.
func allDigitsAndDots(s string) bool {
	return strings.Trim(s, "0123456789.") == ""
}

// ReferencedServices returns the services a change names, including those of its expected effects.
func (r *ChangeRecord) ReferencedServices() []FieldRef {
	var out []FieldRef
	for i, s := range r.Services {
		out = append(out, FieldRef{Field: fmt.Sprintf("services[%d]", i), Value: s})
	}
	for i, e := range r.Expected {
		out = append(out, FieldRef{Field: fmt.Sprintf("expected[%d].service", i), Value: e.Service})
	}
	return out
}

// ReferencedServices returns the service a deploy names.
func (r *DeployRecord) ReferencedServices() []FieldRef {
	return []FieldRef{{Field: "service", Value: r.Service}}
}

// FieldRef is a value found at a field of a record.
type FieldRef struct {
	Field string
	Value string
}
