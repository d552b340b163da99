package file

import (
	"context"
	"fmt"
	"io/fs"
	"math"
	"path"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/threatcrumbs/crumbs/collectors/internal/hostinfo"
)

// Artifact is one file of a deploy record's artifact manifest (DESIGN.md, context records).
type Artifact struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Owner  string `json:"owner"`
	Group  string `json:"group"`
	Mode   string `json:"mode"`
}

// DeployManifest is a deploy context record in the JSON form change systems publish.
type DeployManifest struct {
	Kind       string     `json:"kind"` // always "deploy"
	ID         string     `json:"id"`
	Service    string     `json:"service"`
	Version    string     `json:"version"`
	Hosts      []string   `json:"hosts"`
	DeployedAt string     `json:"deployed_at,omitempty"` // RFC 3339
	Artifacts  []Artifact `json:"artifacts"`
}

// BuildArtifacts walks a build output directory and returns one artifact per regular file,
// sorted by path: its path once installed (prefix joined with its path under dir), sha256,
// owner and group names (numeric ids when the host does not know them) and mode. Symbolic
// links and other special files are left out.
func BuildArtifacts(ctx context.Context, dir, prefix string) ([]Artifact, error) {
	if !path.IsAbs(prefix) {
		return nil, fmt.Errorf("install prefix %q: must be absolute", prefix)
	}
	names := newOwners(hostinfo.Here)
	var out []Artifact
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("read build output: %w", err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return fmt.Errorf("path of %s under %s: %w", p, dir, err)
		}
		a, err := lstatAttrs(hostinfo.Here, p)
		if err != nil {
			return fmt.Errorf("stat build output: %w", err)
		}
		sum, err := hashFile(hostinfo.Here, p, math.MaxInt64)
		if err != nil {
			return err
		}
		out = append(out, Artifact{
			Path:   path.Join(prefix, filepath.ToSlash(rel)),
			SHA256: sum,
			Owner:  nameOr(names.user(a.UID), a.UID),
			Group:  nameOr(names.group(a.GID), a.GID),
			Mode:   modeString(a.Mode),
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Artifact) int { return compareStrings(a.Path, b.Path) })
	return out, nil
}

func nameOr(name string, id uint32) string {
	if name != "" {
		return name
	}
	return strconv.FormatUint(uint64(id), 10)
}
