package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestNoticeNamesEveryLinkedModule fails when a Go module linked into the crumbs binary is not
// named in NOTICE, so a new dependency cannot ship without its license being stated.
func TestNoticeNamesEveryLinkedModule(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{.Module.Path}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	notice, err := os.ReadFile("../../NOTICE")
	if err != nil {
		t.Fatalf("read NOTICE: %v", err)
	}
	named := map[string]bool{}
	for _, line := range strings.Split(string(notice), "\n") {
		if strings.HasPrefix(line, "  ") {
			named[strings.TrimSpace(line)] = true
		}
	}
	seen := map[string]bool{}
	for _, m := range strings.Fields(string(out)) {
		if m == "github.com/threatcrumbs/crumbs" || seen[m] {
			continue
		}
		seen[m] = true
		if !named[m] {
			t.Errorf("NOTICE does not name %s, which the crumbs binary links: add it under its license", m)
		}
	}
	if len(seen) == 0 {
		t.Fatal("go list named no modules")
	}
}
