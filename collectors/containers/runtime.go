package containers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	namespacesapi "github.com/containerd/containerd/api/services/namespaces/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/threatcrumbs/crumbs/schemas"
)

// ErrNotFound is a runtime's answer for a container it does not run.
var ErrNotFound = errors.New("no such container")

// Runtime is one container runtime's API.
type Runtime interface {
	// Name is the runtime's name (RuntimeContainerd, ...).
	Name() string
	// Inspect returns what the runtime says of the container with the id, ErrNotFound when it
	// runs no such container, or another error when it could not be asked. It returns when
	// ctx is done.
	Inspect(ctx context.Context, id string) (*schemas.Container, error)
	// Close releases the connection.
	Close() error
}

// Kubernetes labels a runtime puts on a container that the kubelet created (CRI).
const (
	labelPodName       = "io.kubernetes.pod.name"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodUID        = "io.kubernetes.pod.uid"
	labelContainerName = "io.kubernetes.container.name"
)

// fromLabels fills the container's Kubernetes pod, and its name when the runtime gave none,
// from the CRI labels.
func fromLabels(c *schemas.Container, labels map[string]string) {
	if n := labels[labelContainerName]; n != "" {
		c.Name = n
	}
	if labels[labelPodName] != "" {
		c.Pod = &schemas.Pod{Name: labels[labelPodName], Namespace: labels[labelPodNamespace], UID: labels[labelPodUID]}
	}
}

// maxResponse bounds a runtime's answer about one container.
const maxResponse = 4 << 20

// Open connects to the runtime's socket at path and checks that it answers.
func Open(ctx context.Context, runtime, path string) (Runtime, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return nil, fmt.Errorf("%s: not a socket", path)
	}
	var rt Runtime
	switch runtime {
	case RuntimeContainerd:
		rt, err = openContainerd(path)
	case RuntimeCRIO:
		rt = &crio{http: unixHTTP(path)}
	case RuntimeDocker, RuntimePodman:
		rt = &dockerAPI{name: runtime, http: unixHTTP(path)}
	default:
		return nil, fmt.Errorf("unknown runtime %q", runtime)
	}
	if err != nil {
		return nil, err
	}
	if err := ping(ctx, rt); err != nil {
		rt.Close()
		return nil, fmt.Errorf("%s at %s does not answer: %w", runtime, path, err)
	}
	return rt, nil
}

// ping asks for a container no runtime runs: any answer but ErrNotFound means the socket
// does not serve the runtime's API.
func ping(ctx context.Context, rt Runtime) error {
	_, err := rt.Inspect(ctx, strings.Repeat("0", 64))
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err == nil {
		return nil
	}
	return err
}

// unixHTTP is an HTTP client that dials the unix socket at path for every request.
func unixHTTP(path string) *http.Client {
	var d net.Dialer
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConns: 2, IdleConnTimeout: 30 * time.Second,
	}}
}

// getJSON GETs the path from a unix-socket HTTP API into v; 404 is ErrNotFound.
func getJSON(ctx context.Context, c *http.Client, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://runtime"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, maxResponse)
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return ErrNotFound
	case resp.StatusCode != http.StatusOK:
		msg, _ := io.ReadAll(io.LimitReader(body, 512))
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(msg)))
	}
	if err := json.NewDecoder(body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: decode: %w", path, err)
	}
	return nil
}

// dockerAPI asks the Docker Engine API, which podman serves as well.
type dockerAPI struct {
	name string
	http *http.Client
}

func (d *dockerAPI) Name() string { return d.name }
func (d *dockerAPI) Close() error { d.http.CloseIdleConnections(); return nil }

func (d *dockerAPI) Inspect(ctx context.Context, id string) (*schemas.Container, error) {
	var ins struct {
		Name   string
		Image  string // the image id
		Config struct {
			Image  string
			Labels map[string]string
		}
	}
	if err := getJSON(ctx, d.http, "/containers/"+url.PathEscape(id)+"/json", &ins); err != nil {
		return nil, err
	}
	c := &schemas.Container{Name: strings.TrimPrefix(ins.Name, "/"), Image: ins.Config.Image, ImageID: ins.Image, Runtime: d.name}
	fromLabels(c, ins.Config.Labels)
	return c, nil
}

// crio asks CRI-O's inspect endpoint (GET /containers/<id> on crio.sock).
type crio struct{ http *http.Client }

func (c *crio) Name() string { return RuntimeCRIO }
func (c *crio) Close() error { c.http.CloseIdleConnections(); return nil }

func (c *crio) Inspect(ctx context.Context, id string) (*schemas.Container, error) {
	var ins struct {
		Name     string            `json:"name"`
		Image    string            `json:"image"`
		ImageRef string            `json:"image_ref"`
		Labels   map[string]string `json:"labels"`
	}
	if err := getJSON(ctx, c.http, "/containers/"+url.PathEscape(id), &ins); err != nil {
		return nil, err
	}
	out := &schemas.Container{Name: ins.Name, Image: ins.Image, ImageID: ins.ImageRef, Runtime: RuntimeCRIO}
	fromLabels(out, ins.Labels)
	return out, nil
}

// containerd asks containerd's gRPC API, in every namespace (k8s.io for the kubelet, moby
// for docker, default for ctr and nerdctl).
type containerd struct {
	conn       *grpc.ClientConn
	containers containersapi.ContainersClient
	images     imagesapi.ImagesClient
	namespaces namespacesapi.NamespacesClient
}

func openContainerd(path string) (*containerd, error) {
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxResponse)))
	if err != nil {
		return nil, fmt.Errorf("containerd at %s: %w", path, err)
	}
	return &containerd{conn: conn, containers: containersapi.NewContainersClient(conn),
		images: imagesapi.NewImagesClient(conn), namespaces: namespacesapi.NewNamespacesClient(conn)}, nil
}

func (c *containerd) Name() string { return RuntimeContainerd }
func (c *containerd) Close() error { return c.conn.Close() }

func (c *containerd) Inspect(ctx context.Context, id string) (*schemas.Container, error) {
	nss, err := c.namespaces.List(ctx, &namespacesapi.ListNamespacesRequest{})
	if err != nil {
		return nil, fmt.Errorf("list containerd namespaces: %w", err)
	}
	names := make([]string, 0, len(nss.GetNamespaces()))
	for _, ns := range nss.GetNamespaces() {
		names = append(names, ns.GetName())
	}
	sort.Slice(names, func(i, j int) bool { // the kubelet's first: most containers of a node are there
		if (names[i] == "k8s.io") != (names[j] == "k8s.io") {
			return names[i] == "k8s.io"
		}
		return names[i] < names[j]
	})
	for _, ns := range names {
		nctx := metadata.AppendToOutgoingContext(ctx, "containerd-namespace", ns)
		resp, err := c.containers.Get(nctx, &containersapi.GetContainerRequest{ID: id})
		if status.Code(err) == codes.NotFound {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("get container in containerd namespace %s: %w", ns, err)
		}
		ct := resp.GetContainer()
		out := &schemas.Container{Name: ct.GetLabels()["nerdctl/name"], Image: ct.GetImage(), Runtime: RuntimeContainerd}
		fromLabels(out, ct.GetLabels())
		if out.Name == "" {
			out.Name = id[:12]
		}
		if out.Image != "" {
			if img, err := c.images.Get(nctx, &imagesapi.GetImageRequest{Name: out.Image}); err == nil {
				out.ImageID = img.GetImage().GetTarget().GetDigest()
			}
		}
		return out, nil
	}
	return nil, ErrNotFound
}
