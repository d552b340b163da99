package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/threatcrumbs/crumbs/pkg/testenv"
)

// command is a crumbs command running in the background.
type command struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan error
}

func (c *command) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(b)
}

func (c *command) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

// background starts `crumbs args...` with the pipeline's environment plus env; t.Cleanup
// kills it if it still runs.
func (p *pipeline) background(env []string, args ...string) *command {
	p.t.Helper()
	c := &command{done: make(chan error, 1)}
	c.cmd = exec.Command(crumbsBin, args...)
	c.cmd.Env = append(append([]string(nil), p.env...), env...)
	c.cmd.Stdout, c.cmd.Stderr = c, c
	if err := c.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	p.t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		<-c.done
		c.done <- nil
	})
	return c
}

// wait waits for the command to exit and fails the test unless it exited 0.
func (c *command) wait(t testing.TB, within time.Duration) {
	t.Helper()
	select {
	case err := <-c.done:
		c.done <- err
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(c.cmd.Args, " "), err, c.output())
		}
	case <-time.After(within):
		t.Fatalf("%s: still running after %s\n%s", strings.Join(c.cmd.Args, " "), within, c.output())
	}
}

var loadgenLine = regexp.MustCompile(`loadgen: (\d+) events .* (\d+) acknowledged, 0 failed`)

// produced reads how many events loadgen says Kafka acknowledged.
func produced(t testing.TB, out string) uint64 {
	t.Helper()
	m := loadgenLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no loadgen summary in %q", out)
	}
	n, _ := strconv.ParseUint(m[2], 10, 64)
	return n
}

// metric reads one sample of a metric (name{labels} value) from a /metrics page.
func metric(url, prefix string) (float64, bool) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, prefix) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			return v, err == nil
		}
	}
	return 0, false
}

// exactlyOnce checks that process_events holds want loadgen events, each once (no FINAL).
func (p *pipeline) exactlyOnce(want uint64) {
	p.t.Helper()
	q := fmt.Sprintf("SELECT count() FROM %s.process_events WHERE startsWith(host_name, 'loadgen-')", p.database)
	p.eventually(3*time.Minute, "every event in ClickHouse", func() (bool, string) {
		c := p.count(q)
		return c >= want, fmt.Sprint(c)
	})
	time.Sleep(2 * time.Second) // a duplicate would land within the sink's flush age
	total := p.count(q)
	unique := p.count(fmt.Sprintf("SELECT uniqExact(event_id) FROM %s.process_events WHERE startsWith(host_name, 'loadgen-')", p.database))
	if total != want || unique != want {
		p.t.Errorf("process_events: %d rows, %d unique, want %d of each", total, unique, want)
	}
}

// TestClickHouseAwayOneMinuteLosesNothing: `crumbs up` takes 5,000 events/s from `crumbs
// loadgen` while its ClickHouse is shut down for 60 s. The sink waits (the status line says
// so), and once ClickHouse is back every event lands exactly once, none dead-lettered.
func TestClickHouseAwayOneMinuteLosesNothing(t *testing.T) {
	srv := testenv.StartClickHouseServer(t)
	// Collectors are not the point here (and the network one cannot load on this kernel).
	p := newPipelineAt(t, srv.Addr, "CRUMBS_UP_STAGES=enrich,detect,sink",
		"CRUMBS_COLLECTORS_NETWORK_ENABLED=false", "CRUMBS_CLICKHOUSE_MAX_BACKOFF=5s")
	p.start()
	load := p.background(nil, "loadgen", "--mix", "process=1", "--rate", "5000", "--count", "400000", "--suspicious-every", "1000")
	q := fmt.Sprintf("SELECT count() FROM %s.process_events WHERE startsWith(host_name, 'loadgen-')", p.database)
	p.eventually(60*time.Second, "the stream under way", func() (bool, string) {
		c := p.count(q)
		return c > 0, fmt.Sprint(c)
	})
	srv.Stop()
	down := time.Now()
	p.eventually(30*time.Second, "the status line to say the sink waits", func() (bool, string) {
		return strings.Contains(p.logs.String(), "sink waiting"), "no 'sink waiting' yet"
	})
	time.Sleep(60*time.Second - time.Since(down))
	srv.Start()
	t.Logf("ClickHouse away for %s", time.Since(down).Round(time.Second))
	load.wait(t, 3*time.Minute)
	n := produced(t, load.output())
	t.Logf("loadgen: %d events acknowledged, %s after the outage began", n, time.Since(down).Round(time.Second))
	p.exactlyOnce(n)
	t.Logf("every event in ClickHouse once, %s after the outage began", time.Since(down).Round(time.Second))
	if out := p.crumbs("dlq", "list", "--stage", "sink"); !strings.Contains(out, "0 dead letters") {
		t.Errorf("crumbs dlq list --stage sink:\n%s\nwant no dead letters", out)
	}
	if err, _ := p.stop(syscall.SIGTERM); err != nil {
		t.Errorf("crumbs up: %v", err)
	}
	var last string
	for _, l := range strings.Split(p.logs.String(), "\n") {
		if strings.Contains(l, "sink waiting") {
			last = l
		}
	}
	t.Logf("last status line of the outage: %s", last)
}

// TestSinkKilledWhileClickHouseIsAway: the sink stage runs apart (`crumbs sink`) and is
// killed (SIGKILL) while ClickHouse is down and it holds a batch; it is started again while
// ClickHouse is still down, waits for it, and once ClickHouse is back every event is there
// exactly once.
func TestSinkKilledWhileClickHouseIsAway(t *testing.T) {
	srv := testenv.StartClickHouseServer(t)
	p := newPipelineAt(t, srv.Addr, "CRUMBS_UP_STAGES=enrich,detect", "CRUMBS_COLLECTORS_NETWORK_ENABLED=false",
		"CRUMBS_CLICKHOUSE_MAX_BACKOFF=2s")
	p.start()
	metrics := freePort(t)
	sinkEnv := []string{fmt.Sprintf("CRUMBS_KAFKA_BROKERS=127.0.0.1:%d", p.port), fmt.Sprintf("CRUMBS_METRICS_LISTEN=127.0.0.1:%d", metrics)}
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", metrics)
	waiting := func(what string) {
		p.eventually(60*time.Second, what, func() (bool, string) {
			v, ok := metric(url, `crumbs_stage_waiting_seconds{group="crumbs-sink",stage="sink"}`)
			return ok && v > 0, fmt.Sprint(v, ok)
		})
	}

	sink := p.background(sinkEnv, "sink")
	first := produced(t, p.crumbs("loadgen", "--mix", "process=1", "--rate", "0", "--count", "20000"))
	q := fmt.Sprintf("SELECT count() FROM %s.process_events WHERE startsWith(host_name, 'loadgen-')", p.database)
	p.eventually(60*time.Second, "the first events in ClickHouse", func() (bool, string) {
		c := p.count(q)
		return c == first, fmt.Sprint(c)
	})
	srv.Kill()
	second := produced(t, p.crumbs("loadgen", "--mix", "process=1", "--rate", "0", "--count", "20000", "--seed", "2"))
	waiting("the sink to wait for ClickHouse")
	_ = sink.cmd.Process.Signal(syscall.SIGKILL)
	<-sink.done
	sink.done <- nil

	sink = p.background(sinkEnv, "sink")
	waiting("the restarted sink to wait for ClickHouse")
	srv.Start()
	p.exactlyOnce(first + second)
	_ = sink.cmd.Process.Signal(syscall.SIGTERM)
	sink.wait(t, 30*time.Second)
}
