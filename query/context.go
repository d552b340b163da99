package query

import (
	"context"
	"fmt"
	"time"
)

// Deploy is a deployment (context_deploys) with its artifact manifest.
type Deploy struct {
	ID         string     `json:"id"`
	Service    string     `json:"service"`
	Version    string     `json:"version"`
	Hosts      []string   `json:"hosts"`
	DeployedAt time.Time  `json:"deployed_at"`
	Artifacts  []Artifact `json:"artifacts"`
}

// Artifact is one file of a deploy's manifest.
type Artifact struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Owner  string `json:"owner"`
	Group  string `json:"group"`
	Mode   string `json:"mode"`
}

// InventoryEntry says which service, environment and role a host serves.
type InventoryEntry struct {
	Host        string `json:"host"`
	Service     string `json:"service"`
	Environment string `json:"environment"`
	Role        string `json:"role"`
}

// Account is an account's kind and login policy.
type Account struct {
	Name           string   `json:"name"`
	Type           string   `json:"type"`
	Interactive    bool     `json:"interactive"`
	AllowedSources []string `json:"allowed_sources"`
	AllowedUsers   []string `json:"allowed_users"`
}

// ContextInForce is what the change, deployment and inventory systems said, as it stands at a
// time: the change windows open then, the deployments up to then (newest first), the
// inventory and the accounts.
type ContextInForce struct {
	At        time.Time        `json:"at"`
	Changes   []ChangeWindow   `json:"changes"`
	Deploys   []Deploy         `json:"deploys"`
	Inventory []InventoryEntry `json:"inventory"`
	Accounts  []Account        `json:"accounts"`
}

// maxContextRows bounds the rows read per kind of context.
const maxContextRows = 1000

// Context returns the context in force at at.
func (s *Store) Context(ctx context.Context, at time.Time) (*ContextInForce, error) {
	log := &queryLog{}
	out := &ContextInForce{At: at.UTC()}
	sec := uint32(clampDateTime(at).Unix())
	err := s.query(ctx, log, "context_changes", "SELECT id, type, title, services, hosts, starts_at, ends_at FROM "+s.table(ContextChangesTable)+
		" FINAL WHERE deleted = 0 AND starts_at <= toDateTime(?) AND ends_at >= toDateTime(?) ORDER BY starts_at, id"+fmt.Sprintf(" LIMIT %d", maxContextRows),
		[]any{sec, sec}, func(r scanner) error {
			var c ChangeWindow
			err := r.Scan(&c.ID, &c.Type, &c.Title, &c.Services, &c.Hosts, &c.StartsAt, &c.EndsAt)
			c.StartsAt, c.EndsAt = c.StartsAt.UTC(), c.EndsAt.UTC()
			out.Changes = append(out.Changes, c)
			return err
		})
	if err != nil {
		return nil, err
	}
	if out.Deploys, err = s.deploys(ctx, log, "deployed_at <= toDateTime(?)", []any{sec}); err != nil {
		return nil, err
	}
	err = s.query(ctx, log, "context_inventory", "SELECT host, service, environment, role FROM "+s.table(ContextInventoryTable)+
		" FINAL WHERE deleted = 0 ORDER BY host, service"+fmt.Sprintf(" LIMIT %d", maxContextRows), nil, func(r scanner) error {
		var e InventoryEntry
		err := r.Scan(&e.Host, &e.Service, &e.Environment, &e.Role)
		out.Inventory = append(out.Inventory, e)
		return err
	})
	if err != nil {
		return nil, err
	}
	err = s.query(ctx, log, "context_accounts", "SELECT name, type, interactive, allowed_sources, allowed_users FROM "+s.table(ContextAccountsTable)+
		" FINAL WHERE deleted = 0 ORDER BY name"+fmt.Sprintf(" LIMIT %d", maxContextRows), nil, func(r scanner) error {
		var a Account
		var interactive uint8
		err := r.Scan(&a.Name, &a.Type, &interactive, &a.AllowedSources, &a.AllowedUsers)
		a.Interactive = interactive == 1
		out.Accounts = append(out.Accounts, a)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// deploys returns the deployments that match cond, newest first.
func (s *Store) deploys(ctx context.Context, log *queryLog, cond string, args []any) ([]Deploy, error) {
	var out []Deploy
	q := "SELECT id, service, version, hosts, deployed_at, artifact_path, artifact_sha256, artifact_owner, artifact_group, artifact_mode FROM " +
		s.table(ContextDeploysTable) + " FINAL WHERE deleted = 0 AND " + cond + fmt.Sprintf(" ORDER BY deployed_at DESC, id LIMIT %d", maxContextRows)
	err := s.query(ctx, log, "context_deploys", q, args, func(r scanner) error {
		var d Deploy
		var path, sha, owner, group, mode []string
		if err := r.Scan(&d.ID, &d.Service, &d.Version, &d.Hosts, &d.DeployedAt, &path, &sha, &owner, &group, &mode); err != nil {
			return err
		}
		d.DeployedAt = d.DeployedAt.UTC()
		for i := range path {
			if i < len(sha) && i < len(owner) && i < len(group) && i < len(mode) {
				d.Artifacts = append(d.Artifacts, Artifact{Path: path[i], SHA256: sha[i], Owner: owner[i], Group: group[i], Mode: mode[i]})
			}
		}
		out = append(out, d)
		return nil
	})
	return out, err
}

// ServiceEdge is a service's outbound connections to one destination and port in a range.
type ServiceEdge struct {
	Source        string `json:"source"`
	Destination   string `json:"destination"`
	Port          int32  `json:"port"`
	Protocol      string `json:"protocol"`
	Connections   uint64 `json:"connections"`
	BytesSent     int64  `json:"bytes_sent"`
	BytesReceived int64  `json:"bytes_received"`
}

// maxEdges bounds the edges of a service graph (the busiest).
const maxEdges = 500

// ServiceGraph returns who talked to whom in [from, to], from service_graph_minute: one edge
// per source service, destination, port and protocol, busiest first.
func (s *Store) ServiceGraph(ctx context.Context, from, to time.Time) ([]ServiceEdge, error) {
	q := "SELECT src_service, dst, dst_port, protocol, sum(connections) AS c, sum(bytes_sent), sum(bytes_received) FROM " +
		s.table("service_graph_minute") + " WHERE minute BETWEEN toDateTime(?) AND toDateTime(?) GROUP BY src_service, dst, dst_port, protocol" +
		fmt.Sprintf(" ORDER BY c DESC, src_service, dst, dst_port LIMIT %d", maxEdges)
	var out []ServiceEdge
	err := s.query(ctx, &queryLog{}, "service_graph", q, []any{uint32(clampDateTime(from.Truncate(time.Minute)).Unix()), uint32(clampDateTime(to).Unix())},
		func(r scanner) error {
			var e ServiceEdge
			err := r.Scan(&e.Source, &e.Destination, &e.Port, &e.Protocol, &e.Connections, &e.BytesSent, &e.BytesReceived)
			out = append(out, e)
			return err
		})
	return out, err
}
