package testenv

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Containerd is a private containerd (Debian's package) that a test started: its own root,
// state and socket, no CRI plugin. Stopped, with every task it ran, when the test ends.
type Containerd struct {
	Socket string
	dir    string
}

// StartContainerd starts a private containerd and waits until it answers. It needs root and
// the containerd, ctr and runc programs (scripts/ensure-deps.sh installs them).
func StartContainerd(t testing.TB) *Containerd {
	t.Helper()
	RequireRoot(t)
	for _, p := range []string{"containerd", "ctr", "runc"} {
		if _, err := exec.LookPath(p); err != nil {
			missing(t, p+" is not installed (scripts/ensure-deps.sh installs containerd and runc)")
		}
	}
	dir, err := os.MkdirTemp("", "crumbs-ctrd-") // short: a unix socket path has at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	c := &Containerd{Socket: filepath.Join(dir, "c.sock"), dir: dir}
	conf := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.Socket, c.Socket+".ttrpc")
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("containerd", "--config", filepath.Join(dir, "config.toml"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	t.Cleanup(func() {
		for _, id := range strings.Fields(c.try("task", "ls", "-q")) {
			c.try("task", "kill", "-s", "KILL", id)
			for range 50 {
				if _, err := c.run("task", "delete", id); err == nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		for _, id := range strings.Fields(c.try("container", "ls", "-q")) {
			c.try("container", "delete", id)
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		logf.Close()
		_ = os.RemoveAll(dir)
	})
	for i := 0; ; i++ {
		if _, err := c.run("version"); err == nil {
			return c
		}
		if i == 100 {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("containerd did not answer at %s within 10s; its log:\n%s", c.Socket, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ContainerdNamespace is the namespace the test's ctr commands use.
const ContainerdNamespace = "crumbs-test"

func (c *Containerd) run(args ...string) (string, error) {
	out, err := exec.Command("ctr", append([]string{"-a", c.Socket, "-n", ContainerdNamespace}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (c *Containerd) try(args ...string) string { out, _ := c.run(args...); return out }

// Ctr runs ctr against the private containerd in ContainerdNamespace and returns its output.
func (c *Containerd) Ctr(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.run(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Podman runs Debian's podman with a private storage, and serves its Docker-compatible API
// on Socket (podman system service). Everything it made is removed when the test ends.
type Podman struct {
	Socket string
	dir    string
}

// StartPodman starts podman's API service on a private socket. It needs root and podman.
func StartPodman(t testing.TB) *Podman {
	t.Helper()
	RequireRoot(t)
	if _, err := exec.LookPath("podman"); err != nil {
		missing(t, "podman is not installed (scripts/ensure-deps.sh installs it)")
	}
	dir, err := os.MkdirTemp("", "crumbs-podman-")
	if err != nil {
		t.Fatal(err)
	}
	p := &Podman{Socket: filepath.Join(dir, "podman.sock"), dir: dir}
	cmd := exec.Command("podman", append(p.global(), "system", "service", "--time=0", "unix://"+p.Socket)...)
	logf, err := os.Create(filepath.Join(dir, "service.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start podman system service: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		logf.Close()
		_, _ = exec.Command("podman", append(p.global(), "system", "reset", "--force")...).CombinedOutput()
		_ = os.RemoveAll(dir)
	})
	for i := 0; ; i++ {
		if fi, err := os.Stat(p.Socket); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return p
		}
		if i == 100 {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("podman system service made no socket at %s within 10s; its log:\n%s", p.Socket, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *Podman) global() []string {
	return []string{"--root", filepath.Join(p.dir, "root"), "--runroot", filepath.Join(p.dir, "run"), "--storage-driver", "overlay"}
}

// Run runs podman with the private storage and returns its trimmed output.
func (p *Podman) Run(t testing.TB, stdin []byte, args ...string) string {
	t.Helper()
	cmd := exec.Command("podman", append(p.global(), args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("podman %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// RootfsTar returns a tar of a root file system with no files of its own: /bin, /lib, /lib64
// and /sbin link into /usr, which a container gets by bind-mounting the host's read-only, as
// on a merged-/usr Debian. No image can be pulled here; this is what tests build images from.
func RootfsTar(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"usr/", "tmp/", "proc/", "dev/", "sys/", "etc/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []string{"bin", "lib", "lib64", "sbin"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: l, Linkname: "usr/" + l, Mode: 0o777}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// OCIArchive writes an OCI image archive of RootfsTar named ref (as `ctr images import`
// reads it) and returns its path and the image's manifest digest.
func OCIArchive(t testing.TB, ref string) (path, digest string) {
	t.Helper()
	blobs := map[string][]byte{}
	add := func(b []byte) (string, int) {
		sum := sha256.Sum256(b)
		d := "sha256:" + hex.EncodeToString(sum[:])
		blobs[d] = b
		return d, len(b)
	}
	mustJSON := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	layer, layerSize := add(RootfsTar(t))
	config, configSize := add(mustJSON(map[string]any{"architecture": runtime.GOARCH, "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{layer}}, "config": map[string]any{}}))
	manifest, manifestSize := add(mustJSON(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": configSize},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layerSize}}}))
	tag := ref[strings.LastIndexByte(ref, ':')+1:]
	index := mustJSON(map[string]any{"schemaVersion": 2, "manifests": []any{map[string]any{
		"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest, "size": manifestSize,
		"annotations": map[string]string{"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": tag}}}})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	file := func(name string, b []byte) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(b))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	file("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	file("index.json", index)
	for d, b := range blobs {
		file("blobs/sha256/"+strings.TrimPrefix(d, "sha256:"), b)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, manifest
}
