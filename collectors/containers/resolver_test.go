package containers_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/threatcrumbs/crumbs/collectors/containers"
	"github.com/threatcrumbs/crumbs/collectors/internal/hostinfo"
	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/schemas"
)

// resolve starts a resolver on the sockets, looks id up until the answer comes (the first
// lookup only queues it) and returns it with the resolver's metrics.
func resolve(t *testing.T, sockets []string, id string, kube ...containers.KubernetesConfig) (*schemas.Container, *prometheus.Registry, *containers.Resolver) {
	t.Helper()
	cfg := containers.DefaultConfig()
	cfg.Sockets, cfg.Kubernetes.Enabled = sockets, "false"
	if len(kube) > 0 {
		cfg.Kubernetes = kube[0]
	}
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	r, err := containers.New(ctx, cfg, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	if got := r.Lookup(id); got != nil {
		t.Fatalf("first lookup of %s answered %+v before anything was asked", id, got)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for ctx.Err() == nil {
		if c := r.Lookup(id); c != nil && (len(kube) == 0 || c.Pod != nil && c.Pod.Labels != nil) {
			return c, reg, r
		}
		if testutil.ToFloat64(r.LookupsCounter().WithLabelValues(r.Status().RuntimeNames()[0], "not_found")) > 0 {
			return nil, reg, r
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no answer about %s", id)
	return nil, nil, nil
}

// TestContainerdMetadata runs a container in Debian's containerd, reads its id from the
// cgroup of its process as the collectors do, and asks containerd about it through the
// resolver: name, image, image digest and the Kubernetes pod the CRI labels name, whose
// labels and workload come from the pods API (served by the test: no Kubernetes here).
func TestContainerdMetadata(t *testing.T) {
	ctrd := testenv.StartContainerd(t)
	archive, digest := testenv.OCIArchive(t, "localhost/crumbs-test:1")
	ctrd.Ctr(t, "images", "import", archive)
	id := strings.Repeat("c0de", 16)
	ctrd.Ctr(t, "run", "-d", "--mount", "type=bind,src=/usr,dst=/usr,options=rbind:ro",
		"--label", "io.kubernetes.pod.name=shop-7d9f-x2x", "--label", "io.kubernetes.pod.namespace=prod",
		"--label", "io.kubernetes.pod.uid=6b1c", "--label", "io.kubernetes.container.name=shop",
		"localhost/crumbs-test:1", id, "/usr/bin/sleep", "600")

	var pid string
	for _, line := range strings.Split(ctrd.Ctr(t, "task", "ls"), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == id {
			pid = f[1]
		}
	}
	cg, err := os.ReadFile("/proc/" + pid + "/cgroup")
	if err != nil {
		t.Fatalf("the container's process: %v", err)
	}
	got := hostinfo.ParseCgroup(string(cg)).ContainerID
	if got != id {
		t.Fatalf("container id from the cgroup of pid %s = %q, want %q (cgroup %q)", pid, got, id, cg)
	}

	_, kube := newAPIServer(t, pod("prod", "shop-7d9f-x2x", "6b1c", map[string]string{"app": "shop", "pod-template-hash": "7d9f"},
		"ReplicaSet", "shop-7d9f"))
	c, _, r := resolve(t, []string{"containerd:" + ctrd.Socket}, got, kube)
	want := &schemas.Container{Name: "shop", Image: "localhost/crumbs-test:1", ImageID: digest, Runtime: "containerd",
		Pod: &schemas.Pod{Name: "shop-7d9f-x2x", Namespace: "prod", UID: "6b1c", Labels: []string{"app=shop", "pod-template-hash=7d9f"},
			WorkloadKind: "Deployment", WorkloadName: "shop"}}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("container (-want +got):\n%s", diff)
	}
	// The publisher annotates events by their process's container id.
	exec := &schemas.ProcessEvent{Process: schemas.Process{ContainerID: id}}
	conn := &schemas.NetworkEvent{Process: schemas.Actor{ContainerID: id}}
	host := &schemas.FileEvent{Process: schemas.Actor{Container: want}} // a reused event: what it held goes
	for _, ev := range []any{exec, conn, host} {
		r.Annotate(ev)
	}
	if diff := cmp.Diff([]*schemas.Container{want, want, nil}, []*schemas.Container{exec.Process.Container, conn.Process.Container, host.Process.Container}); diff != "" {
		t.Errorf("annotated events' containers (-want +got):\n%s", diff)
	}
}

// TestPodmanMetadata asks podman's Docker-compatible API (the one docker serves) about a
// container made from an image imported from a tar.
func TestPodmanMetadata(t *testing.T) {
	pm := testenv.StartPodman(t)
	imageID := pm.Run(t, testenv.RootfsTar(t), "import", "--quiet", "-", "localhost/crumbs-test:1")
	id := pm.Run(t, nil, "create", "--name", "web", "localhost/crumbs-test:1", "/usr/bin/sleep", "600")
	c, _, _ := resolve(t, []string{"podman:" + pm.Socket}, id)
	want := &schemas.Container{Name: "web", Image: "localhost/crumbs-test:1", ImageID: imageID, Runtime: "podman"}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("container (-want +got):\n%s", diff)
	}
}

// TestUnknownContainer: an id the runtime does not run is asked once, goes out without
// metadata counted as not_found, and is not asked again within the negative TTL.
func TestUnknownContainer(t *testing.T) {
	ctrd := testenv.StartContainerd(t)
	id := strings.Repeat("ab", 32)
	c, reg, r := resolve(t, []string{"containerd:" + ctrd.Socket}, id)
	if c != nil {
		t.Fatalf("unknown container resolved to %+v", c)
	}
	// The answer is cached a moment after the runtime said not found.
	for r.Lookup(id) == nil && testutil.ToFloat64(r.MissingCounter().WithLabelValues(containers.MissingNotFound)) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	r.Lookup(id)
	if n := testutil.ToFloat64(r.LookupsCounter().WithLabelValues("containerd", "not_found")); n != 1 {
		t.Errorf("containerd asked %v times about the unknown id, want 1", n)
	}
	if n, err := testutil.GatherAndCount(reg, "crumbs_collector_container_metadata_missing_total"); err != nil || n == 0 {
		t.Errorf("missing metadata not counted: %d series, %v", n, err)
	}
}

// TestNoRuntime: without any runtime socket the resolver says so, and events are counted.
func TestNoRuntime(t *testing.T) {
	cfg := containers.DefaultConfig()
	cfg.Sockets = []string{"docker:" + t.TempDir() + "/docker.sock"}
	cfg.Kubernetes.Enabled = "false"
	r, err := containers.New(t.Context(), cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := r.Lookup(strings.Repeat("ab", 32)); c != nil {
		t.Fatalf("lookup without runtime = %+v", c)
	}
	if n := testutil.ToFloat64(r.MissingCounter().WithLabelValues(containers.MissingNoRuntime)); n != 1 {
		t.Errorf("no_runtime count = %v, want 1", n)
	}
	if s := r.Status().String(); !strings.HasPrefix(s, "no container runtime socket answered") || !strings.Contains(s, "docker.sock: no socket") {
		t.Errorf("status = %q", s)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*containers.Config)
		want string
	}{
		{"defaults", func(*containers.Config) {}, ""},
		{"socket", func(c *containers.Config) { c.Sockets = []string{"rkt:/run/rkt.sock"} }, `collectors.containers.sockets[0]: "rkt:/run/rkt.sock": unknown runtime "rkt" (want containerd, crio, docker or podman)`},
		{"relative", func(c *containers.Config) { c.Sockets = []string{"docker:docker.sock"} }, `collectors.containers.sockets[0]: "docker:docker.sock": must be runtime:/absolute/path`},
		{"cache", func(c *containers.Config) { c.CacheSize = 1 }, "collectors.containers.cache_size: 1: must be at least 16"},
		{"kubernetes", func(c *containers.Config) { c.Kubernetes.Enabled = "yes" }, `collectors.containers.kubernetes.enabled: "yes": must be auto, true or false`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := containers.DefaultConfig()
			tc.edit(&c)
			got := ""
			if err := c.Validate(); err != nil {
				got = err.Error()
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
