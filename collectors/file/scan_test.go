package file

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/collectors/internal/hostinfo"
	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/schemas"
)

// scanSummary is what TestScanDiff checks of a scan event.
type scanSummary struct {
	Action, Path, SHA256, Mode string
	Size                       int64
	Changed                    []string
}

func summarizeScan(t *testing.T, events []*schemas.FileEvent) []scanSummary {
	t.Helper()
	var out []scanSummary
	for _, e := range events {
		if e.Kind != schemas.KindFile || e.Host != testHost || e.EventID == "" {
			t.Errorf("event %s of %s: envelope %+v", e.Action, e.File.Path, e.Envelope)
		}
		out = append(out, scanSummary{Action: e.Action, Path: e.File.Path, SHA256: e.File.SHA256, Mode: e.File.Mode, Size: e.File.Size, Changed: e.File.Changed})
	}
	return out
}

// wantScan returns the summary of path as it is on disk now (a removed file is reported
// with its last known attributes).
func wantScan(t *testing.T, action, path string, changed ...string) scanSummary {
	t.Helper()
	s := scanSummary{Action: action, Path: path, Changed: changed}
	a, err := lstatAttrs(hostinfo.Here, path)
	if err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	s.SHA256, s.Mode, s.Size = sha256Of(t, path), modeString(a.Mode), a.Size
	return s
}

// TestScanDiff runs scans between changes and checks that each reports exactly the changed
// file and attribute, and that files a stat finds unchanged are not hashed again.
func TestScanDiff(t *testing.T) {
	dir := tempDir(t)
	watched := filepath.Join(dir, "watched")
	excluded := filepath.Join(watched, "cache")
	for _, d := range []string{watched, excluded, filepath.Join(dir, "other")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	a, b, c := filepath.Join(watched, "a"), filepath.Join(watched, "b"), filepath.Join(watched, "c")
	write := func(p, content string) func(*testing.T) {
		return func(t *testing.T) {
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	var gone scanSummary // a, as it was before it was removed
	cfg := testConfig(t, watched)
	cfg.ExcludePaths = []string{excluded}
	s, err := NewScanner(cfg, testHost, nil)
	if err != nil {
		t.Fatalf("NewScanner: %v", err)
	}
	steps := []struct {
		name   string
		change func(*testing.T)
		want   func(*testing.T) []scanSummary
		hashed uint64 // files hashed by this scan
	}{
		{"first scan adds every file", func(t *testing.T) {
			write(a, "alpha")(t)
			write(b, "bravo")(t)
			write(filepath.Join(excluded, "x"), "excluded")(t)
			write(filepath.Join(dir, "other", "y"), "not watched")(t)
		}, func(t *testing.T) []scanSummary {
			return []scanSummary{wantScan(t, schemas.ActionScanAdded, a), wantScan(t, schemas.ActionScanAdded, b)}
		}, 2},
		{"nothing changed", func(*testing.T) {}, func(*testing.T) []scanSummary { return nil }, 0},
		{"content changed, same size", write(a, "ALPHA"), func(t *testing.T) []scanSummary {
			return []scanSummary{wantScan(t, schemas.ActionScanChanged, a, "sha256")}
		}, 1},
		{"content and size changed", write(b, "bravo!"), func(t *testing.T) []scanSummary {
			return []scanSummary{wantScan(t, schemas.ActionScanChanged, b, "sha256", "size")}
		}, 1},
		{"mode changed", func(t *testing.T) {
			if err := os.Chmod(a, 0o600); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T) []scanSummary {
			return []scanSummary{wantScan(t, schemas.ActionScanChanged, a, "mode")}
		}, 1}, // the ctime changed: a stat cannot tell the contents did not
		{"owner changed", func(t *testing.T) {
			testenv.RequireRoot(t) // the steps after do not depend on this one
			if err := os.Chown(b, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T) []scanSummary {
			return []scanSummary{wantScan(t, schemas.ActionScanChanged, b, "owner", "group")}
		}, 1},
		{"added and removed", func(t *testing.T) {
			write(c, "charlie")(t)
			gone = wantScan(t, schemas.ActionScanRemoved, a)
			if err := os.Remove(a); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T) []scanSummary {
			return []scanSummary{gone, wantScan(t, schemas.ActionScanAdded, c)}
		}, 1},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			step.change(t)
			before := s.Stats().Hashed
			var last, total int
			events, err := s.Scan(context.Background(), func(done, n int) { last, total = done, n })
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			if diff := cmp.Diff(step.want(t), summarizeScan(t, events)); diff != "" {
				t.Errorf("scan events (-want +got):\n%s", diff)
			}
			if got := s.Stats().Hashed - before; got != step.hashed {
				t.Errorf("files hashed: %d, want %d", got, step.hashed)
			}
			if last != total || total == 0 {
				t.Errorf("progress ended at %d of %d", last, total)
			}
		})
	}
}

// TestScanCancelled checks that a cancelled scan saves no baseline.
func TestScanCancelled(t *testing.T) {
	dir := tempDir(t)
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, dir)
	s, err := NewScanner(cfg, testHost, nil)
	if err != nil {
		t.Fatalf("NewScanner: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Scan(ctx, nil); err == nil {
		t.Fatal("Scan with a cancelled context: no error")
	}
	if _, err := os.Stat(s.StatePath()); !os.IsNotExist(err) {
		t.Errorf("baseline after a cancelled scan: %v, want none", err)
	}
}
