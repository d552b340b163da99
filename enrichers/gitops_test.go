package enrichers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/schemas"
)

// TestContextDirRefusesUntrustedFiles checks that the directory sync reads only regular files
// of at most 1 MiB inside the directory: a symlink to a file outside, to a FIFO, to /dev/zero,
// a FIFO itself and an oversized file are refused with a reason naming the problem, nothing of
// them is published, the sync returns (a FIFO cannot block it) and the good files beside them
// are published.
func TestContextDirRefusesUntrustedFiles(t *testing.T) {
	kcfg := startKafka(t)
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	secret := filepath.Join(outside, "outside.yaml")
	if err := os.WriteFile(secret, []byte("{kind: inventory, id: outside-1, host: outside-1, service: shop}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	outsideFIFO := filepath.Join(outside, "fifo")
	if err := syscall.Mkfifo(outsideFIFO, 0o644); err != nil {
		t.Fatal(err)
	}
	big := "# " + strings.Repeat("x", MaxContextFileBytes) + "\n"

	type setup func(t *testing.T, dir string)
	link := func(target, name string) setup {
		return func(t *testing.T, dir string) {
			if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name    string
		setup   setup
		refused map[string]string // file name: why
		held    []string          // inventory ids published, beside the good file's
	}{
		{"symlink to a file outside", link(secret, "stolen.yaml"),
			map[string]string{"stolen.yaml": fmt.Sprintf(`symlink to %q leaves the directory or cannot be opened: path escapes from parent`, secret)}, nil},
		{"relative symlink climbing out", link("../"+filepath.Base(outside)+"/outside.yaml", "climb.yaml"),
			map[string]string{"climb.yaml": fmt.Sprintf(`symlink to %q leaves the directory or cannot be opened: path escapes from parent`, "../"+filepath.Base(outside)+"/outside.yaml")}, nil},
		{"symlink to a FIFO outside", link(outsideFIFO, "fifo.yaml"),
			map[string]string{"fifo.yaml": fmt.Sprintf(`symlink to %q leaves the directory or cannot be opened: path escapes from parent`, outsideFIFO)}, nil},
		{"FIFO inside", func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "pipe.yaml"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, map[string]string{"pipe.yaml": "not a regular file (a FIFO)"}, nil},
		{"symlink to a FIFO inside", func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644); err != nil {
				t.Fatal(err)
			}
			link("pipe", "pipe.json")(t, dir)
		}, map[string]string{"pipe.json": "not a regular file (a FIFO)"}, nil},
		{"symlink to /dev/zero", link("/dev/zero", "zero.yaml"),
			map[string]string{"zero.yaml": `symlink to "/dev/zero" leaves the directory or cannot be opened: path escapes from parent`}, nil},
		{"dangling symlink", link("gone.yaml", "dangling.yaml"),
			map[string]string{"dangling.yaml": `symlink to "gone.yaml" leads nowhere`}, nil},
		{"oversized file", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "big.yaml"), []byte(big), 0o644); err != nil {
				t.Fatal(err)
			}
		}, map[string]string{"big.yaml": fmt.Sprintf("%d bytes: larger than the limit of %d", len(big), MaxContextFileBytes)}, nil},
		{"symlink to a file inside is read", func(t *testing.T, dir string) {
			if err := os.MkdirAll(filepath.Join(dir, "shared"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "shared", "web.txt"), []byte("{kind: inventory, id: linked-1, host: linked-1, service: shop}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			link("shared/web.txt", "linked.yaml")(t, dir)
		}, map[string]string{}, []string{"linked-1"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			good := fmt.Sprintf("good-%d", i)
			if err := os.WriteFile(filepath.Join(dir, "good.yaml"), []byte("{kind: inventory, id: "+good+", host: "+good+", service: shop}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, dir)
			cfg := DefaultConfig()
			cfg.ContextDir = dir
			d, err := NewContextDir(cfg, kcfg, serde, nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			res, err := syncOrStuck(t, ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			// Generous: the oversized file alone is read in full once it is stat'ed as small
			// enough, never more; /dev/zero read unbounded would exhaust memory.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
				t.Errorf("sync allocated %d MiB", alloc>>20)
			}
			got := map[string]string{}
			for src, why := range d.refused {
				got[filepath.Base(strings.TrimPrefix(src, "file:"))] = why
			}
			if diff := cmp.Diff(tc.refused, got); diff != "" {
				t.Errorf("refused (-want +got):\n%s", diff)
			}
			if len(res.Refused) != len(tc.refused) || d.Refusals() != uint64(len(tc.refused)) {
				t.Errorf("SyncResult.Refused %v, Refusals() %d; want %d files", res.Refused, d.Refusals(), len(tc.refused))
			}
			tables, err := ReadContext(ctx, kcfg, serde, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, found := tables.Get(schemas.ContextInventory, "outside-1"); found {
				t.Error("the record of the file outside the directory was published")
			}
			for _, id := range append([]string{good}, tc.held...) {
				if _, found := tables.Get(schemas.ContextInventory, id); !found {
					t.Errorf("inventory %s not published", id)
				}
			}
			// The next sync finds the same refusals and neither logs nor counts them again.
			if _, err := syncOrStuck(t, ctx, d); err != nil {
				t.Fatal(err)
			}
			if d.Refusals() != uint64(len(tc.refused)) {
				t.Errorf("Refusals() %d after a second sync, want %d", d.Refusals(), len(tc.refused))
			}
		})
	}
}

// syncOrStuck runs one sync and fails the test if it has not returned well after ctx's
// deadline (a blocking open would never return).
func syncOrStuck(t *testing.T, ctx context.Context, d *ContextDir) (SyncResult, error) {
	t.Helper()
	type result struct {
		res SyncResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := d.Sync(ctx)
		done <- result{res, err}
	}()
	select {
	case r := <-done:
		return r.res, r.err
	case <-time.After(time.Minute):
		t.Fatal("Sync is stuck past its deadline")
		return SyncResult{}, nil
	}
}

// TestContextDirShutdownWithFIFO runs the directory sync over a directory holding a FIFO and
// a symlink to one, as `crumbs up` does, and checks that it refuses them and returns when
// cancelled.
func TestContextDirShutdownWithFIFO(t *testing.T) {
	kcfg := startKafka(t)
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(fifo, filepath.Join(dir, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ContextDir = dir
	cfg.ContextDirInterval = 100 * time.Millisecond
	d, err := NewContextDir(cfg, kcfg, serde, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	stuck := time.After(time.Minute)
	for d.Refusals() < 2 {
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		case <-stuck:
			t.Fatalf("Run refused %d files, want 2", d.Refusals())
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after cancel")
	}
}
