package containers

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// Config configures container metadata (keys under `collectors.containers.`).
type Config struct {
	// Enabled asks the container runtime and the Kubernetes API about the containers that
	// events name. Default true.
	Enabled bool `mapstructure:"enabled"`
	// Sockets are the container runtimes' API sockets to try, each as runtime:path with
	// runtime containerd, crio, docker or podman; those that exist and answer when the
	// collect stage starts are asked, in this order. Under a host root mounted elsewhere (a
	// DaemonSet), give the paths where the host's sockets are mounted. Default
	// containerd:/run/containerd/containerd.sock, crio:/run/crio/crio.sock,
	// docker:/run/docker.sock, podman:/run/podman/podman.sock.
	Sockets []string `mapstructure:"sockets"`
	// CacheSize bounds the containers remembered (least recently used dropped first). At
	// least 16. Default 4096.
	CacheSize int `mapstructure:"cache_size"`
	// QueueSize bounds the container ids waiting to be looked up; an id that finds the queue
	// full is asked again by a later event of its container. At least 1. Default 256.
	QueueSize int `mapstructure:"queue_size"`
	// LookupTimeout bounds one question to one runtime. At least 100ms. Default 2s.
	LookupTimeout time.Duration `mapstructure:"lookup_timeout"`
	// NegativeTTL is how long a container id that no runtime knows stays unknown before it is
	// asked again. At least 1s. Default 30s.
	NegativeTTL time.Duration `mapstructure:"negative_ttl"`
	// Kubernetes configures the watch of this node's pods.
	Kubernetes KubernetesConfig `mapstructure:"kubernetes"`
}

// KubernetesConfig configures the watch of the API server's pods of this node (keys under
// `collectors.containers.kubernetes.`). The client reads pods only: its service account
// needs get, list and watch on pods, nothing else.
type KubernetesConfig struct {
	// Enabled is auto (watch when the collector runs in a pod: KUBERNETES_SERVICE_HOST is
	// set), true or false. Default auto.
	Enabled string `mapstructure:"enabled"`
	// APIServer is the API server's URL; empty: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT.
	APIServer string `mapstructure:"api_server"`
	// NodeName is this node's name, whose pods are watched (spec.nodeName); empty: $NODE_NAME
	// (set it from the downward API's spec.nodeName), else the host name.
	NodeName string `mapstructure:"node_name"`
	// TokenFile holds the service account's bearer token, read again for every request (the
	// kubelet rotates it). Default /var/run/secrets/kubernetes.io/serviceaccount/token.
	TokenFile string `mapstructure:"token_file"`
	// CAFile holds the CA that signs the API server's certificate. Default
	// /var/run/secrets/kubernetes.io/serviceaccount/ca.crt.
	CAFile string `mapstructure:"ca_file"`
	// MaxPods bounds the pods remembered; a node runs at most a few hundred. Default 1024.
	MaxPods int `mapstructure:"max_pods"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Enabled: true,
		Sockets: []string{"containerd:/run/containerd/containerd.sock", "crio:/run/crio/crio.sock",
			"docker:/run/docker.sock", "podman:/run/podman/podman.sock"},
		CacheSize: 4096, QueueSize: 256, LookupTimeout: 2 * time.Second, NegativeTTL: 30 * time.Second,
		Kubernetes: KubernetesConfig{Enabled: "auto", TokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token",
			CAFile: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", MaxPods: 1024},
	}
}

// Validate reports every invalid field, naming its key.
func (c Config) Validate() error {
	var errs []error
	for i, s := range c.Sockets {
		if _, _, err := parseSocket(s); err != nil {
			errs = append(errs, fmt.Errorf("collectors.containers.sockets[%d]: %w", i, err))
		}
	}
	if c.CacheSize < 16 {
		errs = append(errs, fmt.Errorf("collectors.containers.cache_size: %d: must be at least 16", c.CacheSize))
	}
	if c.QueueSize < 1 {
		errs = append(errs, fmt.Errorf("collectors.containers.queue_size: %d: must be at least 1", c.QueueSize))
	}
	if c.LookupTimeout < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("collectors.containers.lookup_timeout: %s: must be at least 100ms", c.LookupTimeout))
	}
	if c.NegativeTTL < time.Second {
		errs = append(errs, fmt.Errorf("collectors.containers.negative_ttl: %s: must be at least 1s", c.NegativeTTL))
	}
	switch c.Kubernetes.Enabled {
	case "auto", "true", "false":
	default:
		errs = append(errs, fmt.Errorf("collectors.containers.kubernetes.enabled: %q: must be auto, true or false", c.Kubernetes.Enabled))
	}
	if c.Kubernetes.MaxPods < 1 {
		errs = append(errs, fmt.Errorf("collectors.containers.kubernetes.max_pods: %d: must be at least 1", c.Kubernetes.MaxPods))
	}
	return errors.Join(errs...)
}

// Runtime names (schemas.Container.Runtime).
const (
	RuntimeContainerd = "containerd"
	RuntimeCRIO       = "cri-o"
	RuntimeDocker     = "docker"
	RuntimePodman     = "podman"
)

// parseSocket splits runtime:path.
func parseSocket(s string) (runtime, path string, err error) {
	rt, path, ok := strings.Cut(s, ":")
	if !ok || path == "" || path[0] != '/' {
		return "", "", fmt.Errorf("%q: must be runtime:/absolute/path", s)
	}
	switch rt {
	case "containerd":
		return RuntimeContainerd, path, nil
	case "crio", "cri-o":
		return RuntimeCRIO, path, nil
	case "docker":
		return RuntimeDocker, path, nil
	case "podman":
		return RuntimePodman, path, nil
	}
	return "", "", fmt.Errorf("%q: unknown runtime %q (want containerd, crio, docker or podman)", s, rt)
}

// resolve fills the defaults that come from the environment, and reports whether the pod
// watch should run.
func (k KubernetesConfig) resolve() (KubernetesConfig, bool) {
	on := k.Enabled == "true" || k.Enabled == "auto" && os.Getenv("KUBERNETES_SERVICE_HOST") != ""
	if k.APIServer == "" {
		if h := os.Getenv("KUBERNETES_SERVICE_HOST"); h != "" {
			port := os.Getenv("KUBERNETES_SERVICE_PORT")
			if port == "" {
				port = "443"
			}
			k.APIServer = "https://" + net.JoinHostPort(h, port)
		}
	}
	if k.NodeName == "" {
		k.NodeName = os.Getenv("NODE_NAME")
	}
	if k.NodeName == "" {
		k.NodeName, _ = os.Hostname()
	}
	return k, on
}
