package collectors_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/collectors"
	"github.com/threatcrumbs/crumbs/collectors/containers"
	"github.com/threatcrumbs/crumbs/collectors/network"
	"github.com/threatcrumbs/crumbs/collectors/process"
	"github.com/threatcrumbs/crumbs/collectors/registry"
	"github.com/threatcrumbs/crumbs/collectors/system"
	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/schemas"
)

// TestStageContainerMetadata: programs executed in a container of Debian's containerd reach
// crumbs.raw.process with the container's name and image, which the collect stage asked
// containerd about (the kernel's exec events, the publisher's lookup, the real runtime).
func TestStageContainerMetadata(t *testing.T) {
	testenv.RequireBPF(t)
	ctrd := testenv.StartContainerd(t)
	archive, digest := testenv.OCIArchive(t, "localhost/crumbs-e2e:1")
	ctrd.Ctr(t, "images", "import", archive)
	id := strings.Repeat("e2e0", 16)
	ctrd.Ctr(t, "run", "-d", "--mount", "type=bind,src=/usr,dst=/usr,options=rbind:ro",
		"--label", "io.kubernetes.container.name=probe", "localhost/crumbs-e2e:1", id, "/usr/bin/sleep", "600")

	emb, err := kafka.StartEmbedded(kafka.EmbeddedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = emb.Addrs()
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	admin, err := kgo.NewClient(kcfg.ClientOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := kcfg.EnsureTopics(t.Context(), admin, kcfg.AllTopics()); err != nil {
		t.Fatal(err)
	}
	ncfg := network.DefaultConfig()
	ncfg.Enabled = false
	cfg := stageConfig(process.DefaultConfig(), ncfg)
	scfg := system.DefaultConfig()
	scfg.Enabled = false
	cfg.Collectors["system"] = scfg
	cfg.Containers = containers.DefaultConfig()
	cfg.Containers.Sockets, cfg.Containers.Kubernetes.Enabled = []string{"containerd:" + ctrd.Socket}, "false"
	st, err := collectors.NewStage(cfg, kcfg, registry.Factories(),
		collectors.StageDeps{Host: schemas.Host{ID: "ctr-test", Name: "ctr-test"}, Metrics: prometheus.NewRegistry(), Serde: serde})
	if err != nil {
		t.Fatalf("NewStage: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	runErr := make(chan error, 1)
	go func() { runErr <- st.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	cl, err := kgo.NewClient(kgo.SeedBrokers(emb.Addrs()...), kgo.ConsumeTopics(kcfg.Topics().Raw("process")),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// Each exec in the container is an event; the first ones go out before containerd has
	// answered (counted as pending), the later ones carry what it said.
	var got *schemas.Container
	execs, inContainer := 0, 0
	for deadline := time.Now().Add(60 * time.Second); got == nil && time.Now().Before(deadline); {
		execs++
		ctrd.Ctr(t, "task", "exec", "--exec-id", fmt.Sprintf("probe-%d", execs), id, "/usr/bin/true")
		pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fs := cl.PollFetches(pctx)
		pcancel()
		fs.EachRecord(func(r *kgo.Record) {
			_, native, err := serde.Decode(r.Value)
			if err != nil {
				t.Fatalf("decode process event: %v", err)
			}
			var ev schemas.ProcessEvent
			if err := schemas.FromNative(native, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Action != schemas.ActionExec || ev.Process.ContainerID != id || ev.Process.File.Path != "/usr/bin/true" {
				return
			}
			inContainer++
			if ev.Process.Container != nil {
				got = ev.Process.Container
			}
		})
	}
	want := &schemas.Container{Name: "probe", Image: "localhost/crumbs-e2e:1", ImageID: digest, Runtime: "containerd"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("container of the execs in %s (%d execs run, %d seen in the container) (-want +got):\n%s", id, execs, inContainer, diff)
	}
}
