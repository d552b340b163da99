#!/usr/bin/env bash
# Installs and starts what crumbs needs on this host: every program make run, make test and
# make bench execute (the programs table below, from Debian), clickhouse-server (started if it
# is not answering), and tracefs and securityfs mounted. Idempotent; safe to run before every
# `make run` and `make test`. Needs root.
set -euo pipefail

log() { printf 'ensure-deps: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "not root: skipping installs (crumbs needs root for eBPF)"
  exit 0
fi

# tracefs: the tracepoints the collectors attach to are found there.
if ! mountpoint -q /sys/kernel/tracing 2>/dev/null; then
  mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || log "could not mount tracefs at /sys/kernel/tracing"
fi

# securityfs: where the kernel says its lockdown mode (crumbs doctor reads it).
if [ -d /sys/kernel/security ] && ! mountpoint -q /sys/kernel/security 2>/dev/null; then
  mount -t securityfs securityfs /sys/kernel/security 2>/dev/null || log "could not mount securityfs at /sys/kernel/security"
fi

# The programs make run, make test and make bench execute, each with the Debian package that
# installs it; scripts/deps_test.go checks this table against the sources. Go is not here:
# Debian's is older than go.mod asks, so the toolchain comes first, by hand or CI.
programs=(
  clickhouse-server:clickhouse-server # make run and the tests store events in it
  clickhouse-client:clickhouse-client # this script; the sink's benchmark baseline
  docker-compose:docker-compose       # deploy: TestComposeFile validates docker-compose.yml
  git:git                             # the schemas' compatibility tests read their history; make's version
  gcc:gcc                             # cgo: the identity tests' PAM client
  ldconfig:libc-bin                   # the identity collector finds libpam through it
  iptables:iptables                   # the attack simulation T1686 #18 (docs/atomics-report.md)
  nmap:nmap                           # the attack simulation T1046 (a loopback port scan)
  sudo:sudo                           # attack simulations that run their command through sudo
  ip:iproute2                         # make bench: the connect storm through a veth pair into a network namespace
  java:default-jre-headless           # the ClickHouse cluster tests' private ZooKeeper (below)
  sh:dash                             # tests run commands and attack simulations with sh -c
  bash:bash                           # attack simulations with the bash executor; make's shell
  true:coreutils                      # collector tests exec /bin/true
  sleep:coreutils                     # the system collector's benchmark
  sha256sum:coreutils                 # the manifest test's reference sums
  mountpoint:util-linux               # this script
  mount:mount                         # this script: tracefs and securityfs
  runuser:util-linux                  # this script starts clickhouse-server as its user
  apt-get:apt                         # this script
  free:procps                         # make bench: the machine line
  awk:mawk                            # make bench: the machine line
  nproc:coreutils                     # make bench: the machine line
  chromium:chromium                   # the console's browser test (testenv.RequireBrowser), headless
  useradd:passwd                      # this script and crumbs up: the crumbs system user
  userdel:passwd                      # the useradd-pair end-to-end test (grouping), the quiet host's user
  cat:coreutils                       # the privilege tests read /proc as the crumbs user
  find:findutils                      # the privilege tests: what the crumbs user may read
  cp:coreutils                        # the privilege tests: test data the crumbs user may read
  chmod:coreutils                     # the privilege tests: test data the crumbs user may read
  containerd:containerd               # container metadata tests: a private containerd (pkg/testenv)
  ctr:containerd                      # container metadata tests: import an image, run a container
  runc:runc                           # containerd runs the test's container with it
  podman:podman                       # container metadata tests: the Docker-compatible API (podman system service)
  dpkg:dpkg                           # deploy: TestDebInstallsAndPurges installs and purges the deb
  dpkg-query:dpkg                     # deploy: what the installed deb holds
  systemd-analyze:systemd             # deploy: systemd-analyze verify of the installed units
  unshare:util-linux                  # deploy: the deb's purge in a mount namespace of its own
  setpriv:util-linux                  # deploy: crumbs started under the collector unit's bounding set
  rpm:rpm                             # deploy: what the rpm holds (rpm -qp)
  logrotate:logrotate                 # the quiet-host test: log rotation
  dpkg-deb:dpkg                       # the quiet-host test: a package built and installed
  script:bsdutils                     # the quiet-host test: an interactive session on a terminal
  make:make                           # the quiet-host test: a build
  cc:gcc                              # the quiet-host test: a build
)
need=()
for p in "${programs[@]}"; do
  command -v "${p%%:*}" >/dev/null 2>&1 || need+=("${p##*:}")
done
if [ "${1:-}" = "--generate" ]; then
  # make generate: the compiler and tools that build the kernel programs.
  for t in clang:clang llc:llvm bpftool:bpftool; do
    command -v "${t%%:*}" >/dev/null 2>&1 || need+=("${t##*:}")
  done
  [ -f /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
fi
# The ClickHouse cluster tests start a private ZooKeeper (ON CLUSTER, Replicated tables).
[ -f /usr/share/java/zookeeper.jar ] || need+=(zookeeper)
# The identity collector's tests build a small PAM client with cgo.
[ -f /usr/include/security/pam_appl.h ] || need+=(libpam0g-dev)
if [ ${#need[@]} -gt 0 ]; then
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  log "installing ${need[*]} from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

ch_ok() { clickhouse-client --query 'SELECT 1' >/dev/null 2>&1; }
if ! ch_ok; then
  log "starting clickhouse-server"
  mkdir -p /var/lib/clickhouse /var/log/clickhouse-server /run/clickhouse-server
  chown -R clickhouse:clickhouse /var/lib/clickhouse /var/log/clickhouse-server /run/clickhouse-server 2>/dev/null || true
  if command -v runuser >/dev/null 2>&1 && id clickhouse >/dev/null 2>&1; then
    runuser -u clickhouse -- clickhouse-server --config-file=/etc/clickhouse-server/config.xml \
      --pid-file=/run/clickhouse-server/clickhouse-server.pid --daemon
  else
    clickhouse-server --config-file=/etc/clickhouse-server/config.xml --daemon
  fi
  for _ in $(seq 1 60); do
    ch_ok && break
    sleep 0.5
  done
  ch_ok || { log "clickhouse-server did not answer on localhost:9000; see /var/log/clickhouse-server"; exit 1; }
fi
# The system user crumbs' processes become once they drop root (crumbs up creates it too), and
# /var/lib/crumbs open to it (crumbs up gives it the directories below; an older crumbs made
# this one 0700).
if ! id -u crumbs >/dev/null 2>&1; then
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
    --comment "crumbs pipeline" crumbs
  log "created the system user crumbs"
fi
install -d -m 0755 /var/lib/crumbs
chmod 0755 /var/lib/crumbs

log "clickhouse-server is up; tracefs is mounted; user crumbs exists"
