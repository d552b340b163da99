package file

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/threatcrumbs/crumbs/collectors/internal/hostinfo"
	"github.com/threatcrumbs/crumbs/schemas"
)

// stateFile is the name of the scan baseline in state_dir.
const stateFile = "scan-state.json"

// stateVersion is the format of the state file; a file of another version is ignored.
const stateVersion = 1

// scanEntry is one file of a scan's baseline.
type scanEntry struct {
	attrs
	SHA256 string `json:"sha256,omitempty"`
}

// scanState is the state file: the files the last scan saw, by path.
type scanState struct {
	Version int                  `json:"version"`
	Time    time.Time            `json:"time"`
	Files   map[string]scanEntry `json:"files"`
}

// ScanStats counts what scans did. Every field only grows.
type ScanStats struct {
	Scans   uint64 // scans completed
	Statted uint64 // files statted
	Hashed  uint64 // files hashed: new or changed since the last scan
	Errors  uint64 // files that could not be statted or hashed
}

// Scanner scans the watched globs: sha256, size, owner, group and mode of every regular
// file, diffed against the previous scan kept in state_dir. It needs no eBPF.
type Scanner struct {
	cfg     Config
	host    schemas.Host
	log     *slog.Logger
	watch   globSet
	exclude globSet
	owners  owners
	root    hostinfo.Root // where the host's files are

	mu                              sync.Mutex // one scan at a time
	scans, statted, hashed, errored atomic.Uint64
}

// NewScanner returns a Scanner of cfg's paths.
func NewScanner(cfg Config, host schemas.Host, log *slog.Logger, opts ...Option) (*Scanner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o := hostinfo.Apply(opts)
	return &Scanner{
		cfg: cfg, host: host, log: log.With("collector", "file"), root: o.Root,
		watch: newGlobSet(cfg.Paths), exclude: newGlobSet(cfg.ExcludePaths), owners: newOwners(o.Root),
	}, nil
}

// Stats returns the scan counters so far.
func (s *Scanner) Stats() ScanStats {
	return ScanStats{Scans: s.scans.Load(), Statted: s.statted.Load(), Hashed: s.hashed.Load(), Errors: s.errored.Load()}
}

// StatePath is the file holding the baseline the next scan is diffed against.
func (s *Scanner) StatePath() string { return filepath.Join(s.cfg.StateDir, stateFile) }

// Scan stats every file under the watched globs, hashes those that are new or changed
// since the last scan, and returns what changed: scan_added, scan_removed and scan_changed
// events (on the first scan, every file is added), sorted by path. It then saves the new
// baseline. progress, when not nil, is called with the files done and the total, from the
// calling goroutine. A cancelled ctx stops the scan without saving; Scan returns ctx's error.
func (s *Scanner) Scan(ctx context.Context, progress func(done, total int)) ([]*schemas.FileEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, err := s.loadState()
	if err != nil {
		s.log.Warn("scan baseline unreadable: starting from an empty one", "path", s.StatePath(), "err", err)
		prev = map[string]scanEntry{}
	}
	paths, err := s.list(ctx)
	if err != nil {
		return nil, err
	}
	next := make(map[string]scanEntry, len(paths))
	if progress != nil {
		progress(0, len(paths))
	}
	for i, p := range paths {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
		if e, ok := s.entry(p, prev); ok {
			next[p] = e
		}
		if progress != nil {
			progress(i+1, len(paths))
		}
	}
	events := s.diff(prev, next, time.Now())
	if err := s.saveState(next); err != nil {
		return events, err
	}
	s.scans.Add(1)
	return events, nil
}

