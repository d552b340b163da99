package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sys/unix"

	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/privilege"
)

// `crumbs up` is two processes. The one started (as root) prepares the host, starts the
// stages process, loads the collectors' programs, keeps only the capabilities the collectors
// need from then on, runs them and prints the status line. The stages process runs as the
// crumbs user with no capability at all: the embedded broker, every stage that is not a
// collector, and every HTTP endpoint. They talk over a socket pair (fd 3 in the stages
// process), one JSON message per line (upMessage).

// downStages are the stages the stages process runs, in the order they start (they stop in
// the reverse one... all at once, after the collectors have flushed). A stage joins crumbs
// up with a line here, its name in upStages and its role's line in pkg/kafka/roles.go.
var downStages = []struct {
	name  string
	build func(*runtime) (stage, error)
}{
	{"console", (*runtime).console},
	{"alerts", (*runtime).alerts},
	{"sink", (*runtime).sink},
	{"detect", (*runtime).detector},
	{"enrich", (*runtime).enricher},
}

// upMessage is one message between crumbs up and its stages process.
type upMessage struct {
	// Handoff (up to stages, first): what the stages process runs with.
	Handoff *upHandoff `json:"handoff,omitempty"`
	// Ready (stages to up): the broker answers and the topics exist; the stages run.
	Ready bool `json:"ready,omitempty"`
	// Status (stages to up, every status.interval): the stages' parts of the status line.
	Status []string `json:"status,omitempty"`
	// Gather (stages to up) asks for up's metrics, answered by Metrics with the same number.
	Gather     uint64 `json:"gather,omitempty"`
	Metrics    []byte `json:"metrics,omitempty"` // delimited protobuf metric families
	MetricsFor uint64 `json:"metrics_for,omitempty"`
	// Stop (up to stages): the collectors have flushed; stop, flush, commit and exit.
	Stop bool `json:"stop,omitempty"`
}

// upHandoff is the configuration and the roles' credentials, which the stages process gets
// through the socket: it can read neither the configuration file, which may be root's, nor
// the credentials directory, which is.
type upHandoff struct {
	Config      *Config                          `json:"config"`
	Credentials map[kafka.Role]kafka.Credentials `json:"credentials,omitempty"`
}

// maxUpMessage bounds a message (the configuration, or a metrics answer).
const maxUpMessage = 64 << 20

// upLink is one end of the socket, with writes serialized.
type upLink struct {
	conn net.Conn
	sc   *bufio.Scanner
	mu   sync.Mutex
}

func newUpLink(f *os.File) (*upLink, error) {
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("crumbs up socket: %w", err)
	}
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 64<<10), maxUpMessage)
	return &upLink{conn: conn, sc: sc}, nil
}

func (l *upLink) send(m upMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err = l.conn.Write(append(b, '\n'))
	return err
}

// receive reads the next message; io.EOF when the other end is gone.
func (l *upLink) receive() (upMessage, error) {
	var m upMessage
	if !l.sc.Scan() {
		if err := l.sc.Err(); err != nil {
			return m, err
		}
		return m, io.EOF
	}
	if err := json.Unmarshal(l.sc.Bytes(), &m); err != nil {
		return m, fmt.Errorf("crumbs up socket: %w", err)
	}
	return m, nil
}

// stagesProcess is crumbs up's view of its stages process.
type stagesProcess struct {
	link   *upLink
	pid    int
	ready  chan struct{} // closed on Ready
	done   chan struct{} // closed when the process has exited; err is then its exit
	err    error
	mu     sync.Mutex
	status []string
}

// startStages starts the stages process as u (nil: this process's user) with no privilege,
// hands it cfg and creds, and waits until it is ready. gather serves its requests for this
// process's metrics.
func startStages(ctx context.Context, rt *runtime, u *privilege.User, creds map[kafka.Role]kafka.Credentials) (*stagesProcess, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("crumbs up: socket pair: %w", err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "crumbs-up"), os.NewFile(uintptr(fds[1]), "crumbs-up-stages")
	cmd := newSelfCommand("up-stages")
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	// Its own process group: a Ctrl-C on the terminal stops this process, which stops it
	// in its turn, after the collectors have flushed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	wait, err := privilege.Start(cmd, u)
	theirs.Close()
	if err != nil {
		mine.Close()
		return nil, err
	}
	link, err := newUpLink(mine)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = wait()
		return nil, err
	}
	p := &stagesProcess{link: link, pid: cmd.Process.Pid, ready: make(chan struct{}), done: make(chan struct{})}
	go func() {
		p.err = wait()
		link.conn.Close()
		close(p.done)
	}()
	go p.serve(rt.reg)
	if err := link.send(upMessage{Handoff: &upHandoff{Config: rt.cfg, Credentials: creds}}); err != nil {
		p.kill()
		return nil, fmt.Errorf("crumbs up: hand the configuration to the stages process: %w", err)
	}
	select {
	case <-p.ready:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("crumbs up: the stages process exited before it was ready: %w", p.exit())
	case <-ctx.Done():
		p.kill()
		return nil, ctx.Err()
	}
}

