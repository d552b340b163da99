package privilege

import (
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
)

// ServiceUser is the system user (and group) crumbs' processes run as once they drop root.
const ServiceUser = "crumbs"

// User is a user to run as, with its primary group.
type User struct {
	Name     string
	UID, GID int
}

// LookupUser returns the user name, or an error wrapping user.UnknownUserError when there is
// none.
func LookupUser(name string) (*User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("look up user %s: %w", name, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("user %s: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("user %s: gid %q: %w", name, u.Gid, err)
	}
	if uid == 0 {
		return nil, fmt.Errorf("user %s has uid 0: it would keep every privilege of root; give it a uid of its own", name)
	}
	return &User{Name: name, UID: uid, GID: gid}, nil
}

// EnsureUser returns the system user name, creating it (and its group) with useradd when it
// does not exist yet, and saying so in log. Installing crumbs (its packages,
// scripts/ensure-deps.sh) creates it too; this covers a binary run where nothing did.
func EnsureUser(name string, log *slog.Logger) (*User, error) {
	u, err := LookupUser(name)
	var unknown user.UnknownUserError
	if err == nil || !errors.As(err, &unknown) {
		return u, err
	}
	out, cerr := exec.Command("useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
		"--shell", "/usr/sbin/nologin", "--comment", "crumbs pipeline", name).CombinedOutput()
	if u, err := LookupUser(name); err == nil { // created, here or by another process at once
		if cerr == nil {
			log.Info("created the system user crumbs' unprivileged processes run as", "user", name, "uid", u.UID, "gid", u.GID)
		}
		return u, nil
	}
	if cerr != nil {
		return nil, fmt.Errorf("create the system user %s (useradd --system): %w: %s", name, cerr, strings.TrimSpace(string(out)))
	}
	return LookupUser(name)
}
