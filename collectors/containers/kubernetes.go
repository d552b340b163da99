package containers

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// PodWatch keeps the pods of one node as the Kubernetes API server lists and watches them
// (GET /api/v1/pods?fieldSelector=spec.nodeName=<node>, then ?watch=1 from the list's
// resourceVersion), like Tetragon's pod informer and without client-go: only the name,
// namespace, uid, labels and owner of each pod are kept. Bounded by MaxPods.
type PodWatch struct {
	cfg    KubernetesConfig
	log    *slog.Logger
	client *http.Client
	base   *url.URL

	mu      sync.RWMutex
	pods    map[string]PodMeta // by namespace/name
	version uint64             // grows with every change to pods
	dropped uint64             // pods not kept: MaxPods reached
}

// PodMeta is what crumbs keeps of a pod.
type PodMeta struct {
	Name, Namespace, UID       string
	Labels                     []string // key=value, sorted
	WorkloadKind, WorkloadName string
}

// NewPodWatch checks the configuration: the API server's URL, the CA file and the token file.
func NewPodWatch(cfg KubernetesConfig, log *slog.Logger) (*PodWatch, error) {
	if cfg.APIServer == "" {
		return nil, errors.New("collectors.containers.kubernetes.api_server: empty and KUBERNETES_SERVICE_HOST is not set")
	}
	base, err := url.Parse(cfg.APIServer)
	if err != nil || base.Scheme != "https" || base.Host == "" {
		return nil, fmt.Errorf("collectors.containers.kubernetes.api_server: %q: must be an https:// URL", cfg.APIServer)
	}
	pem, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("collectors.containers.kubernetes.ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("collectors.containers.kubernetes.ca_file: %s: no PEM certificate", cfg.CAFile)
	}
	if _, err := os.ReadFile(cfg.TokenFile); err != nil {
		return nil, fmt.Errorf("collectors.containers.kubernetes.token_file: %w", err)
	}
	if cfg.NodeName == "" {
		return nil, errors.New("collectors.containers.kubernetes.node_name: empty, and neither NODE_NAME nor the host name says it")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConns: 2, IdleConnTimeout: 90 * time.Second, ResponseHeaderTimeout: 30 * time.Second}
	return &PodWatch{cfg: cfg, log: log, client: &http.Client{Transport: tr}, base: base, pods: map[string]PodMeta{}}, nil
}

// Pod returns the pod with the namespace and name, when the watch has seen it.
func (w *PodWatch) Pod(namespace, name string) (PodMeta, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	p, ok := w.pods[namespace+"/"+name]
	return p, ok
}

// Version grows with every change the watch saw; Resolver merges pod metadata again when it
// moved.
func (w *PodWatch) Version() uint64 {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.version
}

