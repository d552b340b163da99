package enrichers

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/schemas"
)

// ContextDir keeps a directory of context files (enricher.context_dir) in sync with the
// context topics, GitOps style: every *.json, *.yaml and *.yml file below it (hidden ones
// such as .git skipped) holds one record or a list; a record's kind is its kind field; in a
// directory named for a kind (change/, deploy/, inventory/, account/) the field may be left
// out, and must agree when present. Each poll publishes the records of files added or changed and deletes
// (tombstones) the records of files removed, or removed from a file. A file that is invalid is
// refused as a whole with a log line naming the file, line, field and problem, and the records
// it published before stay as they are. Records carry their file as source, so a restart
// reconciles: what the directory published and no longer holds is deleted.
//
// The directory is read as untrusted input: only regular files of at most 1 MiB are read; a
// symlink may lead to another file inside the directory, never out of it; a FIFO, device or
// socket is refused without blocking. A refused file is logged once, counted, and what it
// published before stays.
type ContextDir struct {
	dir      string
	interval time.Duration
	kcfg     kafka.Config
	serde    *avro.Serde
	log      *slog.Logger
	tables   *ContextTables
	files    map[string]*dirFile // by source (file:<absolute path>)
	refused  map[string]string   // files refused at the last sync, with why (each logged once)
	refusals atomic.Uint64       // files refused, counted when first refused or refused for another reason
	nRefused atomic.Int64        // files refused at the last sync
}

// dirFile is what the last sync saw of one file.
type dirFile struct {
	hash     [32]byte
	valid    bool
	keys     [][2]string // kind and id of its records, as last published
	services []string    // services its inventory records list
}

// SyncResult says what one sync did.
type SyncResult struct {
	Published int      // records published from added or changed files
	Deleted   int      // records deleted because their file or their entry went away
	Invalid   []string // files refused for their content, each problem logged
	Refused   []string // files not read: a symlink leaving the directory, not a regular file, too large
}

// NewContextDir returns the directory sync stage; nothing is read until Run or Sync.
func NewContextDir(cfg Config, kcfg kafka.Config, serde *avro.Serde, log *slog.Logger) (*ContextDir, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ContextDir == "" {
		return nil, errors.New("enricher.context_dir: must be set to sync a directory")
	}
	abs, err := filepath.Abs(cfg.ContextDir)
	if err != nil {
		return nil, fmt.Errorf("enricher.context_dir: %s: %w", cfg.ContextDir, err)
	}
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("enricher.context_dir: %s: not a readable directory", cfg.ContextDir)
	}
	if log == nil {
		log = slog.Default()
	}
	return &ContextDir{dir: abs, interval: cfg.ContextDirInterval, kcfg: kcfg, serde: serde, log: log,
		tables: NewContextTables(cfg.MaxContextRecords, cfg.DeployHistory), files: map[string]*dirFile{}, refused: map[string]string{}}, nil
}

// RegisterMetrics registers the directory's metrics on reg:
// crumbs_context_dir_files_refused (files refused at the last sync) and
// crumbs_context_dir_refusals_total.
func (d *ContextDir) RegisterMetrics(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "crumbs_context_dir_files_refused",
			Help: "Context directory files refused at the last sync (symlink leaving the directory, not a regular file, larger than 1 MiB)."},
			func() float64 { return float64(d.nRefused.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "crumbs_context_dir_refusals_total",
			Help: "Context directory files refused unread, counted once per file and reason."},
			func() float64 { return float64(d.refusals.Load()) }),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register context directory metrics: %w", err)
		}
	}
	return nil
}

// Refusals returns how many times a file was refused unread (once per file and reason).
func (d *ContextDir) Refusals() uint64 { return d.refusals.Load() }

