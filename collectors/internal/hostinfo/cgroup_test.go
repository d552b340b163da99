package hostinfo

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCgroup(t *testing.T) {
	const id = "3f1c2a9b8e7d6c5b4a3928171615141312111009080706050403020100abcdef"
	tests := []struct {
		name    string
		content string
		want    Cgroup
	}{
		{
			name:    "v2 service",
			content: "0::/system.slice/ssh.service\n",
			want:    Cgroup{Path: "/system.slice/ssh.service", SystemdUnit: "ssh.service"},
		},
		{
			name:    "v2 user session scope",
			content: "0::/user.slice/user-1000.slice/session-4.scope\n",
			want:    Cgroup{Path: "/user.slice/user-1000.slice/session-4.scope", SystemdUnit: "session-4.scope"},
		},
		{
			name:    "docker scope",
			content: "0::/system.slice/docker-" + id + ".scope\n",
			want:    Cgroup{Path: "/system.slice/docker-" + id + ".scope", SystemdUnit: "docker-" + id + ".scope", ContainerID: id},
		},
		{
			name:    "kubernetes containerd",
			content: "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-" + id + ".scope\n",
			want: Cgroup{
				Path:        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-" + id + ".scope",
				SystemdUnit: "cri-containerd-" + id + ".scope", ContainerID: id,
			},
		},
		{
			name:    "cgroupfs docker",
			content: "0::/docker/" + id + "\n",
			want:    Cgroup{Path: "/docker/" + id, ContainerID: id},
		},
		{
			name:    "service inside container",
			content: "0::/docker/" + id + "/system.slice/nginx.service\n",
			want:    Cgroup{Path: "/docker/" + id + "/system.slice/nginx.service", SystemdUnit: "nginx.service", ContainerID: id},
		},
		{
			name:    "hybrid prefers v2",
			content: "12:pids:/system.slice/cron.service\n1:name=systemd:/system.slice/cron.service\n0::/system.slice/cron.service\n",
			want:    Cgroup{Path: "/system.slice/cron.service", SystemdUnit: "cron.service"},
		},
		{
			name:    "v1 only uses name=systemd",
			content: "4:memory:/foo\n1:name=systemd:/system.slice/cron.service\n",
			want:    Cgroup{Path: "/system.slice/cron.service", SystemdUnit: "cron.service"},
		},
		{
			name:    "root",
			content: "0::/\n",
			want:    Cgroup{Path: "/"},
		},
		{
			name:    "not a container id",
			content: "0::/system.slice/docker-" + id[:63] + "g.scope\n",
			want:    Cgroup{Path: "/system.slice/docker-" + id[:63] + "g.scope", SystemdUnit: "docker-" + id[:63] + "g.scope"},
		},
		{name: "empty", content: "", want: Cgroup{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ParseCgroup(tt.content)); diff != "" {
				t.Errorf("ParseCgroup (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseCgroup(f *testing.F) {
	f.Add("0::/system.slice/docker-3f1c2a9b8e7d6c5b4a3928171615141312111009080706050403020100abcdef.scope\n")
	f.Add("1:name=systemd:/user.slice/session-1.scope\n")
	f.Fuzz(func(t *testing.T, content string) {
		info := ParseCgroup(content)
		if info.ContainerID != "" && !IsContainerID(info.ContainerID) {
			t.Errorf("container id %q is not 64 hex digits", info.ContainerID)
		}
	})
}
func TestContainerIDIn(t *testing.T) {
	const id = "3f1c2a9b8e7d6c5b4a3928171615141312111009080706050403020100abcdef"
	tests := []struct{ name, want string }{
		{"docker-" + id + ".scope", id},
		{"cri-containerd-" + id + ".scope", id},
		{id, id},
		{"crio-" + id, id},           // cgroupfs driver: no .scope
		{"cri-containerd:" + id, id}, // runtime:id
		{"unknown-runtime-" + id + ".scope", id},
		{"ssh.service", ""},
		{"docker-" + strings.ToUpper(id) + ".scope", ""},
		{"docker-" + id[:63] + ".scope", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ContainerIDIn(tt.name); got != tt.want {
				t.Errorf("ContainerIDIn(%q): want %q, got %q", tt.name, tt.want, got)
			}
		})
	}
}

func TestContainerIDStricterThanContainerIDIn(t *testing.T) {
	const id = "3f1c2a9b8e7d6c5b4a3928171615141312111009080706050403020100abcdef"
	tests := []struct{ name, strict, loose string }{
		{name: "docker-" + id + ".scope", strict: id, loose: id},
		{name: id, strict: id, loose: id},
		{name: "crio-" + id, strict: "", loose: id},
		{name: "unknown-runtime-" + id + ".scope", strict: "", loose: id},
		{name: "nginx.service", strict: "", loose: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := []string{ContainerID(tt.name), ContainerIDIn(tt.name)}
			if diff := cmp.Diff([]string{tt.strict, tt.loose}, got); diff != "" {
				t.Errorf("[ContainerID, ContainerIDIn](%q) (-want +got):\n%s", tt.name, diff)
			}
		})
	}
}
