package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestScanCommand runs `crumbs scan` twice around a change and checks the second run
// prints exactly the changed file with the changed attribute.
func TestScanCommand(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, []byte("v1 "+p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("CRUMBS_COLLECTORS_FILE_PATHS", dir)
	t.Setenv("CRUMBS_COLLECTORS_FILE_STATE_DIR", filepath.Join(t.TempDir(), "state"))
	scan := func() []string {
		out := runCrumbs(t, rootWith(scanCmd()), "scan", "--no-progress")
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(l)
			if len(f) >= 3 && f[0] != "scan:" {
				lines = append(lines, f[0]+" "+f[1]+" "+f[2])
			}
		}
		return lines
	}
	first := scan()
	if len(first) != 2 || !strings.HasPrefix(first[0], "added "+a) || !strings.HasPrefix(first[1], "added "+b) {
		t.Fatalf("first scan: %q, want a and b added", first)
	}
	if err := os.Chmod(b, 0o600); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"changed " + b + " mode"}, scan()); diff != "" {
		t.Errorf("second scan (-want +got):\n%s", diff)
	}
}
