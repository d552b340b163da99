package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	crumbscollectors "github.com/threatcrumbs/crumbs/collectors"
	"github.com/threatcrumbs/crumbs/collectors/containers"
	"github.com/threatcrumbs/crumbs/collectors/file"
	"github.com/threatcrumbs/crumbs/collectors/identity"
	"github.com/threatcrumbs/crumbs/collectors/network"
	"github.com/threatcrumbs/crumbs/collectors/process"
	"github.com/threatcrumbs/crumbs/collectors/system"
	"github.com/threatcrumbs/crumbs/console"
	"github.com/threatcrumbs/crumbs/detectors"
	"github.com/threatcrumbs/crumbs/enrichers"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/schemas"
	"github.com/threatcrumbs/crumbs/sinks/clickhouse"
	"github.com/threatcrumbs/crumbs/sinks/outputs"
)

// Config is crumbs' whole configuration; configdoc.go says what each key means and
// docs/configuration.md, generated from it, documents every key.
type Config struct {
	Log        LogConfig         `mapstructure:"log"`
	Host       HostConfig        `mapstructure:"host"`
	Metrics    MetricsConfig     `mapstructure:"metrics"`
	Status     StatusConfig      `mapstructure:"status"`
	Up         UpConfig          `mapstructure:"up"`
	Kafka      kafka.Config      `mapstructure:"kafka"`
	ClickHouse clickhouse.Config `mapstructure:"clickhouse"`
	Collectors CollectorsConfig  `mapstructure:"collectors"`
	Enricher   enrichers.Config  `mapstructure:"enricher"`
	Detector   detectors.Config  `mapstructure:"detector"`
	Alerts     outputs.Config    `mapstructure:"alerts"`
	Console    console.Config    `mapstructure:"console"`
}

// LogConfig configures logging (log/slog to stderr).
type LogConfig struct {
	// Level is debug, info, warn or error. Default info.
	Level string `mapstructure:"level"`
	// Format is text or json. Default text.
	Format string `mapstructure:"format"`
}

// HostConfig names this host in the events it collects.
type HostConfig struct {
	// ID is the machine id; default: /etc/machine-id.
	ID string `mapstructure:"id"`
	// Name is the host name; default: the kernel's host name.
	Name string `mapstructure:"name"`
}

// MetricsConfig configures the Prometheus and health endpoint.
type MetricsConfig struct {
	// Listen is the address serving /metrics and /healthz; empty turns it off.
	// Default 127.0.0.1:9464.
	Listen string `mapstructure:"listen"`
	// Pprof serves Go's profiles (net/http/pprof) under /debug/pprof/ on Listen as well. Each
	// stage's goroutines carry the profile label stage=<name> (collect, enrich, detect, sink,
	// alerts; the embedded broker's have none), so a CPU profile of crumbs up tells the stages
	// apart (go tool pprof -tagfocus stage=sink). Off by default: a profile shows what the
	// process holds, and Listen may be reachable by other local users.
	Pprof bool `mapstructure:"pprof"`
}

// StatusConfig configures `crumbs up`'s status line.
type StatusConfig struct {
	// Interval between status lines; 0 turns them off. Default 1s.
	Interval time.Duration `mapstructure:"interval"`
}

// UpConfig configures `crumbs up`.
type UpConfig struct {
	// Stages are the stages `crumbs up` runs beside its embedded broker: collect, enrich,
	// detect, sink, alerts and console. Leave some out to run them apart (`crumbs detect`, ...).
	// Default all.
	Stages []string `mapstructure:"stages"`
}

// upStages are the stages `crumbs up` can run.
var upStages = []string{"collect", "enrich", "detect", "sink", "alerts", "console"}

// CollectorsConfig configures the collectors (keys under `collectors.`).
type CollectorsConfig struct {
	Process  process.Config  `mapstructure:"process"`
	Network  network.Config  `mapstructure:"network"`
	File     file.Config     `mapstructure:"file"`
	Identity identity.Config `mapstructure:"identity"`
	System   system.Config   `mapstructure:"system"`
	// HostRoot is where the host's root directory is mounted when crumbs runs in a container
	// ("/host" in the DaemonSet and docker-compose.yml): the files events name, watched
	// paths, passwd and group files, libpam, the cgroup mount and /etc/machine-id are read
	// under it, and events still carry the host's paths. Default empty: crumbs runs on the
	// host.
	HostRoot string `mapstructure:"host_root"`
	// Spool, Redact, Health and Containers apply to every collector.
	Spool      crumbscollectors.SpoolConfig  `mapstructure:"spool"`
	Redact     crumbscollectors.RedactConfig `mapstructure:"redact"`
	Health     crumbscollectors.HealthConfig `mapstructure:"health"`
	Containers containers.Config             `mapstructure:"containers"`
}

