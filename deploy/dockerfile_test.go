package deploy

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
)

// TestDockerfileUserAndHealthcheck reads the Dockerfile: the image runs as crumbs, never root,
// and its HEALTHCHECK, run here with what it names (bash), passes while /healthz answers 200
// at metrics.listen's port and fails when it answers otherwise or nothing listens.
func TestDockerfileUserAndHealthcheck(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := strings.ReplaceAll(string(b), "\\\n", " ")
	users := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(df, -1)
	if len(users) == 0 || users[len(users)-1][1] != "crumbs" {
		t.Errorf("the image's last USER is %v, want crumbs", users)
	}
	m := regexp.MustCompile(`(?m)^HEALTHCHECK .*?CMD\s+(\[.*\])\s*$`).FindStringSubmatch(df)
	if m == nil {
		t.Fatal("the Dockerfile has no HEALTHCHECK ... CMD [...]")
	}
	var argv []string
	if err := json.Unmarshal([]byte(m[1]), &argv); err != nil || len(argv) == 0 {
		t.Fatalf("HEALTHCHECK CMD %s: %v", m[1], err)
	}
	requireCommand(t, argv[0], "the image has it; so does this machine (dash and bash)")

	var status atomic.Int32
	status.Store(http.StatusOK)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(int(status.Load()))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	check := func(listen string) error {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(cleanEnv(), "CRUMBS_METRICS_LISTEN="+listen)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Logf("healthcheck with %s: %v %s", listen, err, out)
		}
		return err
	}
	if err := check("0.0.0.0:" + portOf(ln.Addr())); err != nil {
		t.Errorf("healthy stage reported unhealthy: %v", err)
	}
	status.Store(http.StatusServiceUnavailable)
	if check("0.0.0.0:"+portOf(ln.Addr())) == nil {
		t.Error("a /healthz answering 503 reported healthy")
	}
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := portOf(free.Addr())
	free.Close()
	if check("0.0.0.0:"+port) == nil {
		t.Error("nothing listening reported healthy")
	}
}

func portOf(a net.Addr) string {
	_, p, _ := net.SplitHostPort(a.String())
	return p
}
