package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"golang.org/x/term"

	crumbscollectors "github.com/threatcrumbs/crumbs/collectors"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/privilege"
	"github.com/threatcrumbs/crumbs/pkg/telemetry"
)

func upCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "up",
		Short: "Run the whole pipeline on this host: embedded Kafka, collector, enricher, detector and ClickHouse sink",
		Args:  cobra.NoArgs,
		RunE:  runUp,
	}
}

func runUp(cmd *cobra.Command, _ []string) error {
	cfg, err := loadConfig(cmd)
	if err != nil {
		return err
	}
	rt, err := newRuntimeFor(cfg, "collect")
	if err != nil {
		return err
	}
	ctx, cancel := signalContext(cmd)
	defer cancel()

	// As root: the crumbs user, the broker's data given to it, and the roles' credentials,
	// which only root reads and which the stages process gets through its socket.
	u, err := rt.serviceUser()
	if err != nil {
		return err
	}
	var creds map[kafka.Role]kafka.Credentials
	if len(cfg.Kafka.Brokers) == 0 {
		if dir := cfg.Kafka.Embedded.DataDir; dir != "" && u != nil {
			if err := privilege.OwnDir(dir, u, cfg.Kafka.Embedded.CredentialsPath()); err != nil {
				return fmt.Errorf("kafka.embedded.data_dir: %w", err)
			}
		}
		if creds, err = kafka.EmbeddedCredentials(cfg.Kafka.Embedded); err != nil {
			return err
		}
		// This process acts as the collectors, and as nothing else.
		rt.creds = map[kafka.Role]kafka.Credentials{kafka.RoleCollector: creds[kafka.RoleCollector]}
	}
	stages, err := startStages(ctx, rt, u, creds)
	if err != nil {
		return err
	}
	clear(creds)

	var col stage
	if slices.Contains(cfg.Up.Stages, "collect") {
		if err := rt.ownCollectorDirs(); err != nil { // before the spool's first files
			return errors.Join(err, stages.stop(stagesStopWait))
		}
		// A collector that cannot run here is reported and the others run; crumbs up stops
		// only when none can.
		s, err := rt.collectStage()
		switch {
		case errors.Is(err, crumbscollectors.ErrNoneEnabled):
		case err != nil:
			return errors.Join(err, stages.stop(stagesStopWait))
		default:
			col = labelled{"collect", s}
		}
	}
	// The collectors' programs are loaded and attached: from here on this process needs only
	// what they read, as the crumbs user, who gets what they wrote so far.
	if col != nil {
		err = rt.ownCollectorDirs()
	}
	if err == nil {
		err = rt.dropPrivileges(collectorCapabilities(col)...)
	}
	if err != nil {
		return errors.Join(err, stages.stop(stagesStopWait))
	}

	colCtx, stopCol := context.WithCancel(ctx)
	defer stopCol()
	colDone := make(chan error, 1)
	if col != nil {
		go func() { colDone <- col.Run(colCtx) }()
	}
	stopStatus := rt.statusLine(ctx, os.Stderr, stages.statusParts)
	rt.log.Info("crumbs is up", "host", cfg.Host.Name, "brokers", cfg.Kafka.Brokers, "clickhouse", cfg.ClickHouse.Addr,
		"stages_pid", stages.pid)

	// Collectors stop first and flush into the broker, which the stages process still runs;
	// then the stages flush and commit, and the broker closes.
	var runErr error
	colRunning := col != nil
	select {
	case <-ctx.Done():
	case err := <-colDone: // the collectors gave up: stop the rest
		colRunning = false
		runErr = err
		if runErr == nil {
			runErr = errors.New("the collectors stopped unexpectedly")
		}
	case <-stages.done: // a stage gave up, and the stages process with it
		runErr = stages.exit()
		if runErr == nil {
			runErr = errors.New("the stages process stopped unexpectedly")
		}
	}
	rt.log.Info("shutting down: flushing and committing")
	stopStatus()
	stopCol()
	if colRunning {
		if err := <-colDone; err != nil && runErr == nil {
			runErr = err
		}
	}
	if err := stages.stop(stagesStopWait); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// stagesStopWait is how long crumbs up waits for its stages process to flush and commit.
const stagesStopWait = 30 * time.Second

// statusLine prints each stage's records in and out per second (or, for a stage waiting for
// its store, how long and why), its consumer lag and its drops every status.interval; on a
// terminal the line refreshes in place. remote gives the parts of the stages process, which
// come first; this process's own stages (the collectors) follow.
func (rt *runtime) statusLine(ctx context.Context, w io.Writer, remote func() []string) (stop func()) {
	every := rt.cfg.Status.Interval
	if every <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	go func() {
		defer close(done)
		st := newStatusParts(every)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				if tty {
					fmt.Fprintln(w)
				}
				return
			case <-t.C:
			}
			parts := append(remote(), st.parts(rt.counters, nil)...)
			line := strings.Join(parts, " | ")
			if tty {
				fmt.Fprintf(w, "\r\033[K%s", line)
			} else {
				fmt.Fprintln(w, line)
			}
		}
	}()
	return func() { cancel(); <-done }
}

// statusParts formats stages' parts of the status line, rates from one call to the next.
type statusParts struct {
	every time.Duration
	prev  map[*telemetry.StageCounters]telemetry.Snapshot
}

func newStatusParts(every time.Duration) *statusParts {
	return &statusParts{every: every, prev: map[*telemetry.StageCounters]telemetry.Snapshot{}}
}

// parts returns one part per stage: "sink in 500/s out 500/s lag 12 drops 0".
func (st *statusParts) parts(counters []*telemetry.StageCounters, lags map[string]int64) []string {
	var parts []string
	for _, c := range counters {
		s := c.Snapshot()
		p := st.prev[c]
		st.prev[c] = s
		sec := st.every.Seconds()
		part := fmt.Sprintf("%s in %.0f/s out %.0f/s", c.Stage, float64(s.In-p.In)/sec, float64(s.Out-p.Out)/sec)
		if !s.WaitingSince.IsZero() {
			part = fmt.Sprintf("%s waiting %s (%s)", c.Stage, time.Since(s.WaitingSince).Round(time.Second), s.WaitReason)
		}
		if c.Group != "" {
			part += fmt.Sprintf(" lag %d", lags[c.Group])
			if l, ok := lags[c.Group]; ok {
				c.SetLag(l) // crumbs_stage_consumer_lag
			}
		}
		part += fmt.Sprintf(" drops %d", s.Dropped)
		if s.DeadLettered > 0 {
			part += fmt.Sprintf(" dlq %d", s.DeadLettered)
		}
		parts = append(parts, part)
	}
	return parts
}

// groupLags returns the total lag of each stage's consumer group.
func groupLags(ctx context.Context, adm *kadm.Client, cs []*telemetry.StageCounters) map[string]int64 {
	var groups []string
	for _, c := range cs {
		if c.Group != "" {
			groups = append(groups, c.Group)
		}
	}
	out := map[string]int64{}
	if len(groups) == 0 {
		return out
	}
	lctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	lags, err := adm.Lag(lctx, groups...)
	if err != nil {
		return out
	}
	for g, l := range lags {
		out[g] = l.Lag.Total()
	}
	return out
}
