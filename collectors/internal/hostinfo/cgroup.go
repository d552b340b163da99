package hostinfo

import "strings"

// Cgroup is what a process's cgroup path says about who runs it.
type Cgroup struct {
	Path        string
	SystemdUnit string
	ContainerID string
}

// ParseCgroup reads /proc/<pid>/cgroup. It uses the cgroup v2 line ("0::/path") when there
// is one, else the v1 name=systemd hierarchy. The unit is the last path element that is a
// *.service or *.scope; the container id is the last element that is 64 hex digits, bare
// or inside a known runtime's scope name (docker-<id>.scope, cri-containerd-<id>.scope,
// ...; see ContainerID).
func ParseCgroup(content string) Cgroup {
	path := CgroupPath(content)
	info := Cgroup{Path: path}
	for _, el := range strings.Split(path, "/") {
		if IsUnitName(el) {
			info.SystemdUnit = el
		}
		if id := ContainerID(el); id != "" {
			info.ContainerID = id
		}
	}
	return info
}

// CgroupPath returns the cgroup v2 path of a /proc/<pid>/cgroup file, else the v1
// name=systemd one, else "".
func CgroupPath(content string) string {
	var systemd string
	for _, line := range strings.Split(content, "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[0] == "0" && f[1] == "" {
			return f[2]
		}
		if f[1] == "name=systemd" {
			systemd = f[2]
		}
	}
	return systemd
}

// IsUnitName reports whether a cgroup path element names a systemd service or scope.
func IsUnitName(el string) bool {
	return strings.HasSuffix(el, ".service") || strings.HasSuffix(el, ".scope")
}

// Prefixes container runtimes give their systemd scopes (and cgroupfs directories).
var containerScopePrefixes = []string{"docker-", "cri-containerd-", "crio-", "libpod-", "containerd-"}

// ContainerID returns the container id a cgroup path element holds: 64 hex digits, bare
// or as <runtime>-<id>.scope for a known runtime prefix. Otherwise "".
func ContainerID(el string) string {
	if IsContainerID(el) {
		return el
	}
	name, ok := strings.CutSuffix(el, ".scope")
	if !ok {
		return ""
	}
	for _, prefix := range containerScopePrefixes {
		if id, ok := strings.CutPrefix(name, prefix); ok && IsContainerID(id) {
			return id
		}
	}
	return ""
}

// ContainerIDIn returns the container id a cgroup name holds, read more loosely than
// ContainerID: the 64 hex digits after the last '-' or ':' of the name, a .scope suffix
// removed, whatever the prefix and with or without the suffix; or the bare name.
func ContainerIDIn(name string) string {
	name = strings.TrimSuffix(name, ".scope")
	if i := strings.LastIndexAny(name, "-:"); i >= 0 {
		name = name[i+1:]
	}
	if !IsContainerID(name) {
		return ""
	}
	return name
}

// IsContainerID reports whether s is 64 lowercase hex digits.
func IsContainerID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
