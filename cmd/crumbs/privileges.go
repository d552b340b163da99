package main

import (
	"fmt"
	"os"
	"slices"

	"kernel.org/pub/linux/libs/security/libcap/cap"

	crumbscollectors "github.com/threatcrumbs/crumbs/collectors"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/privilege"
)

// serviceUser returns the user crumbs' processes become when started as root (the crumbs
// system user, created when missing), or nil when not started as root: such a process keeps
// its user and only sheds capabilities.
func (rt *runtime) serviceUser() (*privilege.User, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	if rt.user == nil {
		u, err := privilege.EnsureUser(privilege.ServiceUser, rt.log)
		if err != nil {
			return nil, err
		}
		rt.user = u
	}
	return rt.user, nil
}

// dropPrivileges makes this process the service user (when root) with only the capabilities
// keep, of those it has: a capability the process was started without is left out and
// logged (what needs it says so itself when it fails).
func (rt *runtime) dropPrivileges(keep ...privilege.Capability) error {
	u, err := rt.serviceUser()
	if err != nil {
		return err
	}
	have := cap.GetProc()
	var held, missing []privilege.Capability
	for _, c := range keep {
		if ok, _ := have.GetFlag(cap.Permitted, c); ok {
			held = append(held, c)
		} else {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		rt.log.Warn("started without capabilities the collectors use once loaded: what needs them is lost (see docs/security.md, Who runs as whom)",
			"missing", privilege.Names(missing))
	}
	if err := privilege.Drop(u, held...); err != nil {
		return err
	}
	who := fmt.Sprintf("uid %d", os.Getuid())
	if u != nil {
		who = u.Name
	}
	rt.log.Info("privileges dropped", "user", who, "capabilities", privilege.Names(held))
	return nil
}

// collectorCapabilities returns what the collectors of a collect stage need once loaded.
func collectorCapabilities(s stage) []privilege.Capability {
	if l, ok := s.(labelled); ok {
		s = l.stage
	}
	if st, ok := s.(*crumbscollectors.Stage); ok {
		return crumbscollectors.RunCapabilities(st.Running()...)
	}
	return nil
}

// ownCollectorDirs gives the directories the collectors write (the spool, the file
// collector's scan baseline) to the service user, which they run as once loaded.
func (rt *runtime) ownCollectorDirs() error {
	u, err := rt.serviceUser()
	if err != nil || u == nil {
		return err
	}
	c := rt.cfg.Collectors
	dirs := []struct{ key, dir string }{{"collectors.spool.dir", c.Spool.Dir}}
	if c.File.Enabled {
		dirs = append(dirs, struct{ key, dir string }{"collectors.file.state_dir", c.File.StateDir})
	}
	for _, d := range dirs {
		if d.dir == "" {
			continue
		}
		if err := privilege.OwnDir(d.dir, u); err != nil {
			return fmt.Errorf("%s: %w", d.key, err)
		}
	}
	return nil
}

// alsoActsAs are the roles a stage's process acts as besides its own: the enricher's context
// API and directory publish as the context role.
var alsoActsAs = map[kafka.Role][]kafka.Role{kafka.RoleEnricher: {kafka.RoleContext}}

// readRoles resolves the Kafka configuration of roles (with their credentials, which only
// root may read on a host running the embedded broker) before the process drops privileges;
// rt.kafka returns them afterwards, or why they could not be had.
func (rt *runtime) readRoles(roles ...kafka.Role) {
	if rt.roles == nil {
		rt.roles = map[kafka.Role]roleConfig{}
	}
	for _, r := range slices.Compact(roles) {
		k, err := roleKafka(rt.cfg, r, rt.creds)
		rt.roles[r] = roleConfig{k, err}
	}
}

// roleConfig is a role's Kafka configuration as readRoles resolved it.
type roleConfig struct {
	cfg kafka.Config
	err error
}
