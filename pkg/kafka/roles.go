package kafka

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Role is a principal of crumbs on Kafka. Every stage and command authenticates as its role,
// and the brokers let it do only what the role table below grants: a collector cannot publish
// a change window, an enricher cannot delete crumbs.alerts, a local user with no role can do
// nothing at all. The embedded broker enforces the table itself; for a real cluster
// `crumbs kafka acls` prints it as kafka-acls.sh commands.
type Role string

// The roles. Their user names are crumbs-<role> (Role.Username).
const (
	RoleAdmin     Role = "admin"
	RoleCollector Role = "collector"
	RoleEnricher  Role = "enricher"
	RoleDetector  Role = "detector"
	RoleSink      Role = "sink"
	RoleAlerts    Role = "alerts"
	RoleContext   Role = "context"
	RoleTriage    Role = "triage"
	RoleDLQReplay Role = "dlq-replay"
)

// Username is the role's SASL user, and with "User:" its Kafka principal.
func (r Role) Username() string { return "crumbs-" + string(r) }

// Grant is one ACL of a role: Ops are allowed on the resources of a type named Name, or, when
// Prefixed, whose names start with Name. Kafka implies Describe from Read, Write, Delete and
// Alter, so grants never list it beside those.
type Grant struct {
	Resource kmsg.ACLResourceType // topic, group, transactional id or cluster
	Name     string               // "kafka-cluster" for the cluster
	Prefixed bool
	Ops      []kmsg.ACLOperation
}

// Scope names what the grants are about: the topics under the configured prefix, and the
// consumer group of each role that consumes as one. A role's transactional ids are its group
// followed by "-" (the stages use group + "-" + host name).
type Scope struct {
	Topics Topics
	Groups map[Role]string
}

// clusterName is the resource name of the cluster in Kafka's ACLs.
const clusterName = "kafka-cluster"

const (
	opRead            = kmsg.ACLOperationRead
	opWrite           = kmsg.ACLOperationWrite
	opCreate          = kmsg.ACLOperationCreate
	opDelete          = kmsg.ACLOperationDelete
	opAlter           = kmsg.ACLOperationAlter
	opDescribe        = kmsg.ACLOperationDescribe
	opDescribeConfigs = kmsg.ACLOperationDescribeConfigs
	opAlterConfigs    = kmsg.ACLOperationAlterConfigs
)

// roleTable is every role and what it may do: one line per role, over topic name patterns
// from the configuration. A new stage adds a line (and a constant above).
var roleTable = []struct {
	role   Role
	does   string
	grants func(s Scope) []Grant
}{
	{RoleAdmin, "creates, configures and deletes topics; reads consumer lag (the superuser of the embedded broker)", func(s Scope) []Grant {
		g := []Grant{
			{Resource: kmsg.ACLResourceTypeCluster, Name: clusterName, Ops: []kmsg.ACLOperation{opCreate, opDescribe, opDescribeConfigs}},
			{Resource: kmsg.ACLResourceTypeTopic, Name: s.Topics.Prefix + ".", Prefixed: true,
				Ops: []kmsg.ACLOperation{opCreate, opDelete, opAlter, opDescribeConfigs, opAlterConfigs}},
		}
		groups := slices.Sorted(maps.Values(s.Groups))
		for _, grp := range slices.Compact(groups) {
			if grp != "" {
				g = append(g, Grant{Resource: kmsg.ACLResourceTypeGroup, Name: grp, Ops: []kmsg.ACLOperation{opDescribe}})
			}
		}
		return g
	}},
	{RoleCollector, "produces raw events and health events", func(s Scope) []Grant {
		return []Grant{writes(s.Topics.Prefix+".raw.", true), writes(s.Topics.Health(), false)}
	}},
	{RoleEnricher, "reads raw events and context, writes enriched events and dead letters, in transactions", func(s Scope) []Grant {
		return append([]Grant{reads(s.Topics.Prefix+".raw.", true), reads(s.Topics.Prefix+".context.", true),
			writes(s.Topics.Prefix+".enriched.", true), writes(s.Topics.DLQ(), false)}, s.own(RoleEnricher, true)...)
	}},
	{RoleDetector, "reads enriched events and false positives' suppressions (triage state), writes alerts, incidents, its window-state changelog and dead letters, in transactions", func(s Scope) []Grant {
		g := []Grant{reads(s.Topics.Prefix+".enriched.", true), reads(s.Topics.Triage(), false), writes(s.Topics.Alerts(), false),
			writes(s.Topics.Incidents(), false), writes(s.Topics.DLQ(), false)}
		if grp := s.Groups[RoleDetector]; grp != "" {
			g = append(g, readsWrites(s.Topics.State(grp), false))
		}
		return append(g, s.own(RoleDetector, true)...)
	}},
	{RoleSink, "reads what it stores (enriched events, alerts, triage state, context, its replayed dead letters), writes dead letters", func(s Scope) []Grant {
		return append([]Grant{reads(s.Topics.Prefix+".enriched.", true), reads(s.Topics.Alerts(), false), reads(s.Topics.Triage(), false),
			reads(s.Topics.Prefix+".context.", true), reads(s.Topics.Retry("sink"), false), writes(s.Topics.DLQ(), false)},
			s.own(RoleSink, false)...)
	}},
	{RoleAlerts, "reads alerts, incidents and triage state, keeps delivery state, writes dead letters", func(s Scope) []Grant {
		return append([]Grant{reads(s.Topics.Alerts(), false), reads(s.Topics.Incidents(), false), reads(s.Topics.Triage(), false),
			readsWrites(s.Topics.Deliveries(), false), writes(s.Topics.DLQ(), false)}, s.own(RoleAlerts, false)...)
	}},
	{RoleContext, "publishes and deletes context records (CLI, context API, context directory); reads them to validate against the inventory", func(s Scope) []Grant {
		return []Grant{readsWrites(s.Topics.Prefix+".context.", true)}
	}},
	{RoleTriage, "reads alerts, reads and writes triage state (console, CLI)", func(s Scope) []Grant {
		return append([]Grant{reads(s.Topics.Alerts(), false), readsWrites(s.Topics.Triage(), false)}, s.own(RoleTriage, false)...)
	}},
	{RoleDLQReplay, "reads dead letters and sends them back to the stage they failed in (raw, enriched, retry, alerts, incidents and triage topics), marking them replayed, in transactions", func(s Scope) []Grant {
		return []Grant{readsWrites(s.Topics.DLQ(), false), writes(s.Topics.Prefix+".raw.", true),
			writes(s.Topics.Prefix+".enriched.", true), writes(s.Topics.Prefix+".retry.", true),
			writes(s.Topics.Alerts(), false), writes(s.Topics.Incidents(), false), writes(s.Topics.Triage(), false),
			{Resource: kmsg.ACLResourceTypeTransactionalId, Name: DLQReplayTransactionalID(s.Topics), Ops: []kmsg.ACLOperation{opWrite}}}
	}},
}