// serve answers the stages process until it is gone.
func (p *stagesProcess) serve(reg prometheus.Gatherer) {
	readyOnce := sync.Once{}
	for {
		m, err := p.link.receive()
		if err != nil {
			return
		}
		switch {
		case m.Ready:
			readyOnce.Do(func() { close(p.ready) })
		case m.Status != nil:
			p.mu.Lock()
			p.status = m.Status
			p.mu.Unlock()
		case m.Gather != 0:
			_ = p.link.send(upMessage{Metrics: encodeMetrics(reg), MetricsFor: m.Gather})
		}
	}
}

// statusParts returns the stages' latest parts of the status line.
func (p *stagesProcess) statusParts() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.status)
}

// stop tells the stages process to stop, and waits for its exit up to wait, then kills it.
func (p *stagesProcess) stop(wait time.Duration) error {
	_ = p.link.send(upMessage{Stop: true})
	select {
	case <-p.done:
	case <-time.After(wait):
		p.kill()
		return fmt.Errorf("crumbs up: the stages process did not stop within %s: killed", wait)
	}
	return p.exit()
}

func (p *stagesProcess) kill() {
	_ = syscall.Kill(p.pid, syscall.SIGKILL)
	<-p.done
}

// exit is the process's exit, once done is closed.
func (p *stagesProcess) exit() error {
	if p.err != nil {
		return fmt.Errorf("stages process: %w", p.err)
	}
	return nil
}

// newSelfCommand runs this binary again with args: /proc/self/exe, which names this very
// file even when it was replaced since, or its directory is closed to the user the child
// runs as.
func newSelfCommand(args ...string) *exec.Cmd {
	cmd := exec.Command("/proc/self/exe", args...)
	cmd.Args[0] = os.Args[0]
	return cmd
}

func encodeMetrics(g prometheus.Gatherer) []byte {
	mfs, _ := g.Gather() // what could be gathered; the rest is logged by nobody, as promhttp would
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeProtoDelim))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			break
		}
	}
	return buf.Bytes()
}

func decodeMetrics(b []byte) ([]*dto.MetricFamily, error) {
	dec := expfmt.NewDecoder(bytes.NewReader(b), expfmt.NewFormat(expfmt.TypeProtoDelim))
	var out []*dto.MetricFamily
	for {
		mf := &dto.MetricFamily{}
		if err := dec.Decode(mf); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return out, err
		}
		out = append(out, mf)
	}
}

func upStagesCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "up-stages",
		Short:  "crumbs up's unprivileged stages process (started by crumbs up; not for direct use)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE:   runUpStages,
	}
}

