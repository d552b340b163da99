#!/usr/bin/env bash
# Installs and starts what crumbs needs on this host: Debian's clickhouse-server (started if it
# is not answering) and a mounted tracefs. Idempotent; safe to run before every `make run` and
# `make test`. Needs root.
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

need=()
if [ "${1:-}" = "--generate" ]; then
  # make generate: the compiler and tools that build the kernel programs.
  for t in clang:clang llc:llvm bpftool:bpftool; do
    command -v "${t%%:*}" >/dev/null 2>&1 || need+=("${t##*:}")
  done
  [ -f /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
fi
command -v clickhouse-server >/dev/null 2>&1 || need+=(clickhouse-server)
command -v clickhouse-client >/dev/null 2>&1 || need+=(clickhouse-client)
# The ClickHouse cluster tests start a private ZooKeeper (ON CLUSTER, Replicated tables).
[ -f /usr/share/java/zookeeper.jar ] || need+=(zookeeper)
# The identity collector's tests build a small PAM client with cgo.
[ -f /usr/include/security/pam_appl.h ] || need+=(libpam0g-dev)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
if [ ${#need[@]} -gt 0 ]; then
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
log "clickhouse-server is up; tracefs is mounted"
