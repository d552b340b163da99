package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	crumbscollectors "github.com/threatcrumbs/crumbs/collectors"
	"github.com/threatcrumbs/crumbs/collectors/containers"
	"github.com/threatcrumbs/crumbs/collectors/identity"
	"github.com/threatcrumbs/crumbs/collectors/registry"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/termsafe"
	"github.com/threatcrumbs/crumbs/sinks/clickhouse"
)

// minFreeBytes is the least free disk space doctor accepts for the spool and the embedded
// broker's data.
const minFreeBytes = 256 << 20

func doctorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Say what this host allows (kernel, BPF capabilities, ClickHouse, Kafka, disk) and what each collector will do here; exit 1 when something required is missing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			asJSON, _ := cmd.Flags().GetBool("json")
			rep := diagnose(cmd.Context(), cfg)
			if asJSON {
				b, err := json.MarshalIndent(rep, "", "  ")
				if err != nil {
					return err
				}
				if _, err := cmd.OutOrStdout().Write(append(termsafe.JSON(b), '\n')); err != nil {
					return err
				}
			} else {
				rep.write(cmd.OutOrStdout())
			}
			if !rep.OK {
				return &exitCode{1, errors.New("doctor: " + strings.Join(rep.Missing, "; "))}
			}
			return nil
		},
	}
	cmd.Flags().Bool("json", false, "print the report as JSON")
	return cmd
}

// doctorReport is what crumbs doctor found.
type doctorReport struct {
	OK         bool                         `json:"ok"`
	Missing    []string                     `json:"missing,omitempty"` // what is required and missing
	Host       []crumbscollectors.HostCheck `json:"host"`
	Collectors []collectorDiagnosis         `json:"collectors"`
}

// collectorDiagnosis is what one collector will do here.
type collectorDiagnosis struct {
	Collector string                           `json:"collector"`
	Enabled   bool                             `json:"enabled"`
	Running   bool                             `json:"running"`
	Error     string                           `json:"error,omitempty"` // why it cannot run, or its configuration error
	Lost      string                           `json:"lost,omitempty"`
	Features  []crumbscollectors.FeatureReport `json:"features,omitempty"`
}

// diagnose checks this host against cfg: the kernel, libpam, ClickHouse, Kafka and disk,
// then builds each enabled collector as crumbs up would (loading and attaching its
// programs), reads its report and releases it.
func diagnose(ctx context.Context, cfg *Config) doctorReport {
	var (
		rep doctorReport
		wg  sync.WaitGroup
	)
	// The host's checks and the collectors' loads wait on the kernel mostly: side by side.
	wg.Go(func() {
		rep.Host = append(crumbscollectors.KernelChecks(), libPAMCheck(cfg), containersCheck(ctx, cfg), schemaRegistryCheck(ctx, cfg), clickHouseCheck(ctx, cfg), kafkaCheck(ctx, cfg),
			crumbscollectors.DiskCheck("disk: spool", cfg.Collectors.Spool.Dir, minFreeBytes))
		if len(cfg.Kafka.Brokers) == 0 {
			rep.Host = append(rep.Host, crumbscollectors.DiskCheck("disk: embedded kafka", cfg.Kafka.Embedded.DataDir, minFreeBytes))
		}
	})
	var missing []string
	rep.Collectors, missing = diagnoseCollectors(cfg)
	wg.Wait()
	for _, c := range rep.Host {
		if c.Failed() {
			rep.Missing = append(rep.Missing, c.Check+": "+c.Detail)
		}
	}
	rep.Missing = append(rep.Missing, missing...)
	rep.OK = len(rep.Missing) == 0
	return rep
}

