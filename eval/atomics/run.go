package atomics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/threatcrumbs/crumbs/detectors/engine"
)

// Config says where and how long simulations run.
type Config struct {
	// Scratch is the directory under which each simulation gets a fresh working directory;
	// it must not be under /tmp. Default /var/lib/crumbs/eval.
	Scratch string
	// Timeout bounds one simulation's shell; what is left of it is killed. Default 30s.
	Timeout time.Duration
	// Settle is how long after a simulation's shell exits the evaluator waits for its events
	// and alerts to land in ClickHouse before judging it; up to three times as long while
	// the shell's exit has not landed. Default 15s.
	Settle time.Duration
	// Database is the ClickHouse database the pipeline writes to. Default crumbs.
	Database string
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{Scratch: "/var/lib/crumbs/eval", Timeout: 30 * time.Second, Settle: 15 * time.Second, Database: "crumbs"}
}

// Validate names the first problem of c.
func (c Config) Validate() error {
	switch {
	case c.Scratch == "" || !filepath.IsAbs(c.Scratch):
		return fmt.Errorf("scratch %q: must be an absolute directory", c.Scratch)
	case c.Scratch == "/tmp" || strings.HasPrefix(filepath.Clean(c.Scratch), "/tmp/"):
		return fmt.Errorf("scratch %q: must not be under /tmp (rules judge programs run from there)", c.Scratch)
	case c.Timeout <= 0:
		return fmt.Errorf("timeout %s: must be positive", c.Timeout)
	case c.Settle <= 0:
		return fmt.Errorf("settle %s: must be positive", c.Settle)
	case c.Database == "":
		return errors.New("database: is empty")
	}
	return nil
}

// Why a simulation has no alert carrying its technique.
const (
	WhyNotRun       = "not run"      // a prerequisite is not met here
	WhyNoTelemetry  = "no telemetry" // nothing of its tree but its shell was seen
	WhyNoRule       = "no rule"      // no loaded rule carries its technique or the parent
	WhyRuleMissed   = "rule missed"  // rules carry it, none fired on its events
	WhyShellMissing = "shell not seen"
	WhyToolMissing  = "tool missing here" // the shell said a command was not found
)

// notFound finds what a shell says of a command it could not find ("sh: 1: sudo: not found",
// "bash: line 1: sudo: command not found").
var notFound = regexp.MustCompile(`(?m)(?:^|: )([A-Za-z0-9_.+-]+): (?:command )?not found`)

// AlertHit is an alert one of whose evidence events is a simulation's.
type AlertHit struct {
	RuleID   string   `json:"rule_id"`
	Title    string   `json:"title"`
	Severity string   `json:"severity"`
	Tags     []string `json:"tags"`
	// Technique says whether the alert carries the simulation's technique or its parent.
	Technique bool `json:"technique"`
}

// Result is what became of one simulation.
type Result struct {
	Simulation Simulation `json:"simulation"`
	// Skipped says why it did not run (a prerequisite not met); empty when it ran.
	Skipped string `json:"skipped,omitempty"`
	// Exit is how its shell ended: "exit N", "killed after <timeout>" or "not seen".
	Exit string `json:"exit,omitempty"`
	// Events counts the events of its process tree by kind (the harness's own exec left out).
	Events map[string]int `json:"events"`
	// Alerts are the alerts raised on its events, one per rule, sorted by rule id.
	Alerts []AlertHit `json:"alerts"`
	// Technique says whether one of Alerts carries its technique or the parent.
	Technique bool `json:"technique"`
	// Why explains a simulation without such an alert (Why* constants); empty otherwise.
	Why string `json:"why,omitempty"`
	// RulesForTechnique are the loaded rules that carry its technique or the parent.
	RulesForTechnique []string `json:"rules_for_technique"`
	// Latency is the time from its tree's first event to the first credited alert seen in
	// ClickHouse (wall clock, measured by polling every half second); 0 when none.
	Latency time.Duration `json:"latency_ns"`
}

// Evaluator runs simulations against a pipeline that writes to ClickHouse.
type Evaluator struct {
	cfg   Config
	conn  driver.Conn
	index map[string][]string // technique (t1053.003) -> rule ids carrying it
	logf  func(format string, args ...any)
}

// New returns an Evaluator reading what the pipeline wrote through conn; rules are the
// rules the pipeline runs (for why a technique was missed), logf receives progress lines.
func New(cfg Config, conn driver.Conn, rules []*engine.Rule, logf func(string, ...any)) (*Evaluator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("eval atomics: %w", err)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("eval atomics: simulations run as root: run it as root")
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	e := &Evaluator{cfg: cfg, conn: conn, index: map[string][]string{}, logf: logf}
	for _, r := range rules {
		for _, tag := range r.Tags {
			t := strings.TrimPrefix(strings.ToLower(tag), "attack.")
			if strings.HasPrefix(t, "t1") && !slices.Contains(e.index[t], r.ID) {
				e.index[t] = append(e.index[t], r.ID)
			}
		}
	}
	return e, nil
}

