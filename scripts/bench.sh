#!/usr/bin/env bash
# make bench: every benchmark and load run, each reported with the baseline it is compared
# with in the same run (the machine is shared and noisy: ratios, not absolute figures, are
# what to compare across runs). Needs root, eBPF and ClickHouse, like make test.
# Output: the raw `go test -bench` lines in bench-results/<time>.txt and a summary on stdout.
set -uo pipefail
cd "$(dirname "$0")/.."
out=bench-results/$(date -u +%Y%m%dT%H%M%SZ).txt
mkdir -p bench-results
export CRUMBS_STRICT=1

run() { # run PACKAGE PATTERN BENCHTIME
  echo "== go test $1 -bench '$2' -benchtime $3" | tee -a "$out"
  go test "$1" -run '^$' -bench "$2" -benchtime "$3" -count 1 -timeout 30m 2>&1 | tee -a "$out" | grep -E '^(Benchmark|ok|FAIL|---)' || true
}

{
  echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "clickhouse: $(clickhouse-client --query 'SELECT version()' 2>/dev/null)"
} | tee "$out"

# Collectors: events per second with zero drops, drops under storms, overhead ratios.
run ./collectors/process 'ExecStorm' 5000x
# Every way of the network collector's iterator jobs, forced by configuration, side by side,
# and short connections summarized (collectors.network.summarize).
run ./collectors/network 'ConnectStorm' 20000x
run ./collectors/network 'HandleShortConnection' 300000x
run ./collectors/file '.' 20000x
run ./collectors/identity 'CredentialStorm' 20000x
run ./collectors/system 'Sample' 50x
# All five collectors' overhead on exec, loopback connect and veth connect storms, each storm
# with them against without them in the same round: with the defaults (default), with
# collectors.network.summarize (summarize), and with the network collector's connection-map
# walk forced (iterators=off).
run ./collectors 'AllCollectorsOverhead' 15x
# Embedded broker: produce throughput with SASL/SCRAM and the role ACLs against an open broker.
run ./pkg/kafka 'EmbeddedProduceAuth' 20x
# Codecs: per schema, the generated encode, decode and column decode beside goavro's generic
# path (native form + goavro); the Serde with framing on a process event.
run ./schemas 'Codec' 100000x
run ./pkg/avro 'SerdeProcessEvent' 100000x
# Enricher against a pass-through stage; detector engine with 10/100/1000 rules and state
# memory; Sigma conditions alone; the detect stage with 1,000 native rules against 10 and
# with the whole Sigma corpus against no rules, in one run.
run ./enrichers 'Enricher$' 300000x
run ./enrichers 'EnrichValue' 2s
run ./detectors 'EngineRules|StateMemory' 2s
run ./detectors/sigma 'Corpus' 2s
run ./detectors 'Detector$' 30000x
# The detect stage judging decoded records against the same detector judging activation maps.
run ./detectors 'DetectorView$' 20000x
# Sink against clickhouse-client inserting the same rows in Native format.
run ./sinks/clickhouse 'Sink(Insert|VsClickhouseClient|Stage)$' 3x
# Sink while its private ClickHouse flaps (down 10 s in every 60 s) vs steady, same run.
run ./sinks/clickhouse 'SinkFlapping' 1x
# Forensics: a one-hour host timeline over 10 million events (loaded once, kept).
run ./query 'TimelineOneHost' 20x
# Console: the inbox page's server time over 1,000,000 alerts (loaded once, kept), per filter.
run ./console 'InboxPage' 20x
# Alerts stage: alert-to-delivery latency at 100 alerts/s, webhook and syslog over TCP.
run ./sinks/outputs 'DeliveryLatency' 1x
# crumbs doctor: wall time of five runs (it loads and attaches every collector's programs).
echo "== crumbs doctor, wall time of 5 runs" | tee -a "$out"
TIMEFORMAT='%R s'
for _ in 1 2 3 4 5; do { time bin/crumbs doctor >/dev/null 2>&1; } 2>&1; done | tee -a "$out"
# End to end: crumbs loadgen (every kind) -> raw topics -> enricher -> detector -> sink ->
# ClickHouse rows, a burst and a steady rate, each against the rate at which loadgen put the
# same events into the same broker (ratio-landed:produced), with the load average (load1).
run ./cmd/crumbs 'EndToEnd' 1x

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out"
echo "raw results: $out"