// list returns the regular files under the watched globs, sorted, without duplicates and
// without the excluded ones. A glob naming a symbolic link to a directory is followed.
func (s *Scanner) list(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, glob := range s.cfg.Paths {
		roots, err := filepath.Glob(s.root.Path(glob))
		if err != nil {
			return nil, fmt.Errorf("collectors.file.paths: %q: %w", glob, err)
		}
		for _, root := range roots {
			root = s.root.Host(root)
			if real, err := s.root.Resolve(root); err == nil {
				root = real
			}
			err := filepath.WalkDir(s.root.Path(root), func(p string, d fs.DirEntry, err error) error {
				p = s.root.Host(p)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if err != nil {
					s.errored.Add(1)
					s.log.Debug("scan: cannot read", "path", p, "err", err)
					return nil
				}
				if s.exclude.match(p) {
					if d.IsDir() {
						return filepath.SkipDir
					}
					return nil
				}
				if d.Type().IsRegular() && !seen[p] {
					seen[p] = true
					out = append(out, p)
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("scan %s: %w", root, err)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// entry stats p and reuses the previous sha256 when the stat says the file did not change.
func (s *Scanner) entry(p string, prev map[string]scanEntry) (scanEntry, bool) {
	a, err := lstatAttrs(s.root, p)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.errored.Add(1)
		}
		return scanEntry{}, false
	}
	s.statted.Add(1)
	e := scanEntry{attrs: a}
	if !a.Regular {
		return e, true
	}
	if old, ok := prev[p]; ok && old.sameVersion(a) && (old.SHA256 != "" || a.Size > s.cfg.HashMaxFileBytes) {
		e.SHA256 = old.SHA256
		return e, true
	}
	if a.Size > s.cfg.HashMaxFileBytes {
		return e, true
	}
	s.hashed.Add(1)
	sum, err := hashFile(s.root, p, s.cfg.HashMaxFileBytes)
	if err != nil {
		s.errored.Add(1)
		s.log.Debug("scan: cannot hash", "path", p, "err", err)
	}
	e.SHA256 = sum
	return e, true
}

// diff returns the events that turn prev into next, sorted by path.
func (s *Scanner) diff(prev, next map[string]scanEntry, now time.Time) []*schemas.FileEvent {
	var events []*schemas.FileEvent
	for p, e := range next {
		old, ok := prev[p]
		switch {
		case !ok:
			events = append(events, s.scanEvent(schemas.ActionScanAdded, p, e, nil, now))
		default:
			if changed := changedAttrs(old, e); len(changed) > 0 {
				events = append(events, s.scanEvent(schemas.ActionScanChanged, p, e, changed, now))
			}
		}
	}
	for p, e := range prev {
		if _, ok := next[p]; !ok {
			events = append(events, s.scanEvent(schemas.ActionScanRemoved, p, e, nil, now))
		}
	}
	slices.SortFunc(events, func(a, b *schemas.FileEvent) int {
		if c := compareStrings(a.File.Path, b.File.Path); c != 0 {
			return c
		}
		return compareStrings(a.Action, b.Action)
	})
	return events
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// changedAttrs names the attributes that differ, in the schema's order. A sha256 that one
// side lacks (too large, unreadable) is not compared.
func changedAttrs(old, cur scanEntry) []string {
	var changed []string
	if old.SHA256 != "" && cur.SHA256 != "" && old.SHA256 != cur.SHA256 {
		changed = append(changed, "sha256")
	}
	if old.Size != cur.Size {
		changed = append(changed, "size")
	}
	if old.UID != cur.UID {
		changed = append(changed, "owner")
	}
	if old.GID != cur.GID {
		changed = append(changed, "group")
	}
	if old.Mode != cur.Mode {
		changed = append(changed, "mode")
	}
	return changed
}

func (s *Scanner) scanEvent(action, path string, e scanEntry, changed []string, now time.Time) *schemas.FileEvent {
	return &schemas.FileEvent{
		Envelope: schemas.Envelope{EventID: schemas.NewEventID(), Time: now.UnixNano(), Host: s.host, Kind: schemas.KindFile},
		Action:   action,
		File:     s.targetFile(path, e, changed),
	}
}

func (s *Scanner) targetFile(path string, e scanEntry, changed []string) schemas.TargetFile {
	return schemas.TargetFile{
		Path: path, Name: filepath.Base(path), SHA256: e.SHA256, Size: e.Size,
		Owner: s.owners.user(e.UID), Group: s.owners.group(e.GID),
		UID: int64(e.UID), GID: int64(e.GID), Mode: modeString(e.Mode),
		Changed: changed,
	}
}

func (s *Scanner) loadState() (map[string]scanEntry, error) {
	b, err := os.ReadFile(s.StatePath())
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]scanEntry{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read scan baseline: %w", err)
	}
	var st scanState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("decode scan baseline %s: %w", s.StatePath(), err)
	}
	if st.Version != stateVersion || st.Files == nil {
		return nil, fmt.Errorf("scan baseline %s: version %d, want %d", s.StatePath(), st.Version, stateVersion)
	}
	return st.Files, nil
}

// saveState replaces the baseline atomically: a crash leaves the old one or the new one.
func (s *Scanner) saveState(files map[string]scanEntry) error {
	if err := os.MkdirAll(s.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("collectors.file.state_dir: %w", err)
	}
	b, err := json.Marshal(scanState{Version: stateVersion, Time: time.Now().UTC(), Files: files})
	if err != nil {
		return fmt.Errorf("encode scan baseline: %w", err)
	}
	tmp, err := os.CreateTemp(s.cfg.StateDir, stateFile+".*")
	if err != nil {
		return fmt.Errorf("save scan baseline: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("save scan baseline: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save scan baseline: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save scan baseline: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.StatePath()); err != nil {
		return fmt.Errorf("save scan baseline: %w", err)
	}
	return nil
}
