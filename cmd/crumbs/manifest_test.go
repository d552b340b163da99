package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
)

// rootWith returns the root command with cmds added when the root does not have them yet.
func rootWith(cmds ...*cobra.Command) *cobra.Command {
	root := newRoot()
	have := map[string]bool{}
	for _, c := range root.Commands() {
		have[c.Name()] = true
	}
	for _, c := range cmds {
		if !have[c.Name()] {
			root.AddCommand(c)
		}
	}
	return root
}

// runCrumbs runs the root command with args and returns its standard output.
func runCrumbs(t *testing.T, root *cobra.Command, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		t.Fatalf("crumbs %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// TestManifestBuild builds the manifest of a directory and checks it parses as a deploy
// record whose artifacts match sha256sum(1) and the files' modes.
func TestManifestBuild(t *testing.T) {
	dir := t.TempDir()
	files := map[string]os.FileMode{"bin/shop": 0o755, "conf/shop.yaml": 0o640, "README": 0o644}
	for name, mode := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("contents of "+name), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("shop", filepath.Join(dir, "bin", "link")); err != nil {
		t.Fatal(err)
	}
	out := runCrumbs(t, rootWith(manifestCmd()), "manifest", "build", dir,
		"--id", "DEP-77", "--service", "shop", "--version", "1.4.2", "--prefix", "/opt/shop",
		"--host", "web-1", "--owner", "shop", "--group", "shop")

	type artifact struct{ Path, SHA256, Owner, Group, Mode string }
	var got struct {
		Kind, ID, Service, Version string
		Hosts                      []string
		Artifacts                  []artifact
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decode manifest: %v\n%s", err, out)
	}

	want := got
	want.Kind, want.ID, want.Service, want.Version, want.Hosts = "deploy", "DEP-77", "shop", "1.4.2", []string{"web-1"}
	want.Artifacts = nil
	sums := sha256sum(t, dir, "README", "bin/shop", "conf/shop.yaml")
	for _, name := range []string{"README", "bin/shop", "conf/shop.yaml"} {
		want.Artifacts = append(want.Artifacts, artifact{
			Path: "/opt/shop/" + name, SHA256: sums[name], Owner: "shop", Group: "shop",
			Mode: fmt.Sprintf("%04o", uint32(files[name].Perm())),
		})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("manifest (-want +got):\n%s", diff)
	}
}

// sha256sum runs sha256sum(1) on names in dir.
func sha256sum(t *testing.T, dir string, names ...string) map[string]string {
	t.Helper()
	cmd := exec.Command("sha256sum", names...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sha256sum: %v", err)
	}
	sums := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 {
			sums[f[1]] = f[0]
		}
	}
	return sums
}
