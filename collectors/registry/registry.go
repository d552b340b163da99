// Package registry lists the collectors crumbs has, each declared once by its factory, in
// the order the collect stage builds them: the network collector before the system
// collector, which takes the network's per-cgroup totals.
//
// In: nothing. Out: the factories (collectors.Factory) the collect stage and crumbs doctor
// loop over.
package registry

import (
	"github.com/threatcrumbs/crumbs/collectors"
	"github.com/threatcrumbs/crumbs/collectors/file"
	"github.com/threatcrumbs/crumbs/collectors/identity"
	"github.com/threatcrumbs/crumbs/collectors/network"
	"github.com/threatcrumbs/crumbs/collectors/process"
	"github.com/threatcrumbs/crumbs/collectors/system"
)

// Factories returns every collector's factory, in build order.
func Factories() []collectors.Factory {
	return []collectors.Factory{process.Factory(), network.Factory(), file.Factory(), identity.Factory(), system.Factory()}
}
