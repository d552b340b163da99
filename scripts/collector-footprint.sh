#!/bin/bash
# The collector's footprint as the packages run it (BENCHMARKS.md, "Packaged collector"): the
# release binary (make dist) started as root under exactly crumbs-collect.service's bounding
# set, as `crumbs up` with the collectors and the enricher on the embedded broker; then the
# CPU time and memory of the process holding the collectors (root, then crumbs once loaded):
# 60 s with only the host's own activity, then an exec storm of 10,000 /bin/true by four
# workers. Needs root, setpriv, bc. Usage: scripts/collector-footprint.sh dist/crumbs-linux-amd64
set -u
B=$(readlink -f "${1:?the crumbs binary}")
unit="$(dirname "$0")/../deploy/systemd/crumbs-collect.service"
W=$(mktemp -d)
S=$W/state
mkdir -p "$S"
chmod 755 "$W" "$S"
trap 'rm -rf "$W"' EXIT
caps=$(grep '^CapabilityBoundingSet=CAP' "$unit" | cut -d= -f2 | tr ' ' '\n' | sed 's/^CAP_/+/' | tr 'A-Z' 'a-z' | paste -sd,)
CRUMBS_UP_STAGES=collect,enrich CRUMBS_KAFKA_EMBEDDED_PORT=29493 CRUMBS_KAFKA_EMBEDDED_DATA_DIR=$S/kafka \
  CRUMBS_COLLECTORS_SPOOL_DIR=$S/spool CRUMBS_COLLECTORS_FILE_STATE_DIR=$S/scan CRUMBS_METRICS_LISTEN= CRUMBS_STATUS_INTERVAL=0 \
  setpriv --bounding-set "-all,$caps" --inh-caps -all "$B" up 2>"$W/up.log" &
pid=$!
for _ in $(seq 120); do grep -q "crumbs is up" "$W/up.log" && break; sleep 1; done
grep "privileges dropped" "$W/up.log" | cut -c1-160
sleep 20 # the first scan and the process table's seeding
tck=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' /proc/$pid/stat; }
mem() { grep -E "VmRSS|VmHWM" /proc/$pid/status | awk '{printf "%s %d MiB  ", $1, $2/1024}'; echo; }
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
c0=$(cpu); t0=$(date +%s.%N); sleep 60; c1=$(cpu); t1=$(date +%s.%N)
echo "quiet 60s: collector cpu $(echo "($c1-$c0)/$tck" | bc -l | cut -c1-5) s over $(echo "$t1-$t0" | bc | cut -c1-5) s"
mem
c0=$(cpu); t0=$(date +%s.%N)
workers=()
for _ in 1 2 3 4; do
  (for _ in $(seq 2500); do /bin/true; done) &
  workers+=($!)
done
wait "${workers[@]}"
t1=$(date +%s.%N); sleep 5; c1=$(cpu)
echo "storm of 10000 execs: $(echo "$t1-$t0" | bc | cut -c1-5) s, collector cpu $(echo "($c1-$c0)/$tck" | bc -l | cut -c1-5) s"
mem
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
kill -INT $pid
wait $pid
echo "crumbs up exited $?"