// Run lists and watches the node's pods until ctx is done, listing again after a failed or
// expired watch with a backoff of up to 30s. Failures are logged when they start and when
// they end, not for every attempt.
func (w *PodWatch) Run(ctx context.Context) {
	backoff := time.Second
	failing := false
	for ctx.Err() == nil {
		rv, err := w.list(ctx)
		if err == nil {
			if failing {
				w.log.Info("kubernetes pod watch resumed", "node", w.cfg.NodeName)
				failing = false
			}
			backoff = time.Second
			err = w.watch(ctx, rv)
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil && !failing {
			w.log.Warn("kubernetes pod watch failed; retrying, pods keep their last known metadata", "error", err)
			failing = true
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// apiPod is the part of a v1.Pod crumbs reads.
type apiPod struct {
	Metadata struct {
		Name            string            `json:"name"`
		Namespace       string            `json:"namespace"`
		UID             string            `json:"uid"`
		ResourceVersion string            `json:"resourceVersion"`
		Labels          map[string]string `json:"labels"`
		OwnerReferences []struct {
			Kind       string `json:"kind"`
			Name       string `json:"name"`
			Controller bool   `json:"controller"`
		} `json:"ownerReferences"`
	} `json:"metadata"`
}

func (w *PodWatch) get(ctx context.Context, query url.Values) (*http.Response, error) {
	token, err := os.ReadFile(w.cfg.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("read service account token: %w", err)
	}
	u := *w.base
	u.Path = strings.TrimSuffix(u.Path, "/") + "/api/v1/pods"
	query.Set("fieldSelector", "spec.nodeName="+w.cfg.NodeName)
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Accept", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s: %s", u.Path, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp, nil
}

// maxPodList bounds a list of a node's pods (a few hundred pods of some KiB each).
const maxPodList = 64 << 20

// list replaces the pods with the API server's list and returns its resourceVersion.
func (w *PodWatch) list(ctx context.Context) (string, error) {
	resp, err := w.get(ctx, url.Values{})
	if err != nil {
		return "", fmt.Errorf("list pods: %w", err)
	}
	defer resp.Body.Close()
	var l struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
		Items []apiPod `json:"items"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxPodList)).Decode(&l); err != nil {
		return "", fmt.Errorf("list pods: decode: %w", err)
	}
	pods := make(map[string]PodMeta, len(l.Items))
	for _, p := range l.Items {
		if len(pods) >= w.cfg.MaxPods {
			break
		}
		m := podMeta(p)
		pods[m.Namespace+"/"+m.Name] = m
	}
	w.mu.Lock()
	w.pods = pods
	w.version++
	w.mu.Unlock()
	return l.Metadata.ResourceVersion, nil
}

// watch applies the watch events from rv until the stream ends or fails.
func (w *PodWatch) watch(ctx context.Context, rv string) error {
	resp, err := w.get(ctx, url.Values{"watch": {"1"}, "resourceVersion": {rv}, "allowWatchBookmarks": {"true"},
		"timeoutSeconds": {"600"}})
	if err != nil {
		return fmt.Errorf("watch pods: %w", err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var ev struct {
			Type   string          `json:"type"`
			Object json.RawMessage `json:"object"`
		}
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil // the server ends a watch after timeoutSeconds: list again
			}
			return fmt.Errorf("watch pods: %w", err)
		}
		switch ev.Type {
		case "ADDED", "MODIFIED", "DELETED":
			var p apiPod
			if err := json.Unmarshal(ev.Object, &p); err != nil {
				return fmt.Errorf("watch pods: decode %s: %w", ev.Type, err)
			}
			w.apply(ev.Type, podMeta(p))
		case "ERROR": // typically 410 Gone: the version expired; list again
			return fmt.Errorf("watch pods: %s", strings.TrimSpace(string(ev.Object)))
		}
	}
}

func (w *PodWatch) apply(typ string, m PodMeta) {
	key := m.Namespace + "/" + m.Name
	w.mu.Lock()
	defer w.mu.Unlock()
	if typ == "DELETED" {
		delete(w.pods, key)
	} else if _, ok := w.pods[key]; ok || len(w.pods) < w.cfg.MaxPods {
		w.pods[key] = m
	} else {
		w.dropped++
		return
	}
	w.version++
}

// podMeta keeps what crumbs reads of a pod, and names its workload: the controller that
// owns it, with a ReplicaSet of a Deployment (named <deployment>-<pod-template-hash>) said
// as the Deployment and a Job of a CronJob (named <cronjob>-<scheduled minute>) as the
// CronJob, as kubectl and Tetragon show them.
func podMeta(p apiPod) PodMeta {
	m := PodMeta{Name: p.Metadata.Name, Namespace: p.Metadata.Namespace, UID: p.Metadata.UID}
	for k, v := range p.Metadata.Labels {
		m.Labels = append(m.Labels, k+"="+v)
	}
	sort.Strings(m.Labels)
	for _, o := range p.Metadata.OwnerReferences {
		if !o.Controller {
			continue
		}
		m.WorkloadKind, m.WorkloadName = o.Kind, o.Name
		switch o.Kind {
		case "ReplicaSet":
			if h := p.Metadata.Labels["pod-template-hash"]; h != "" {
				if d, ok := strings.CutSuffix(o.Name, "-"+h); ok {
					m.WorkloadKind, m.WorkloadName = "Deployment", d
				}
			}
		case "Job":
			if i := strings.LastIndexByte(o.Name, '-'); i > 0 && isDigits(o.Name[i+1:]) && len(o.Name)-i-1 >= 8 {
				m.WorkloadKind, m.WorkloadName = "CronJob", o.Name[:i]
			}
		}
	}
	return m
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