// Run runs sims one at a time and returns what became of each. It stops early, with the
// results so far, when ctx is done.
func (e *Evaluator) Run(ctx context.Context, sims []Simulation) ([]Result, error) {
	out := make([]Result, 0, len(sims))
	for _, s := range sims {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		r, err := e.runOne(ctx, s)
		if err != nil {
			return out, fmt.Errorf("%s (%s): %w", s.ID(), s.Name, err)
		}
		e.logf("%s %s: %s", s.ID(), s.Name, r.line())
		out = append(out, r)
	}
	return out, nil
}

func (r Result) line() string {
	switch {
	case r.Skipped != "":
		return "not run: " + r.Skipped
	case r.Technique:
		return fmt.Sprintf("%s; technique alert after %s", r.Exit, r.Latency.Round(100*time.Millisecond))
	}
	return fmt.Sprintf("%s; %d alerts; %s", r.Exit, len(r.Alerts), r.Why)
}

func (e *Evaluator) rulesFor(s Simulation) []string {
	var ids []string
	for _, t := range s.Techniques() {
		ids = append(ids, e.index[t]...)
	}
	sort.Strings(ids)
	return slices.Compact(ids)
}

func (e *Evaluator) runOne(ctx context.Context, s Simulation) (Result, error) {
	r := Result{Simulation: s, Events: map[string]int{}, RulesForTechnique: e.rulesFor(s)}
	dir, err := scratchDir(e.cfg.Scratch, "sim-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	apart, err := scratchDir(e.cfg.Scratch, "apart-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(apart)
	for _, c := range s.Setup {
		if out, err := runApart(ctx, apart, "sh", c, e.cfg.Timeout); err != nil {
			e.logf("%s setup: %v: %s", s.ID(), err, strings.TrimSpace(out))
		}
	}
	for _, c := range s.Prereqs {
		if _, err := runApart(ctx, apart, "sh", c, e.cfg.Timeout); err != nil {
			r.Skipped = "prerequisite not met here: " + strings.TrimSpace(c)
			r.Why = WhyNotRun
			return r, nil
		}
	}
	from := time.Now()
	d, err := launch(ctx, dir, s.Executor, s.Command, filepath.Join(apart, "output"))
	if err != nil {
		return r, err
	}
	exited, err := d.wait(ctx, e.cfg.Timeout)
	d.kill()
	if err != nil {
		return r, err
	}
	to := time.Now()
	var missing []string
	if f, err := os.Open(filepath.Join(apart, "output")); err == nil {
		b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
		f.Close()
		for _, m := range notFound.FindAllStringSubmatch(string(b), -1) {
			if !slices.Contains(missing, m[1]) {
				missing = append(missing, m[1])
			}
		}
	}
	if strings.TrimSpace(s.Cleanup) != "" {
		if out, err := runApart(ctx, apart, s.Executor, s.Cleanup, e.cfg.Timeout); err != nil {
			e.logf("%s cleanup: %v: %s", s.ID(), err, strings.TrimSpace(out))
		}
	}
	// Poll until an alert carrying the technique is seen, or the settle time has passed and
	// the shell's exit has landed (a loaded pipeline may take longer than the settle time to
	// land a simulation's events), or three settle times have passed.
	settled, limit := to.Add(e.cfg.Settle), to.Add(3*e.cfg.Settle)
	var t *tree
	for {
		tr, found, err := e.judge(ctx, &r, d.pid, from, to)
		if err != nil {
			return r, err
		}
		if found {
			t = tr
		}
		now := time.Now()
		if r.Technique || now.After(limit) || (now.After(settled) && t != nil && (t.exited || !exited)) {
			break
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	switch {
	case t == nil:
		r.Exit = "not seen"
	case t.exited:
		r.Exit = fmt.Sprintf("exit %d", t.exitCode)
	case !exited:
		r.Exit = fmt.Sprintf("killed after %s", e.cfg.Timeout)
	default:
		r.Exit = "exit not seen"
	}
	if !r.Technique && !s.Benign {
		switch {
		case t == nil:
			r.Why = WhyShellMissing
		case len(missing) > 0:
			r.Why = WhyToolMissing + ": " + strings.Join(missing, ", ")
		case r.Events["process"] <= 1 && r.Events["file"]+r.Events["identity"]+r.Events["network"] == 0:
			r.Why = WhyNoTelemetry
		case len(r.RulesForTechnique) == 0:
			r.Why = WhyNoRule
		default:
			r.Why = WhyRuleMissed
		}
	}
	return r, nil
}

// judge reads the events of the simulation's tree and the alerts raised on them into r; found
// is false while its shell has not landed yet.
func (e *Evaluator) judge(ctx context.Context, r *Result, pid int, from, to time.Time) (*tree, bool, error) {
	lo := from.Add(-time.Duration(startSlack)).UnixNano()
	procs, err := e.processEvents(ctx, lo)
	if err != nil {
		return nil, false, err
	}
	t, ok := buildTree(procs, pid, from.UnixNano(), to.UnixNano())
	if !ok {
		return nil, false, nil
	}
	var ids []string
	events := map[string]int{}
	for _, ev := range procs {
		if t.ownsProcessEvent(ev) {
			ids = append(ids, ev.ID)
			if ev.Action == "exec" {
				events["process"]++
			}
		}
	}
	for _, kind := range []string{"file", "identity", "network"} {
		others, err := e.kindEvents(ctx, kind, lo, t.pids())
		if err != nil {
			return nil, false, err
		}
		for _, ev := range others {
			if t.ownsAt(ev.PID, ev.Time) {
				ids = append(ids, ev.ID)
				events[kind]++
			}
		}
	}
	r.Events = events
	alerts, err := e.alerts(ctx, lo, ids)
	if err != nil {
		return nil, false, err
	}
	techs := r.Simulation.Techniques()
	r.Alerts = r.Alerts[:0]
	for _, a := range alerts {
		for _, tag := range a.Tags {
			if slices.Contains(techs, strings.TrimPrefix(strings.ToLower(tag), "attack.")) {
				a.Technique = true
			}
		}
		r.Alerts = append(r.Alerts, a)
		if a.Technique && !r.Technique {
			r.Technique = true
			if t.first > 0 {
				r.Latency = time.Since(time.Unix(0, t.first))
			}
		}
	}
	return t, true, nil
}

// processEvents are the process events since lo (ns), in time order.
func (e *Evaluator) processEvents(ctx context.Context, lo int64) ([]procEvent, error) {
	q := fmt.Sprintf(`SELECT event_id, time_ns, action, pid, ppid, start_time, parent_start_time, exit_code, position(cmd_line, ?) > 0
		FROM %s.process_events WHERE time_ns >= ? ORDER BY time_ns, event_id`, e.cfg.Database)
	rows, err := e.conn.Query(ctx, q, harnessMark, uint64(lo))
	if err != nil {
		return nil, fmt.Errorf("read process events: %w", err)
	}
	defer rows.Close()
	var out []procEvent
	for rows.Next() {
		var ev procEvent
		var t uint64
		var harness uint8
		if err := rows.Scan(&ev.ID, &t, &ev.Action, &ev.PID, &ev.PPID, &ev.Start, &ev.ParentStart, &ev.ExitCode, &harness); err != nil {
			return nil, fmt.Errorf("read process events: %w", err)
		}
		ev.Time, ev.Harness = int64(t), harness == 1
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read process events: %w", err)
	}
	return out, nil
}

// kindEvents are the events of kind since lo whose process has one of pids.
func (e *Evaluator) kindEvents(ctx context.Context, kind string, lo int64, pids []int32) ([]kindEvent, error) {
	if len(pids) == 0 {
		return nil, nil
	}
	q := fmt.Sprintf(`SELECT event_id, time_ns, pid FROM %s.%s_events WHERE time_ns >= ? AND has(?, pid)`, e.cfg.Database, kind)
	rows, err := e.conn.Query(ctx, q, uint64(lo), pids)
	if err != nil {
		return nil, fmt.Errorf("read %s events: %w", kind, err)
	}
	defer rows.Close()
	var out []kindEvent
	for rows.Next() {
		ev := kindEvent{Kind: kind}
		var t uint64
		if err := rows.Scan(&ev.ID, &t, &ev.PID); err != nil {
			return nil, fmt.Errorf("read %s events: %w", kind, err)
		}
		ev.Time = int64(t)
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s events: %w", kind, err)
	}
	return out, nil
}

// alerts are the alerts (one per rule) whose evidence names one of ids.
func (e *Evaluator) alerts(ctx context.Context, lo int64, ids []string) ([]AlertHit, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	// An alert's time is its first evidence's: an alert that a throttle window folded this
	// simulation into may be older than the simulation, so the time bound is loose.
	q := fmt.Sprintf(`SELECT rule_id, any(title), any(severity), any(tags) FROM %s.alerts ARRAY JOIN evidence AS ev
		WHERE time_ns >= ? AND has(?, ev) GROUP BY rule_id ORDER BY rule_id`, e.cfg.Database)
	rows, err := e.conn.Query(ctx, q, uint64(lo-int64(time.Hour)), ids)
	if err != nil {
		return nil, fmt.Errorf("read alerts: %w", err)
	}
	defer rows.Close()
	var out []AlertHit
	for rows.Next() {
		var a AlertHit
		if err := rows.Scan(&a.RuleID, &a.Title, &a.Severity, &a.Tags); err != nil {
			return nil, fmt.Errorf("read alerts: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read alerts: %w", err)
	}
	return out, nil
}