// diagnoseCollectors builds each enabled collector as crumbs up would (loading and
// attaching its programs), reads its report and releases it; missing says what keeps one
// from being built, or that none can run.
func diagnoseCollectors(cfg *Config) (out []collectorDiagnosis, missing []string) {
	byName := cfg.Collectors.byName()
	var built []crumbscollectors.Collector
	defer func() { // detaching waits for the kernel: side by side
		var wg sync.WaitGroup
		for _, c := range built {
			wg.Go(c.Close)
		}
		wg.Wait()
	}()
	enabled, running := 0, 0
	for _, f := range registry.Factories() {
		d := collectorDiagnosis{Collector: f.Name, Enabled: f.Enabled(byName[f.Name])}
		if !d.Enabled {
			d.Error = "disabled by configuration (collectors." + f.Name + ".enabled)"
			out = append(out, d)
			continue
		}
		enabled++
		col, err := f.New(byName[f.Name], crumbscollectors.Deps{Host: cfg.host(), HostRoot: cfg.Collectors.HostRoot, Log: slog.New(slog.DiscardHandler), Built: built})
		var un *crumbscollectors.Unavailable
		switch {
		case errors.As(err, &un):
			d.Error, d.Lost, d.Features = un.Error(), un.Report.Lost(), un.Report.Features
		case err != nil:
			d.Error = err.Error()
			missing = append(missing, "collector "+f.Name+": "+err.Error())
		default:
			built = append(built, col)
			running++
			r := col.Report()
			d.Running, d.Lost, d.Features = true, r.Lost(), r.Features
		}
		out = append(out, d)
	}
	if enabled > 0 && running == 0 {
		missing = append(missing, "no enabled collector can run on this host")
	}
	return out, missing
}

// libPAMCheck says which libpam the identity collector would probe.
func libPAMCheck(cfg *Config) crumbscollectors.HostCheck {
	c := crumbscollectors.HostCheck{Check: "libpam", Status: crumbscollectors.CheckOK}
	if p := cfg.Collectors.Identity.LibPAMPath; p != "" {
		c.Detail = p + " (collectors.identity.libpam_path)"
		return c
	}
	p, err := identity.FindLibPAM(cfg.Collectors.HostRoot)
	if err != nil {
		c.Status, c.Detail = crumbscollectors.CheckMissing, err.Error()+": authentications and sessions are not collected"
		return c
	}
	c.Detail = p
	return c
}