// byName returns each collector's configuration by its key under collectors. (the name of
// its factory, collectors.Factory.Name), and the shared settings under theirs.
func (c CollectorsConfig) byName() map[string]any {
	out := make(map[string]any)
	v := reflect.ValueOf(c)
	for i := range v.NumField() {
		if key := v.Type().Field(i).Tag.Get("mapstructure"); key != "" {
			out[key] = v.Field(i).Interface()
		}
	}
	return out
}

// defaultConfig returns every key's default.
func defaultConfig() Config {
	return Config{
		Log:        LogConfig{Level: "info", Format: "text"},
		Metrics:    MetricsConfig{Listen: "127.0.0.1:9464"},
		Status:     StatusConfig{Interval: time.Second},
		Up:         UpConfig{Stages: slices.Clone(upStages)},
		Kafka:      kafka.DefaultConfig(),
		ClickHouse: clickhouse.DefaultConfig(),
		Collectors: CollectorsConfig{Process: process.DefaultConfig(), File: file.DefaultConfig(), Network: network.DefaultConfig(),
			Identity: identity.DefaultConfig(), System: system.DefaultConfig(),
			Spool: crumbscollectors.DefaultSpoolConfig(), Redact: crumbscollectors.DefaultRedactConfig(), Health: crumbscollectors.DefaultHealthConfig(),
			Containers: containers.DefaultConfig()},
		Enricher: enrichers.DefaultConfig(),
		Detector: detectors.DefaultConfig(),
		Alerts:   outputs.DefaultConfig(),
		Console:  console.DefaultConfig(),
	}
}

// Validate reports every invalid key.
func (c *Config) Validate() error {
	var errs []error
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q: must be debug, info, warn or error", c.Log.Level))
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		errs = append(errs, fmt.Errorf("log.format: %q: must be text or json", c.Log.Format))
	}
	for _, st := range c.Up.Stages {
		if !slices.Contains(upStages, st) {
			errs = append(errs, fmt.Errorf("up.stages: %q: no such stage (have: %s)", st, strings.Join(upStages, ", ")))
		}
	}
	if r := c.Collectors.HostRoot; r != "" && !filepath.IsAbs(r) {
		errs = append(errs, fmt.Errorf("collectors.host_root: %q: must be an absolute path", r))
	}
	if c.Status.Interval < 0 {
		errs = append(errs, fmt.Errorf("status.interval: %s: must not be negative", c.Status.Interval))
	}
	for _, v := range []interface{ Validate() error }{c.Kafka, c.ClickHouse, c.Collectors.Process, c.Collectors.File, c.Collectors.Network,
		c.Collectors.Identity, c.Collectors.System, c.Collectors.Spool, c.Collectors.Redact, c.Collectors.Health, c.Collectors.Containers, c.Enricher, c.Detector, c.Alerts, c.Console} {
		if err := v.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// fillHost sets the host id and name from the machine when not configured: its
// /etc/machine-id and host name, read under collectors.host_root when crumbs runs in a
// container (whose own host name is not the host's).
func (c *Config) fillHost() {
	root := c.Collectors.HostRoot
	if c.Host.ID == "" {
		if b, err := os.ReadFile(filepath.Join("/", root, "etc/machine-id")); err == nil {
			c.Host.ID = strings.TrimSpace(string(b))
		}
	}
	if c.Host.Name == "" && root != "" && root != "/" {
		if b, err := os.ReadFile(filepath.Join(root, "etc/hostname")); err == nil {
			c.Host.Name = strings.TrimSpace(string(b))
		}
	}
	if c.Host.Name == "" {
		c.Host.Name, _ = os.Hostname()
	}
	if c.Host.ID == "" {
		c.Host.ID = c.Host.Name
	}
}

func (c *Config) host() schemas.Host { return schemas.Host{ID: c.Host.ID, Name: c.Host.Name} }

// logger builds the process's logger.
func (c *Config) logger() *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Log.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
