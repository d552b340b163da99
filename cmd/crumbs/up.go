package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/term"

	crumbscollectors "github.com/threatcrumbs/crumbs/collectors"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
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
	rt, err := newRuntime(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := signalContext(cmd)
	defer cancel()

	embedded := len(cfg.Kafka.Brokers) == 0
	if embedded {
		// Every stage acts as its role on the embedded broker, which refuses everyone else.
		emb, err := kafka.StartSecureEmbedded(ctx, cfg.Kafka, cfg.kafkaScope(), rt.log)
		if err != nil {
			return err
		}
		defer emb.Close()
		cfg.Kafka.Brokers = emb.Addrs()
		rt.creds = map[kafka.Role]kafka.Credentials{}
		for _, r := range kafka.Roles() {
			rt.creds[r], _ = emb.Credentials(r)
		}
		rt.log.Info("embedded kafka started", "addrs", cfg.Kafka.Brokers, "data_dir", cfg.Kafka.Embedded.DataDir,
			"credentials", cfg.Kafka.Embedded.CredentialsPath())
	}
	if err := rt.ensureTopics(ctx, kafka.RoleAdmin); err != nil {
		return err
	}
	if embedded { // topics made before a size limit, or under another configuration, get this one's
		if err := rt.alignTopics(ctx); err != nil {
			return err
		}
	}
	stopMetrics, err := rt.serveMetrics(ctx)
	if err != nil {
		return err
	}
	defer stopMetrics()

	// Downstream stages first, the collector last: the collector stops first on shutdown so
	// that everything it produced is flushed to Kafka, where a restart finds it.
	var down []stage
	for _, st := range []struct {
		name  string
		build func(*runtime) (stage, error)
	}{{"console", (*runtime).console}, {"alerts", (*runtime).alerts}, {"sink", (*runtime).sink}, {"detect", (*runtime).detector}, {"enrich", (*runtime).enricher}} {
		if !slices.Contains(cfg.Up.Stages, st.name) {
			continue
		}
		s, err := st.build(rt)
		if err != nil {
			return err
		}
		down = append(down, labelled{st.name, s})
	}
	var col stage
	if slices.Contains(cfg.Up.Stages, "collect") {
		// A collector that cannot run here is reported and the others run; crumbs up stops
		// only when none can.
		s, err := rt.collectStage()
		switch {
		case errors.Is(err, crumbscollectors.ErrNoneEnabled):
		case err != nil:
			return err
		default:
			col = labelled{"collect", s}
		}
	}

	downCtx, stopDown := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDown()
	colCtx, stopCol := context.WithCancel(ctx)
	defer stopCol()
	errc := make(chan error, len(down)+1)
	var downWG, colWG sync.WaitGroup
	for _, s := range down {
		downWG.Add(1)
		go func() { defer downWG.Done(); errc <- s.Run(downCtx) }()
	}
	if col != nil {
		colWG.Add(1)
		go func() { defer colWG.Done(); errc <- col.Run(colCtx) }()
	}
	stopStatus := rt.statusLine(ctx, os.Stderr)
	rt.log.Info("crumbs is up", "host", cfg.Host.Name, "brokers", cfg.Kafka.Brokers, "clickhouse", cfg.ClickHouse.Addr)

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-errc: // a stage gave up: stop the others
		runErr = err
		if runErr == nil {
			runErr = errors.New("a stage stopped unexpectedly")
		}
	}
	rt.log.Info("shutting down: flushing and committing")
	stopStatus()
	stopCol()
	colWG.Wait()
	stopDown()
	downWG.Wait()
	close(errc)
	for err := range errc {
		if err != nil && runErr == nil {
			runErr = err
		}
	}
	return runErr
}

// statusLine prints each stage's records in and out per second (or, for a stage waiting for
// its store, how long and why), its consumer lag and its drops every status.interval; on a
// terminal the line refreshes in place.
func (rt *runtime) statusLine(ctx context.Context, w io.Writer) (stop func()) {
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
		kcfg, err := rt.kafka(kafka.RoleAdmin)
		if err != nil {
			return
		}
		cl, err := kgo.NewClient(kcfg.ClientOpts()...)
		if err != nil {
			return
		}
		defer cl.Close()
		adm := kadm.NewClient(cl)
		prev := map[*telemetry.StageCounters]telemetry.Snapshot{}
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
			lags := groupLags(ctx, adm, rt.counters)
			var parts []string
			for _, c := range rt.counters {
				s := c.Snapshot()
				p := prev[c]
				prev[c] = s
				sec := every.Seconds()
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