// containersCheck says which container runtimes' sockets answer, and whether the node's pods
// are watched: what events will say of their containers. Never required: without a runtime,
// events carry container ids only.
func containersCheck(ctx context.Context, cfg *Config) crumbscollectors.HostCheck {
	c := crumbscollectors.HostCheck{Check: "containers", Status: crumbscollectors.CheckOK}
	if !cfg.Collectors.Containers.Enabled {
		c.Status, c.Detail = "off", "collectors.containers.enabled is false: events carry container ids only"
		return c
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, err := containers.New(ctx, cfg.Collectors.Containers, nil, nil)
	if err != nil {
		c.Status, c.Detail = crumbscollectors.CheckMissing, err.Error()
		return c
	}
	defer r.Close()
	st := r.Status()
	if len(st.Runtimes) == 0 {
		c.Status = crumbscollectors.CheckMissing
	}
	c.Detail = st.String()
	return c
}

// schemaRegistryCheck says whether records will carry the Confluent framing: off without
// kafka.schema_registry.url, else whether the registry answers. Not required: without it,
// records carry single-object encoding.
func schemaRegistryCheck(ctx context.Context, cfg *Config) crumbscollectors.HostCheck {
	c := crumbscollectors.HostCheck{Check: "schema registry", Status: "off",
		Detail: "kafka.schema_registry.url is empty: records carry Avro single-object encoding"}
	if cfg.Kafka.SchemaRegistry.URL == "" {
		return c
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, err := kafka.NewSchemaRegistry(ctx, cfg.Kafka.SchemaRegistry)
	var n int
	if err == nil {
		n, err = r.Check(ctx)
	}
	if err != nil {
		c.Status, c.Detail = crumbscollectors.CheckMissing, cfg.Kafka.SchemaRegistry.URL+": "+err.Error()+": records would carry single-object encoding"
		return c
	}
	c.Status, c.Detail = crumbscollectors.CheckOK, fmt.Sprintf("%s answers (%d subjects): records carry the Confluent framing", cfg.Kafka.SchemaRegistry.URL, n)
	return c
}

// clickHouseCheck connects to ClickHouse and asks its version; required when this host
// runs the sink (up.stages).
func clickHouseCheck(ctx context.Context, cfg *Config) crumbscollectors.HostCheck {
	c := crumbscollectors.HostCheck{Check: "clickhouse", Status: crumbscollectors.CheckOK, Required: slices.Contains(cfg.Up.Stages, "sink")}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	chCfg := cfg.ClickHouse
	chCfg.DialTimeout = min(chCfg.DialTimeout, 3*time.Second)
	st, err := clickhouse.Connect(ctx, chCfg)
	if err != nil {
		c.Status, c.Detail = crumbscollectors.CheckMissing, err.Error()
		return c
	}
	defer st.Close()
	v, err := clickhouse.QueryServerVersion(ctx, st.Conn())
	if err != nil {
		c.Detail = fmt.Sprintf("%v answers; %v", chCfg.Addr, err)
		return c
	}
	c.Detail = fmt.Sprintf("%v answers: ClickHouse %v", chCfg.Addr, v)
	return c
}

// kafkaCheck says whether the configured brokers answer or, for the embedded broker,
// whether its port is free or a broker (an earlier crumbs up) answers there.
func kafkaCheck(ctx context.Context, cfg *Config) crumbscollectors.HostCheck {
	c := crumbscollectors.HostCheck{Check: "kafka", Status: crumbscollectors.CheckOK, Required: true}
	if len(cfg.Kafka.Brokers) > 0 {
		var errs []string
		for _, b := range cfg.Kafka.Brokers {
			if err := kafkaAnswers(ctx, b); err != nil {
				errs = append(errs, err.Error())
				continue
			}
			c.Detail = "broker " + b + " answers"
			return c
		}
		c.Status, c.Detail = crumbscollectors.CheckMissing, "no broker answers: "+strings.Join(errs, "; ")
		return c
	}
	port := cfg.Kafka.Embedded.Port
	if port == 0 {
		c.Detail = "embedded broker on a free port"
		return c
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		ln.Close()
		c.Detail = "embedded broker: " + addr + " is free"
		return c
	}
	if kerr := kafkaAnswers(ctx, addr); kerr == nil {
		c.Detail = "embedded broker: a Kafka broker answers on " + addr + " (crumbs up already runs?)"
		return c
	}
	c.Status, c.Detail = crumbscollectors.CheckMissing, "embedded broker: "+addr+" is taken by something that is not a Kafka broker ("+err.Error()+")"
	return c
}

// kafkaAnswers sends an ApiVersions request (version 0, which a broker answers before any
// authentication) to addr and checks that the answer is Kafka's.
func kafkaAnswers(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	const clientID, correlation = "crumbs-doctor", 0x63726d62
	req := binary.BigEndian.AppendUint16(nil, 18) // ApiVersions
	req = binary.BigEndian.AppendUint16(req, 0)
	req = binary.BigEndian.AppendUint32(req, correlation)
	req = binary.BigEndian.AppendUint16(req, uint16(len(clientID)))
	req = append(binary.BigEndian.AppendUint32(nil, uint32(len(req)+len(clientID))), append(req, clientID...)...)
	if _, err := conn.Write(req); err != nil {
		return fmt.Errorf("%s: %w", addr, err)
	}
	var head [8]byte
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		return fmt.Errorf("%s: no Kafka answer: %w", addr, err)
	}
	if binary.BigEndian.Uint32(head[4:]) != correlation {
		return fmt.Errorf("%s: the answer is not Kafka's", addr)
	}
	return nil
}

// write prints the report as one table: the host's checks, then each collector and its
// features.
func (r doctorReport) write(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tDETAIL")
	for _, c := range r.Host {
		status := c.Status
		if c.Failed() {
			status = strings.ToUpper(status)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Check, status, termsafe.Field(c.Detail))
	}
	for _, c := range r.Collectors {
		status := "runs"
		switch {
		case !c.Enabled:
			status = "off"
		case !c.Running:
			status = "cannot run"
		case c.Lost != "":
			status = "runs, degraded"
		}
		detail := c.Error
		if c.Running && c.Lost != "" {
			detail = "lost here: " + c.Lost
		}
		fmt.Fprintf(tw, "collector %s\t%s\t%s\n", c.Collector, status, termsafe.Field(detail))
		for _, f := range c.Features {
			detail := f.Way
			var refused []string
			for _, rf := range f.Refused {
				refused = append(refused, string(rf.Capability)+": "+rf.Answer)
			}
			if len(refused) > 0 {
				detail += " (refused: " + strings.Join(refused, "; ") + ")"
			}
			if f.Lost != "" {
				detail += "; lost: " + f.Lost
			}
			if len(f.Absent) > 0 {
				detail += "; not on this kernel, nothing lost: " + strings.Join(f.Absent, ", ")
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", f.Feature, f.State, termsafe.Field(strings.TrimSpace(detail)))
		}
	}
	tw.Flush()
	if r.OK {
		fmt.Fprintln(w, "\neverything crumbs needs is here")
	} else {
		fmt.Fprintln(w, "\nmissing: "+termsafe.Field(strings.Join(r.Missing, "; ")))
	}
}