func reads(name string, prefixed bool) Grant {
	return Grant{Resource: kmsg.ACLResourceTypeTopic, Name: name, Prefixed: prefixed, Ops: []kmsg.ACLOperation{opRead}}
}

func writes(name string, prefixed bool) Grant {
	return Grant{Resource: kmsg.ACLResourceTypeTopic, Name: name, Prefixed: prefixed, Ops: []kmsg.ACLOperation{opWrite}}
}

func readsWrites(name string, prefixed bool) Grant {
	return Grant{Resource: kmsg.ACLResourceTypeTopic, Name: name, Prefixed: prefixed, Ops: []kmsg.ACLOperation{opRead, opWrite}}
}

// own grants a role its consumer group and, for a transactional stage, its transactional ids.
func (s Scope) own(r Role, transactional bool) []Grant {
	grp := s.Groups[r]
	if grp == "" {
		return nil
	}
	g := []Grant{{Resource: kmsg.ACLResourceTypeGroup, Name: grp, Ops: []kmsg.ACLOperation{opRead}}}
	if transactional {
		g = append(g, Grant{Resource: kmsg.ACLResourceTypeTransactionalId, Name: grp + "-", Prefixed: true, Ops: []kmsg.ACLOperation{opWrite}})
	}
	return g
}

// Roles lists every role, in the order of the role table.
func Roles() []Role {
	out := make([]Role, len(roleTable))
	for i, r := range roleTable {
		out[i] = r.role
	}
	return out
}

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	if slices.Contains(Roles(), Role(s)) {
		return Role(s), nil
	}
	names := make([]string, 0, len(roleTable))
	for _, r := range roleTable {
		names = append(names, string(r.role))
	}
	return "", fmt.Errorf("unknown role %q (have: %s)", s, strings.Join(names, ", "))
}

// Does says in a few words what the role is for.
func (r Role) Does() string {
	for _, e := range roleTable {
		if e.role == r {
			return e.does
		}
	}
	return ""
}

// Grants returns what the role may do under this scope.
func (s Scope) Grants(r Role) []Grant {
	for _, e := range roleTable {
		if e.role == r {
			return e.grants(s)
		}
	}
	return nil
}

// aclKey is one ACL as the brokers store it: an allow of one operation by one principal.
type aclKey struct {
	principal string
	resource  kmsg.ACLResourceType
	name      string
	pattern   kmsg.ACLResourcePatternType
	op        kmsg.ACLOperation
}

// acls returns every role's grants as single ACLs.
func (s Scope) acls() map[aclKey]bool {
	out := map[aclKey]bool{}
	for _, r := range Roles() {
		for _, g := range s.Grants(r) {
			pattern := kmsg.ACLResourcePatternTypeLiteral
			if g.Prefixed {
				pattern = kmsg.ACLResourcePatternTypePrefixed
			}
			for _, op := range g.Ops {
				out[aclKey{principal: "User:" + r.Username(), resource: g.Resource, name: g.Name, pattern: pattern, op: op}] = true
			}
		}
	}
	return out
}