// Run materialises the context topics, then syncs the directory every interval until ctx is
// done. A failed sync (Kafka unreachable) is logged and retried at the next interval.
func (d *ContextDir) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	ready, err := materialise(ctx, &wg, d.kcfg, d.serde, d.tables, d.log)
	if err != nil {
		return fmt.Errorf("context dir: %w", err)
	}
	select {
	case <-ready:
	case <-ctx.Done():
		return nil
	}
	t := time.NewTicker(d.interval)
	defer t.Stop()
	for {
		// Each sync has a deadline, so a broker away or a slow file system delays the next
		// sync, never shutdown.
		sctx, scancel := context.WithTimeout(ctx, max(d.interval, 30*time.Second))
		res, err := d.Sync(sctx)
		scancel()
		switch {
		case err != nil && ctx.Err() == nil:
			d.log.Warn("context directory not synced; retrying", "dir", d.dir, "err", err)
		case res.Published+res.Deleted > 0:
			d.log.Info("context directory synced", "dir", d.dir, "published", res.Published, "deleted", res.Deleted, "invalid_files", len(res.Invalid))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sync reads the directory once and publishes and deletes what changed, and returns when ctx
// is done if that comes first. The tables must be materialised (Run does that; tests call
// Sync after Run has started or on fresh topics). Files refused unread (see read) are logged
// once per file and reason, counted, and keep what they published before.
func (d *ContextDir) Sync(ctx context.Context) (SyncResult, error) {
	var res SyncResult
	contents, refused, err := d.read(ctx)
	if err != nil {
		return res, err
	}
	// Services listed by the directory's own inventory count as known, whatever file they
	// are in; unchanged files keep the services seen last time.
	dirServices := map[string]bool{}
	next := map[string]*dirFile{}
	changed := map[string][]byte{}
	for src, data := range contents {
		h := sha256.Sum256(data)
		if old := d.files[src]; old != nil && old.hash == h {
			next[src] = old
			for _, s := range old.services {
				dirServices[s] = true
			}
			continue
		}
		changed[src] = data
		if recs, err := ParseContext(data, d.parseOptions(src, nil)); err == nil {
			for _, r := range recs {
				if inv, ok := r.Record.(*schemas.InventoryRecord); ok {
					dirServices[inv.Service] = true
				}
			}
		}
	}
	known := func(s string) bool { return dirServices[s] || d.tables.KnownService(s) }
	var publish []ContextRecord
	for src, why := range refused {
		// Refused like an invalid file: what it published before stays.
		if d.refused[src] != why {
			d.log.Warn("context file refused", "file", strings.TrimPrefix(src, "file:"), "problem", why)
			d.refusals.Add(1)
		}
		res.Refused = append(res.Refused, strings.TrimPrefix(src, "file:"))
		f := &dirFile{}
		if old := d.files[src]; old != nil {
			f.keys, f.services = old.keys, old.services
			for _, s := range old.services {
				dirServices[s] = true
			}
		} else {
			f.keys = d.publishedFrom(src)
		}
		next[src] = f
	}
	for src, data := range changed {
		f := &dirFile{hash: sha256.Sum256(data)}
		recs, err := ParseContext(data, d.parseOptions(src, known))
		if err != nil {
			d.logInvalid(src, err)
			res.Invalid = append(res.Invalid, strings.TrimPrefix(src, "file:"))
			if old := d.files[src]; old != nil {
				f.keys, f.services = old.keys, old.services // what it published stays
			} else {
				f.keys = d.publishedFrom(src)
			}
			next[src] = f
			continue
		}
		f.valid = true
		for _, r := range recs {
			f.keys = append(f.keys, [2]string{r.Kind, r.ID})
			if inv, ok := r.Record.(*schemas.InventoryRecord); ok {
				f.services = append(f.services, inv.Service)
			}
		}
		publish = append(publish, recs...)
		next[src] = f
	}
	// Inventory first, so a reader never sees a change for a service not yet listed.
	slices.SortStableFunc(publish, func(a, b ContextRecord) int {
		return strings.Compare(kindOrder(a.Kind), kindOrder(b.Kind))
	})
	res.Published = len(publish)
	tombs := d.gone(next)
	res.Deleted = len(tombs)
	if err := PublishContext(ctx, d.kcfg, d.serde, append(publish, tombs...)); err != nil {
		return SyncResult{}, err
	}
	for _, r := range publish {
		_ = d.tables.Put(r.Record, r.Native["source"].(string))
	}
	for _, r := range tombs {
		d.tables.Delete(r.Kind, r.ID)
	}
	d.files = next
	d.refused = refused
	d.nRefused.Store(int64(len(refused)))
	slices.Sort(res.Invalid)
	slices.Sort(res.Refused)
	return res, nil
}

func kindOrder(k string) string {
	if k == schemas.ContextInventory {
		return "0"
	}
	return "1" + k
}

func (d *ContextDir) parseOptions(src string, known Services) ParseOptions {
	path := strings.TrimPrefix(src, "file:")
	kind := ""
	if parent := filepath.Base(filepath.Dir(path)); slices.Contains(ContextKinds, parent) {
		kind = parent
	}
	return ParseOptions{Kind: kind, Source: path, Origin: src, Known: known}
}

// MaxContextFileBytes bounds one context file: a larger one is refused unread (at most one
// byte past the limit is read, whatever the file claims).
const MaxContextFileBytes = 1 << 20

// read returns the contents of every context file, by source, and the files refused, with
// why. Files are opened inside the directory only (os.Root: a symlink may point to another
// file in it, never out of it), without blocking (O_NONBLOCK, so a FIFO cannot stall the
// sync), and must be regular files of at most MaxContextFileBytes. It stops when ctx is done.
func (d *ContextDir) read(ctx context.Context) (map[string][]byte, map[string]string, error) {
	root, err := os.OpenRoot(d.dir)
	if err != nil {
		return nil, nil, fmt.Errorf("read context directory %s: %w", d.dir, err)
	}
	defer root.Close()
	out, refused := map[string][]byte{}, map[string]string{}
	err = fs.WalkDir(root.FS(), ".", func(rel string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		name := e.Name()
		if strings.HasPrefix(name, ".") && rel != "." {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if e.IsDir() {
			return nil
		}
		switch strings.ToLower(filepath.Ext(name)) {
		case ".json", ".yaml", ".yml":
		default:
			return nil
		}
		src := "file:" + filepath.Join(d.dir, filepath.FromSlash(rel))
		data, why := readContextFile(root, rel, e)
		if why != "" {
			refused[src] = why
			return nil
		}
		out[src] = data
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read context directory %s: %w", d.dir, err)
	}
	return out, refused, nil
}

// readContextFile reads one file of the directory, or says why it is refused.
func readContextFile(root *os.Root, rel string, e fs.DirEntry) ([]byte, string) {
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		if e.Type()&fs.ModeSymlink != 0 {
			target, _ := root.Readlink(rel)
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Sprintf("symlink to %q leads nowhere", target)
			}
			return nil, fmt.Sprintf("symlink to %q leaves the directory or cannot be opened: %v", target, errors.Unwrap(err))
		}
		return nil, fmt.Sprintf("cannot open: %v", errors.Unwrap(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Sprintf("cannot stat: %v", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Sprintf("not a regular file (%s)", fileType(st.Mode()))
	}
	if st.Size() > MaxContextFileBytes {
		return nil, fmt.Sprintf("%d bytes: larger than the limit of %d", st.Size(), MaxContextFileBytes)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxContextFileBytes+1))
	if err != nil {
		return nil, fmt.Sprintf("cannot read: %v", err)
	}
	if len(data) > MaxContextFileBytes {
		return nil, fmt.Sprintf("larger than the limit of %d bytes", MaxContextFileBytes)
	}
	return data, ""
}

// fileType names the type of a file that is not regular.
func fileType(m fs.FileMode) string {
	switch {
	case m&fs.ModeDir != 0:
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	default:
		return m.Type().String()
	}
}

// publishedFrom returns the records the tables hold from a source (after a restart, for a
// file that is invalid now).
func (d *ContextDir) publishedFrom(src string) [][2]string {
	var keys [][2]string
	for _, kind := range ContextKinds {
		for id, s := range d.tables.Sources(kind) {
			if s == src {
				keys = append(keys, [2]string{kind, id})
			}
		}
	}
	return keys
}

// gone returns tombstones for records this directory published that no file holds now.
func (d *ContextDir) gone(next map[string]*dirFile) []ContextRecord {
	keep := map[[2]string]bool{}
	for _, f := range next {
		for _, k := range f.keys {
			keep[k] = true
		}
	}
	prefix := "file:" + d.dir + string(filepath.Separator)
	var out []ContextRecord
	for _, kind := range ContextKinds {
		srcs := d.tables.Sources(kind)
		ids := keys(srcs)
		slices.Sort(ids)
		for _, id := range ids {
			if strings.HasPrefix(srcs[id], prefix) && !keep[[2]string{kind, id}] {
				out = append(out, ContextRecord{Kind: kind, ID: id, Schema: schemas.ContextSchemas[kind]})
			}
		}
	}
	return out
}

func (d *ContextDir) logInvalid(src string, err error) {
	var inv *InvalidContextError
	if errors.As(err, &inv) {
		for _, p := range inv.Problems {
			d.log.Warn("context file refused", "file", strings.TrimPrefix(src, "file:"), "problem", p.String())
		}
		return
	}
	d.log.Warn("context file refused", "file", strings.TrimPrefix(src, "file:"), "err", err)
}
