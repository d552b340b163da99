package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/threatcrumbs/crumbs/collectors/file"
	"github.com/threatcrumbs/crumbs/pkg/termsafe"
	"github.com/threatcrumbs/crumbs/schemas"
)

// scanCmd is `crumbs scan`: one software-integrity scan of collectors.file.paths now,
// diffed against (and then replacing) the baseline in collectors.file.state_dir.
func scanCmd() *cobra.Command {
	var asJSON, noProgress bool
	c := &cobra.Command{
		Use:   "scan",
		Short: "Scan the watched files now (sha256, size, owner, group, mode) and print what changed since the last scan",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			s, err := file.NewScanner(cfg.Collectors.File, cfg.host(), cfg.logger(), file.WithHostRoot(cfg.Collectors.HostRoot))
			if err != nil {
				return &exitCode{2, err}
			}
			ctx, cancel := signalContext(cmd)
			defer cancel()
			var bar *progressBar
			if !noProgress && term.IsTerminal(int(os.Stderr.Fd())) {
				bar = &progressBar{w: os.Stderr}
			}
			events, err := s.Scan(ctx, bar.update)
			bar.finish()
			if err != nil {
				return err
			}
			return printScan(cmd.OutOrStdout(), events, s, asJSON)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON event per line instead of a table")
	c.Flags().BoolVar(&noProgress, "no-progress", false, "no progress bar on the terminal")
	return c
}

func printScan(w io.Writer, events []*schemas.FileEvent, s *file.Scanner, asJSON bool) error {
	if asJSON {
		for _, ev := range events {
			b, err := json.Marshal(ev)
			if err != nil {
				return fmt.Errorf("print scan event: %w", err)
			}
			if _, err := w.Write(append(termsafe.JSON(b), '\n')); err != nil {
				return fmt.Errorf("print scan event: %w", err)
			}
		}
		return nil
	}
	counts := map[string]int{}
	for _, ev := range events {
		counts[ev.Action]++
		f := ev.File
		action := strings.TrimPrefix(ev.Action, "scan_")
		switch ev.Action {
		case schemas.ActionScanChanged:
			fmt.Fprintf(w, "%-8s %s  %s  (now sha256=%s %s %s:%s size=%d)\n", action, q(f.Path), qs(f.Changed, ","), q(f.SHA256), q(f.Mode), q(f.Owner), q(f.Group), f.Size)
		default:
			fmt.Fprintf(w, "%-8s %s  sha256=%s %s %s:%s size=%d\n", action, q(f.Path), q(f.SHA256), q(f.Mode), q(f.Owner), q(f.Group), f.Size)
		}
	}
	st := s.Stats()
	_, err := fmt.Fprintf(w, "scan: %d added, %d changed, %d removed; %d files statted, %d hashed, %d unreadable; baseline %s\n",
		counts[schemas.ActionScanAdded], counts[schemas.ActionScanChanged], counts[schemas.ActionScanRemoved],
		st.Statted, st.Hashed, st.Errors, s.StatePath())
	return err
}

// progressBar draws "[#####.....] done/total" on a terminal, at most every 100ms. A nil
// *progressBar draws nothing.
type progressBar struct {
	w     io.Writer
	last  time.Time
	drawn bool
}

func (p *progressBar) update(done, total int) {
	if p == nil || (done < total && time.Since(p.last) < 100*time.Millisecond) {
		return
	}
	p.last = time.Now()
	const width = 40
	filled := width
	if total > 0 {
		filled = done * width / total
	}
	fmt.Fprintf(p.w, "\rscanning [%s%s] %d/%d", strings.Repeat("#", filled), strings.Repeat(".", width-filled), done, total)
	p.drawn = true
}

func (p *progressBar) finish() {
	if p != nil && p.drawn {
		fmt.Fprintln(p.w)
	}
}
