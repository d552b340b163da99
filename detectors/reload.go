package detectors

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// watchRules reloads the rules on SIGHUP and when the rules folder changes (a file added,
// removed or modified), until ctx is done.
func (d *Detector) watchRules(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	tick := time.NewTicker(d.cfg.ReloadInterval)
	defer tick.Stop()
	last := d.rulesFingerprint()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			d.deps.Log.Info("SIGHUP: reloading rules")
		case <-tick.C:
			fp := d.rulesFingerprint()
			if fp == last {
				continue
			}
			last = fp
			d.deps.Log.Info("rules folder changed: reloading rules", "dir", d.cfg.RulesDir, "sigma_dirs", d.cfg.SigmaDirs)
		}
		if err := d.Reload(); err != nil {
			d.deps.Log.Error("rule reload refused", "err", err)
		}
	}
}

// rulesFingerprint hashes the names, sizes and modification times of the files of the rules
// folder and the Sigma folders; "" when the rules are only built in.
func (d *Detector) rulesFingerprint() string {
	dirs := d.cfg.SigmaDirs
	if d.cfg.RulesDir != "" {
		dirs = append([]string{d.cfg.RulesDir}, dirs...)
	}
	if len(dirs) == 0 {
		return ""
	}
	h := sha256.New()
	for _, dir := range dirs {
		_ = fs.WalkDir(os.DirFS(dir), ".", func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return nil
			}
			if info, err := e.Info(); err == nil {
				fmt.Fprintf(h, "%s\x00%s\x00%d\x00%d\n", dir, p, info.Size(), info.ModTime().UnixNano())
			}
			return nil
		})
	}
	return string(h.Sum(nil))
}
