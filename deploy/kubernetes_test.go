package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

var (
	crumbsOnce sync.Once
	crumbsBin  string
	crumbsErr  error
)

// crumbsBinary builds crumbs from this tree once per test binary, as make dist does (static,
// cgo off, trimmed paths), so that its compilation is shared with the deb's.
func crumbsBinary(t *testing.T) string {
	t.Helper()
	crumbsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "crumbs-deploy-test-")
		if err != nil {
			crumbsErr = err
			return
		}
		crumbsBin = filepath.Join(dir, "crumbs")
		cmd := exec.Command("go", "build", "-trimpath", "-o", crumbsBin, "../cmd/crumbs")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			crumbsErr = errors.New("build crumbs: " + err.Error() + "\n" + string(out))
		}
	})
	if crumbsErr != nil {
		t.Fatal(crumbsErr)
	}
	return crumbsBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if crumbsBin != "" {
		os.RemoveAll(filepath.Dir(crumbsBin))
	}
	os.Exit(code)
}

// k8sObject holds what the tests read of a manifest.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Template struct {
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	HostPID         bool `yaml:"hostPID"`
	HostNetwork     bool `yaml:"hostNetwork"`
	SecurityContext struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
		RunAsUser    *int  `yaml:"runAsUser"`
	} `yaml:"securityContext"`
	Containers []struct {
		Name string   `yaml:"name"`
		Args []string `yaml:"args"`
		Env  []struct {
			Name      string         `yaml:"name"`
			Value     string         `yaml:"value"`
			ValueFrom map[string]any `yaml:"valueFrom"`
		} `yaml:"env"`
		SecurityContext struct {
			RunAsUser                *int  `yaml:"runAsUser"`
			Privileged               *bool `yaml:"privileged"`
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
			ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
			Capabilities             struct {
				Drop []string `yaml:"drop"`
				Add  []string `yaml:"add"`
			} `yaml:"capabilities"`
		} `yaml:"securityContext"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
			ReadOnly  bool   `yaml:"readOnly"`
		} `yaml:"volumeMounts"`
	} `yaml:"containers"`
	Volumes []k8sVolume `yaml:"volumes"`
}

type k8sVolume struct {
	Name     string `yaml:"name"`
	HostPath *struct {
		Path string `yaml:"path"`
	} `yaml:"hostPath"`
}

// regexpLine matches crumbs config's line of key when it has a value ("[]" is none).
func regexpLine(key string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `\s+CRUMBS_\S+\s+(\[[^\]\s]|[^\s\[])`)
}

// readManifests decodes every document of the files kustomization.yaml lists, failing on
// a file it does not list.
func readManifests(t *testing.T) []k8sObject {
	t.Helper()
	var k struct {
		Namespace string   `yaml:"namespace"`
		Resources []string `yaml:"resources"`
	}
	b, err := os.ReadFile("kubernetes/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatalf("kubernetes/kustomization.yaml: %v", err)
	}
	files, _ := filepath.Glob("kubernetes/*.yaml")
	var listed []string
	for _, f := range files {
		if filepath.Base(f) != "kustomization.yaml" {
			listed = append(listed, filepath.Base(f))
		}
	}
	if diff := cmp.Diff(listed, slices.Sorted(slices.Values(k.Resources))); diff != "" {
		t.Errorf("kustomization.yaml's resources, against the files beside it (-files +listed):\n%s", diff)
	}
	var objs []k8sObject
	for _, r := range k.Resources {
		b, err := os.ReadFile(filepath.Join("kubernetes", r))
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(false)
		for {
			var o k8sObject
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("kubernetes/%s: %v", r, err)
			}
			clusterScoped := o.Kind == "Namespace" || o.Kind == "ClusterRole" || o.Kind == "ClusterRoleBinding"
			if !clusterScoped && o.Metadata.Namespace != k.Namespace {
				t.Errorf("kubernetes/%s: %s %s in namespace %q, want %q", r, o.Kind, o.Metadata.Name, o.Metadata.Namespace, k.Namespace)
			}
			objs = append(objs, o)
		}
	}
	return objs
}

// TestKubernetesManifests reads deploy/kubernetes as kubectl apply -k would take it: a
// collector DaemonSet in the host's pid namespace with the host's root mounted read-only at
// collectors.host_root, not privileged, with exactly the collectors' capabilities; a
// Deployment per central stage that runs unprivileged with no capability; and each
// container's arguments and environment (secrets filled in) a configuration the crumbs built
// here accepts, with the ConfigMap's crumbs.yaml.
func TestKubernetesManifests(t *testing.T) {
	objs := readManifests(t)
	byName := map[string]k8sObject{}
	var names []string
	for _, o := range objs {
		names = append(names, o.Kind+"/"+o.Metadata.Name)
		byName[o.Kind+"/"+o.Metadata.Name] = o
	}
	slices.Sort(names)
	want := []string{"ClusterRole/crumbs-collector", "ClusterRoleBinding/crumbs-collector", "ConfigMap/crumbs", "DaemonSet/crumbs-collector", "Deployment/crumbs-alerts", "Deployment/crumbs-detector",
		"Deployment/crumbs-enricher", "Deployment/crumbs-sink", "Namespace/crumbs", "ServiceAccount/crumbs-collector", "ServiceAccount/crumbs-stage"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Fatalf("objects (-want +got):\n%s", diff)
	}
	config := filepath.Join(t.TempDir(), "crumbs.yaml")
	if err := os.WriteFile(config, []byte(byName["ConfigMap/crumbs"].Data["crumbs.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}

	var collectorCaps []string
	for _, c := range collectorCapabilities() {
		collectorCaps = append(collectorCaps, strings.TrimPrefix(c, "CAP_"))
	}
	commands := map[string]string{"DaemonSet/crumbs-collector": "collect", "Deployment/crumbs-enricher": "enrich",
		"Deployment/crumbs-detector": "detect", "Deployment/crumbs-sink": "sink", "Deployment/crumbs-alerts": "deliver"}
	crumbs := crumbsBinary(t)
	for name, cmd := range commands {
		t.Run(name, func(t *testing.T) {
			pod := byName[name].Spec.Template.Spec
			if len(pod.Containers) != 1 {
				t.Fatalf("%d containers, want one", len(pod.Containers))
			}
			c := pod.Containers[0]
			if diff := cmp.Diff([]string{cmd, "--config", "/etc/crumbs/crumbs.yaml"}, c.Args); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
			env := map[string]string{}
			for _, e := range c.Env {
				switch {
				case e.ValueFrom["fieldRef"] != nil:
					env[e.Name] = "node-1"
				case e.ValueFrom["secretKeyRef"] != nil:
					env[e.Name] = "a-secret-of-thirty-two-characters"
				default:
					env[e.Name] = e.Value
				}
			}
			sc := c.SecurityContext
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || !sc.ReadOnlyRootFilesystem ||
				(sc.Privileged != nil && *sc.Privileged) || !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
				t.Errorf("securityContext: allowPrivilegeEscalation %v, readOnlyRootFilesystem %v, privileged %v, drop %v; want false, true, false, [ALL]",
					sc.AllowPrivilegeEscalation, sc.ReadOnlyRootFilesystem, sc.Privileged, sc.Capabilities.Drop)
			}
			if pod.HostNetwork {
				t.Error("hostNetwork: no crumbs pod needs the host's network")
			}
			if cmd == "collect" {
				if !pod.HostPID {
					t.Error("the collector is not in the host's pid namespace (hostPID)")
				}
				if diff := cmp.Diff(collectorCaps, slices.Sorted(slices.Values(sc.Capabilities.Add))); diff != "" {
					t.Errorf("capabilities added, against the collectors' (-want +got):\n%s", diff)
				}
				root := env["CRUMBS_COLLECTORS_HOST_ROOT"]
				var hostRootVolume string
				for _, v := range pod.Volumes {
					if v.HostPath != nil && v.HostPath.Path == "/" {
						hostRootVolume = v.Name
					}
				}
				mounted := false
				for _, m := range c.VolumeMounts {
					if m.Name == hostRootVolume {
						mounted = m.MountPath == root && m.ReadOnly && root != ""
					}
				}
				if hostRootVolume == "" || !mounted {
					t.Errorf("the host's root (hostPath /: volume %q) is not mounted read-only at collectors.host_root (%q): %+v", hostRootVolume, root, c.VolumeMounts)
				}
			} else {
				if len(sc.Capabilities.Add) > 0 {
					t.Errorf("adds capabilities %v; a stage needs none", sc.Capabilities.Add)
				}
				psc := pod.SecurityContext
				if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
					t.Errorf("pod securityContext: runAsNonRoot %v runAsUser %v; want a stage never root", psc.RunAsNonRoot, psc.RunAsUser)
				}
				if pod.HostPID || slices.ContainsFunc(pod.Volumes, func(v k8sVolume) bool { return v.HostPath != nil }) {
					t.Error("a stage uses the host's pid namespace or a hostPath volume")
				}
			}
			// The configuration this pod runs with is valid for the crumbs built here.
			run := exec.Command(crumbs, "config", "--config", config)
			run.Env = cleanEnv()
			for k, v := range env {
				run.Env = append(run.Env, k+"="+v)
			}
			out, err := run.CombinedOutput()
			if err != nil {
				t.Fatalf("crumbs config with %s's environment: %v\n%s", name, err, out)
			}
			for _, k := range []string{"kafka.brokers", "kafka.security.sasl.username"} {
				if !regexpLine(k).Match(out) {
					t.Errorf("crumbs config with %s's environment leaves %s unset:\n%s", name, k, out)
				}
			}
		})
	}
}
