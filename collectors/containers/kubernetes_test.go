package containers_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/collectors/containers"
)

// apiServer serves the pods part of the Kubernetes API as kube-apiserver answers a node's
// pod list and watch (JSON list with a resourceVersion, then a stream of watch events), and
// checks the bearer token and the node's field selector. It is not a Kubernetes API server:
// none can run here.
type apiServer struct {
	*httptest.Server
	list   []any
	events chan any // watch events to stream; closed: the watch ends
	mu     sync.Mutex
	asked  []string // the queries the collector sent
}

func newAPIServer(t *testing.T, pods ...any) (*apiServer, containers.KubernetesConfig) {
	t.Helper()
	s := &apiServer{list: pods, events: make(chan any, 16)}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.asked = append(s.asked, r.URL.RawQuery)
		s.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer sa-token" || r.URL.Path != "/api/v1/pods" ||
			r.URL.Query().Get("fieldSelector") != "spec.nodeName=node-1" {
			http.Error(w, `{"kind":"Status","code":403}`, http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("watch") != "1" {
			_ = json.NewEncoder(w).Encode(map[string]any{"kind": "PodList", "metadata": map[string]any{"resourceVersion": "100"}, "items": s.list})
			return
		}
		if r.URL.Query().Get("resourceVersion") != "100" {
			http.Error(w, "watch from the wrong version", http.StatusBadRequest)
			return
		}
		w.(http.Flusher).Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case ev, ok := <-s.events:
				if !ok {
					<-r.Context().Done()
					return
				}
				_ = json.NewEncoder(w).Encode(ev)
				w.(http.Flusher).Flush()
			}
		}
	}))
	t.Cleanup(s.Close)
	t.Cleanup(func() { close(s.events) })
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(token, []byte("sa-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return s, containers.KubernetesConfig{Enabled: "true", APIServer: s.URL, NodeName: "node-1", TokenFile: token, CAFile: ca, MaxPods: 16}
}

// pod is a v1.Pod as the API server sends it, with the fields crumbs ignores as well.
func pod(ns, name, uid string, labels map[string]string, ownerKind, ownerName string) map[string]any {
	meta := map[string]any{"name": name, "namespace": ns, "uid": uid, "labels": labels, "resourceVersion": "7",
		"annotations": map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-12-01T00:00:00Z"}}
	if ownerKind != "" {
		meta["ownerReferences"] = []any{map[string]any{"apiVersion": "apps/v1", "kind": ownerKind, "name": ownerName, "uid": "o-1", "controller": true}}
	}
	return map[string]any{"kind": "Pod", "apiVersion": "v1", "metadata": meta,
		"spec":   map[string]any{"nodeName": "node-1", "containers": []any{map[string]any{"name": "c", "image": "shop:1"}}},
		"status": map[string]any{"phase": "Running"}}
}

// TestPodWatch lists and watches a node's pods and names their workloads.
func TestPodWatch(t *testing.T) {
	srv, cfg := newAPIServer(t,
		pod("prod", "shop-7d9f5c6b8-x2x4k", "u1", map[string]string{"app": "shop", "pod-template-hash": "7d9f5c6b8"}, "ReplicaSet", "shop-7d9f5c6b8"),
		pod("prod", "db-0", "u2", map[string]string{"app": "db"}, "StatefulSet", "db"),
		pod("ops", "backup-29412360-abcde", "u3", nil, "Job", "backup-29412360"),
		pod("ops", "once-xyz", "u4", nil, "Job", "once"),
		pod("kube-system", "static-node-1", "u5", nil, "", ""),
	)
	w, err := containers.NewPodWatch(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	wait := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s; the server was asked %q", what, srv.asked)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait("the list", func() bool { _, ok := w.Pod("kube-system", "static-node-1"); return ok })
	for _, tc := range []struct{ ns, name, kind, workload string }{
		{"prod", "shop-7d9f5c6b8-x2x4k", "Deployment", "shop"},
		{"prod", "db-0", "StatefulSet", "db"},
		{"ops", "backup-29412360-abcde", "CronJob", "backup"},
		{"ops", "once-xyz", "Job", "once"},
		{"kube-system", "static-node-1", "", ""},
	} {
		p, _ := w.Pod(tc.ns, tc.name)
		if diff := cmp.Diff([2]string{tc.kind, tc.workload}, [2]string{p.WorkloadKind, p.WorkloadName}); diff != "" {
			t.Errorf("%s/%s workload (-want +got):\n%s", tc.ns, tc.name, diff)
		}
	}
	p, _ := w.Pod("prod", "shop-7d9f5c6b8-x2x4k")
	if diff := cmp.Diff([]string{"app=shop", "pod-template-hash=7d9f5c6b8"}, p.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}

	v := w.Version()
	srv.events <- map[string]any{"type": "MODIFIED", "object": pod("prod", "db-0", "u2", map[string]string{"app": "db", "tier": "data"}, "StatefulSet", "db")}
	srv.events <- map[string]any{"type": "DELETED", "object": pod("ops", "once-xyz", "u4", nil, "Job", "once")}
	srv.events <- map[string]any{"type": "BOOKMARK", "object": map[string]any{"metadata": map[string]any{"resourceVersion": "120"}}}
	wait("the watch events", func() bool { _, ok := w.Pod("ops", "once-xyz"); return !ok && w.Version() >= v+2 })
	p, _ = w.Pod("prod", "db-0")
	if diff := cmp.Diff([]string{"app=db", "tier=data"}, p.Labels); diff != "" {
		t.Errorf("labels after MODIFIED (-want +got):\n%s", diff)
	}
}

// TestPodWatchConfig: a configuration that cannot work is refused, naming its key.
func TestPodWatchConfig(t *testing.T) {
	_, cfg := newAPIServer(t)
	for _, tc := range []struct {
		name string
		edit func(*containers.KubernetesConfig)
		want string
	}{
		{"http", func(c *containers.KubernetesConfig) { c.APIServer = "http://10.0.0.1" }, `collectors.containers.kubernetes.api_server: "http://10.0.0.1": must be an https:// URL`},
		{"ca", func(c *containers.KubernetesConfig) { c.CAFile = "/nonexistent/ca.crt" }, "collectors.containers.kubernetes.ca_file: open /nonexistent/ca.crt: no such file or directory"},
		{"token", func(c *containers.KubernetesConfig) { c.TokenFile = "/nonexistent/token" }, "collectors.containers.kubernetes.token_file: open /nonexistent/token: no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			tc.edit(&c)
			_, err := containers.NewPodWatch(c, nil)
			if diff := cmp.Diff(tc.want, fmt.Sprint(err)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