// runUpStages is the stages process: the embedded broker and every stage but the collectors.
// It stops when crumbs up says so, or is gone; never on a signal of its own, so that the
// collectors flush into a broker that is still there.
func runUpStages(cmd *cobra.Command, _ []string) error {
	signal.Ignore(os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	link, err := newUpLink(os.NewFile(3, "crumbs-up"))
	if err != nil {
		return err
	}
	_ = link.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	first, err := link.receive()
	if err != nil || first.Handoff == nil || first.Handoff.Config == nil {
		return fmt.Errorf("up-stages: no configuration from crumbs up (this command is started by crumbs up only): %v", err)
	}
	_ = link.conn.SetReadDeadline(time.Time{})
	cfg := first.Handoff.Config
	rt, err := newRuntimeFor(cfg, "stages")
	if err != nil {
		return err
	}
	rt.creds = first.Handoff.Credentials
	// Stopped by crumbs up (Stop), or when crumbs up is gone (the socket closed).
	ctx, stop := context.WithCancel(context.WithoutCancel(cmd.Context()))
	defer stop()
	remote := &remoteMetrics{link: link, answers: make(chan upMessage, 1)}
	rt.gatherer = prometheus.Gatherers{rt.reg, prometheus.GathererFunc(remote.gather)}
	go func() {
		defer stop()
		for {
			m, err := link.receive()
			if err != nil || m.Stop {
				return
			}
			if m.MetricsFor != 0 {
				select {
				case remote.answers <- m:
				default:
				}
			}
		}
	}()

	if len(cfg.Kafka.Brokers) == 0 {
		emb, err := kafka.StartSecureEmbeddedWith(ctx, cfg.Kafka, cfg.kafkaScope(), rt.creds, rt.log)
		if err != nil {
			return err
		}
		defer emb.Close()
		cfg.Kafka.Brokers = emb.Addrs()
		rt.log.Info("embedded kafka started", "addrs", cfg.Kafka.Brokers, "data_dir", cfg.Kafka.Embedded.DataDir,
			"credentials", cfg.Kafka.Embedded.CredentialsPath())
		if err := rt.ensureTopics(ctx, kafka.RoleAdmin); err != nil {
			return err
		}
		// Topics made before a size limit, or under another configuration, get this one's.
		if err := rt.alignTopics(ctx); err != nil {
			return err
		}
	} else if err := rt.ensureTopics(ctx, kafka.RoleAdmin); err != nil {
		return err
	}
	stopMetrics, err := rt.serveMetrics(ctx)
	if err != nil {
		return err
	}
	defer stopMetrics()
	var stages []stage
	for _, st := range downStages {
		if !slices.Contains(cfg.Up.Stages, st.name) {
			continue
		}
		s, err := st.build(rt)
		if err != nil {
			return err
		}
		stages = append(stages, labelled{st.name, s})
	}
	if err := link.send(upMessage{Ready: true}); err != nil {
		return fmt.Errorf("up-stages: tell crumbs up: %w", err)
	}
	stopStatus := rt.sendStatus(ctx, link)
	defer stopStatus()
	// A stage that gives up stops the others, and so this process: crumbs up then stops too.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if len(stages) == 0 { // up.stages names only collect, or nothing: the broker alone, until stopped
		<-runCtx.Done()
		return nil
	}
	errs := make([]error, len(stages))
	var wg sync.WaitGroup
	for i, s := range stages {
		wg.Go(func() {
			errs[i] = s.Run(runCtx)
			if errs[i] == nil && runCtx.Err() == nil {
				errs[i] = errors.New("a stage stopped unexpectedly")
			}
			cancel()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// remoteMetrics gathers crumbs up's own metrics (the collectors') through the socket, so
// that the stages process's /metrics serves every stage.
type remoteMetrics struct {
	link    *upLink
	mu      sync.Mutex
	next    uint64
	answers chan upMessage
}

func (r *remoteMetrics) gather() ([]*dto.MetricFamily, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next++
	if err := r.link.send(upMessage{Gather: r.next}); err != nil {
		return nil, fmt.Errorf("gather the collectors' metrics: %w", err)
	}
	deadline := time.After(2 * time.Second)
	for {
		select {
		case m := <-r.answers:
			if m.MetricsFor != r.next {
				continue // an answer that came too late for an earlier request
			}
			return decodeMetrics(m.Metrics)
		case <-deadline:
			return nil, errors.New("gather the collectors' metrics: no answer from crumbs up within 2s")
		}
	}
}

// sendStatus sends the stages' parts of the status line to crumbs up every status.interval.
func (rt *runtime) sendStatus(ctx context.Context, link *upLink) (stop func()) {
	every := rt.cfg.Status.Interval
	if every <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var adm *kadm.Client
		if kcfg, err := rt.kafka(kafka.RoleAdmin); err == nil {
			if cl, err := kgo.NewClient(kcfg.ClientOpts()...); err == nil {
				defer cl.Close()
				adm = kadm.NewClient(cl)
			}
		}
		st := newStatusParts(every)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var lags map[string]int64
			if adm != nil {
				lags = groupLags(ctx, adm, rt.counters)
			}
			_ = link.send(upMessage{Status: st.parts(rt.counters, lags)})
		}
	}()
	return func() { cancel(); <-done }
}
