package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Browser is a headless Chromium for a test: its executable and a fresh profile folder.
type Browser struct {
	// Path is the chromium executable.
	Path string
	// Flags are the command-line flags to start it with: headless, no sandbox (tests run as
	// root), nothing fetched from the network (this machine's network is closed), a fresh
	// profile in a temporary folder.
	Flags []string
	// OutputDir is where the test writes what it keeps (screenshots): $CRUMBS_TEST_OUTPUT/<test
	// name> when that is set, else a temporary folder kept after the test; logged.
	OutputDir string
}

// RequireBrowser returns Debian's chromium (installed by scripts/ensure-deps.sh), or skips the
// test when there is none (fails it under CRUMBS_STRICT=1).
func RequireBrowser(t testing.TB) Browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		missing(t, "no chromium in PATH (scripts/ensure-deps.sh installs Debian's chromium)")
	}
	out := os.Getenv("CRUMBS_TEST_OUTPUT")
	if out != "" {
		out = filepath.Join(out, filepath.Base(t.Name()))
	} else {
		if out, err = os.MkdirTemp("", "crumbs-test-output-"); err != nil {
			t.Fatalf("test output folder: %v", err)
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatalf("test output folder: %v", err)
	}
	t.Logf("browser test output (screenshots) in %s", out)
	return Browser{Path: path, OutputDir: out, Flags: []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--no-first-run", "--disable-default-apps", "--disable-extensions", "--mute-audio",
		"--user-data-dir=" + t.TempDir(),
	}}
}
