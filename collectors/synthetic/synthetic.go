// Package synthetic is a collector of made-up process events, for load tests and benchmarks
// (`crumbs loadgen`): it produces realistic raw events at a target rate to crumbs.raw.process,
// stamped with the time they are produced, so end-to-end latency can be measured downstream.
package synthetic

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/threatcrumbs/crumbs/schemas"
)

// Config says what to generate.
type Config struct {
	Rate           int           // events per second; 0: as fast as the sink of events allows
	Count          int           // events in all; 0: until ctx is done or Duration passes
	Duration       time.Duration // how long to run; 0: until Count or ctx
	Hosts          int           // distinct hosts the events come from; default 10
	SuspiciousEach int           // every n-th event is a shell started by java; 0: never
	Seed           uint64        // random seed, for reproducible runs
}

var images = []string{"/usr/bin/ls", "/usr/bin/cat", "/usr/bin/grep", "/usr/sbin/nginx", "/usr/bin/python3", "/usr/lib/jvm/bin/java", "/usr/bin/curl", "/usr/bin/systemctl"}

// parents start the images; none is a service runtime, so that only the events made
// suspicious on purpose raise the built-in rules.
var parents = []string{"/usr/lib/systemd/systemd", "/usr/sbin/cron", "/usr/bin/bash", "/usr/sbin/sshd"}

// Generator makes events.
type Generator struct {
	cfg   Config
	rng   *rand.Rand
	hosts []schemas.Host
	n     int
}

// New returns a generator.
func New(cfg Config) *Generator {
	if cfg.Hosts <= 0 {
		cfg.Hosts = 10
	}
	g := &Generator{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x6372756d6273))}
	for i := range cfg.Hosts {
		name := "loadgen-" + strconv.Itoa(i)
		g.hosts = append(g.hosts, schemas.Host{ID: fmt.Sprintf("%032x", i+1), Name: name})
	}
	return g
}

// Next returns the next event, stamped now.
func (g *Generator) Next() *schemas.ProcessEvent {
	g.n++
	h := g.hosts[g.rng.IntN(len(g.hosts))]
	img := images[g.rng.IntN(len(images))]
	parent := parents[g.rng.IntN(len(parents))]
	if g.cfg.SuspiciousEach > 0 && g.n%g.cfg.SuspiciousEach == 0 {
		img, parent = "/bin/sh", "/opt/app/bin/java"
	}
	pid := int32(1000 + g.rng.IntN(60000))
	args := []string{img, "--request", strconv.Itoa(g.n)}
	return &schemas.ProcessEvent{
		Envelope: schemas.Envelope{EventID: schemas.NewEventID(), Time: time.Now().UnixNano(), Host: h, Kind: schemas.KindProcess},
		Action:   schemas.ActionExec,
		Process: schemas.Process{
			PID: pid, PPID: pid - 1, Args: args, CmdLine: schemas.JoinArgs(args), CWD: "/",
			File: schemas.File{Path: img, Name: baseName(img), SHA256: fmt.Sprintf("%064x", g.rng.Uint64())},
			UID:  1000, UserName: "app", GID: 1000, GroupName: "app", LoginUID: 4294967295,
			CgroupID: 1, SystemdUnit: "app.service",
			Parent: schemas.Parent{PID: pid - 1, File: schemas.File{Path: parent, Name: baseName(parent)}, CmdLine: parent},
		},
	}
}

// Run calls emit for each event at the configured rate until Count, Duration or ctx ends it,
// and returns how many events it made.
func (g *Generator) Run(ctx context.Context, emit func(*schemas.ProcessEvent) error) (int, error) {
	if g.cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.cfg.Duration)
		defer cancel()
	}
	start := time.Now()
	made := 0
	for g.cfg.Count == 0 || made < g.cfg.Count {
		if ctx.Err() != nil {
			return made, nil
		}
		if g.cfg.Rate > 0 && made%100 == 0 {
			// Pace in steps of 100 events: sleep until the schedule catches up.
			due := start.Add(time.Duration(float64(made) / float64(g.cfg.Rate) * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-ctx.Done():
					return made, nil
				case <-time.After(d):
				}
			}
		}
		if err := emit(g.Next()); err != nil {
			return made, err
		}
		made++
	}
	return made, nil
}

func baseName(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[i+1:]
		}
	}
	return p
}
