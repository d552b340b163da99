package main

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/threatcrumbs/crumbs/pkg/config"
)

// What each configuration key means, for `crumbs config --markdown`, `crumbs help config` and
// docs/configuration.md (generated from it; TestConfigurationDocIsCurrent keeps it so). A key
// added to Config needs its line here: the test names the ones missing.

// keyDoc documents one configuration key.
type keyDoc struct {
	// Default replaces the default value shown where it depends on the host (found at start).
	Default string
	// Meaning says what the key does, in Markdown (backticks and links; the terminal gets them plain).
	Meaning string
}

// configSection groups the keys under a prefix in the reference.
type configSection struct {
	Title    string
	Prefixes []string
	Note     string
}

var configSections = []configSection{
	{Title: "General", Prefixes: []string{"log.", "host.", "metrics.", "status.", "up."}},
	{Title: "Kafka", Prefixes: []string{"kafka."}, Note: "Roles, credentials and retention: [kafka.md](kafka.md)."},
	{Title: "ClickHouse", Prefixes: []string{"clickhouse."}, Note: "Tables, migrations, retention and clusters: [clickhouse.md](clickhouse.md)."},
	{Title: "Collectors", Prefixes: []string{"collectors."}, Note: "What each collector reports: [collectors.md](collectors.md)."},
	{Title: "Enricher", Prefixes: []string{"enricher."}, Note: "Context records and the join: [context.md](context.md)."},
	{Title: "Detector", Prefixes: []string{"detector."}, Note: "Rules, windows, throttles and incidents: [rules.md](rules.md)."},
	{Title: "Alerts", Prefixes: []string{"alerts."}, Note: "Every key of an output: [outputs.md](outputs.md)."},
	{Title: "Console", Prefixes: []string{"console."}, Note: "Users, tokens and TLS: [console.md](console.md)."},
}

var keyDocs = map[string]keyDoc{
	"log.level":                                   {Meaning: "debug, info, warn or error"},
	"log.format":                                  {Meaning: "text or json (log/slog, on stderr)"},
	"host.id":                                     {Default: "`/etc/machine-id`", Meaning: "machine id put in every event"},
	"host.name":                                   {Default: "the kernel's host name", Meaning: "host name put in every event; context names hosts by it; part of each stage's transactional id"},
	"metrics.listen":                              {Meaning: "address serving Prometheus `/metrics` and `/healthz`; empty turns it off"},
	"metrics.pprof":                               {Meaning: "also serve Go's profiles under `/debug/pprof/`; each stage's goroutines carry the label `stage=<name>`, so `go tool pprof -tagfocus stage=sink` shows one stage of `crumbs up`"},
	"status.interval":                             {Meaning: "interval of `crumbs up`'s status line; `0` turns it off"},
	"up.stages":                                   {Meaning: "stages `crumbs up` runs beside its broker; leave some out to run them apart"},
	"kafka.brokers":                               {Meaning: "seed brokers; empty under `crumbs up` runs the embedded broker"},
	"kafka.client_id":                             {Meaning: "Kafka client id"},
	"kafka.topic_prefix":                          {Meaning: "first part of every topic name (`crumbs.raw.process`, ...)"},
	"kafka.partitions":                            {Meaning: "partitions of the topics crumbs creates"},
	"kafka.replication_factor":                    {Meaning: "replication of the topics crumbs creates (-1: the broker's default)"},
	"kafka.retention.raw.hours":                   {Meaning: "hours `crumbs.raw.*` keep records (`retention.ms`; 0: forever)"},
	"kafka.retention.raw.bytes":                   {Meaning: "bytes per partition `crumbs.raw.*` keep (`retention.bytes`; 0: no limit)"},
	"kafka.retention.enriched.hours":              {Meaning: "hours `crumbs.enriched.*` keep records (`retention.ms`; 0: forever)"},
	"kafka.retention.enriched.bytes":              {Meaning: "bytes per partition `crumbs.enriched.*` keep (`retention.bytes`; 0: no limit)"},
	"kafka.retention.alerts.hours":                {Meaning: "hours `crumbs.alerts` keep records (`retention.ms`; 0: forever)"},
	"kafka.retention.alerts.bytes":                {Meaning: "bytes per partition `crumbs.alerts` keep (`retention.bytes`; 0: no limit)"},
	"kafka.retention.incidents.hours":             {Meaning: "hours `crumbs.incidents` keep records (`retention.ms`; 0: forever)"},
	"kafka.retention.incidents.bytes":             {Meaning: "bytes per partition `crumbs.incidents` keep (`retention.bytes`; 0: no limit)"},
	"kafka.retention.dlq.hours":                   {Meaning: "hours `crumbs.dlq` and the retry topics `crumbs.retry.*` keep records (`retention.ms`; 0: forever)"},
	"kafka.retention.dlq.bytes":                   {Meaning: "bytes per partition `crumbs.dlq` and the retry topics `crumbs.retry.*` keep (`retention.bytes`; 0: no limit)"},
	"kafka.retention.health.hours":                {Meaning: "hours `crumbs.health` keep records (`retention.ms`; 0: forever)"},
	"kafka.retention.health.bytes":                {Meaning: "bytes per partition `crumbs.health` keep (`retention.bytes`; 0: no limit)"},
	"kafka.retention.context.hours":               {Meaning: "hours the compacted `crumbs.context.*` keep records (`retention.ms`; 0: forever); must be 0, the topics are compacted"},
	"kafka.retention.context.bytes":               {Meaning: "bytes per partition the compacted `crumbs.context.*` keep (`retention.bytes`; 0: no limit)"},
	"kafka.retention.state.hours":                 {Meaning: "hours the compacted `crumbs.state.*` keep records (`retention.ms`; 0: forever)"},
	"kafka.retention.state.bytes":                 {Meaning: "bytes per partition the compacted `crumbs.state.*` keep (`retention.bytes`; 0: no limit)"},
	"kafka.retention.triage.hours":                {Meaning: "hours the compacted `crumbs.triage` keep records (`retention.ms`; 0: forever)"},
	"kafka.retention.triage.bytes":                {Meaning: "bytes per partition the compacted `crumbs.triage` keep (`retention.bytes`; 0: no limit)"},
	"kafka.retention.deliveries.hours":            {Meaning: "hours the compacted `crumbs.deliveries` keep records (`retention.ms`; 0: forever)"},
	"kafka.retention.deliveries.bytes":            {Meaning: "bytes per partition the compacted `crumbs.deliveries` keep (`retention.bytes`; 0: no limit)"},
	"kafka.session_timeout":                       {Meaning: "how long a consumer that died without leaving keeps its partitions before its group hands them to the others (6s to 5m)"},
	"kafka.transaction_timeout":                   {Meaning: "transaction timeout of the exactly-once stages"},
	"kafka.max_buffered_records":                  {Meaning: "records a producer buffers before the stage blocks (backpressure)"},
	"kafka.embedded.data_dir":                     {Meaning: "where the embedded broker persists its log"},
	"kafka.embedded.port":                         {Meaning: "port of the embedded broker on 127.0.0.1 (0 picks a free one)"},
	"kafka.embedded.port_wait":                    {Meaning: "how long `crumbs up` waits for the port while it is still held (a previous crumbs still exiting, after a `kill -9`), logging once that it waits"},
	"kafka.embedded.credentials_dir":              {Default: "`<data_dir>/credentials`", Meaning: "the roles' SASL credentials, one file per role, root's only (0700/0600); generated at the first start"},
	"kafka.embedded.retention_interval":           {Meaning: "how often the embedded broker deletes what is past its topics' retention"},
	"kafka.security.tls.enabled":                  {Meaning: "TLS to the brokers"},
	"kafka.security.tls.ca_file":                  {Meaning: "CA certificates to trust (PEM); empty: the system's"},
	"kafka.security.tls.cert_file":                {Meaning: "client certificate (PEM), for mutual TLS"},
	"kafka.security.tls.key_file":                 {Meaning: "client key (PEM)"},
	"kafka.security.tls.server_name":              {Meaning: "name to verify in the brokers' certificates"},
	"kafka.security.tls.insecure_skip_verify":     {Meaning: "do not verify certificates (tests only)"},
	"kafka.security.sasl.mechanism":               {Meaning: "`SCRAM-SHA-256`, `SCRAM-SHA-512`, or `PLAIN` (with TLS only)"},
	"kafka.security.sasl.username":                {Meaning: "SASL user"},
	"kafka.security.sasl.password":                {Meaning: "SASL password (set it in the environment)"},
	"kafka.schema_registry.url":                   {Meaning: "Confluent-compatible schema registry; set: schemas registered under `<topic>-value`, records written in the Confluent framing ([schema-registry.md](schema-registry.md)); empty: Avro single-object encoding"},
	"kafka.schema_registry.username":              {Meaning: "basic-auth user of the registry"},
	"kafka.schema_registry.password_file":         {Meaning: "file holding the registry's basic-auth password"},
	"kafka.schema_registry.ca_file":               {Meaning: "CA of the registry's certificate; empty: the system's"},
	"kafka.schema_registry.timeout":               {Meaning: "bound on each request to the registry"},
	"kafka.schema_registry.start_timeout":         {Meaning: "how long a process retries registering at start before it writes single-object encoding"},
	"clickhouse.addr":                             {Meaning: "native-protocol addresses of the servers"},
	"clickhouse.database":                         {Meaning: "database of crumbs' tables, created when missing"},
	"clickhouse.username":                         {Meaning: "ClickHouse user"},
	"clickhouse.password":                         {Meaning: "ClickHouse password (set it in the environment)"},
	"clickhouse.cluster":                          {Meaning: "cluster for `ON CLUSTER`, Replicated engines and Distributed tables"},
	"clickhouse.tls.enabled":                      {Meaning: "TLS to ClickHouse (secure native port, 9440)"},
	"clickhouse.tls.ca_file":                      {Meaning: "CA certificates to trust (PEM)"},
	"clickhouse.tls.cert_file":                    {Meaning: "client certificate (PEM)"},
	"clickhouse.tls.key_file":                     {Meaning: "client key (PEM)"},
	"clickhouse.tls.server_name":                  {Meaning: "name to verify in the server's certificate"},
	"clickhouse.tls.insecure_skip_verify":         {Meaning: "do not verify certificates (tests only)"},
	"clickhouse.dial_timeout":                     {Meaning: "connection timeout"},
	"clickhouse.compression":                      {Meaning: "compression of the blocks sent: `lz4`, `none`, or `auto` (none when every address is a loopback one, lz4 otherwise)"},
	"clickhouse.group":                            {Meaning: "the sink's consumer group"},
	"clickhouse.batch_size":                       {Meaning: "rows buffered before a flush (also the most records polled at once); one batch is written while the next fills, so up to twice this many rows are held (about 2.2 KB each for process events)"},
	"clickhouse.batch_max_age":                    {Meaning: "longest a consumed record waits before its batch is flushed"},
	"clickhouse.retry_backoff":                    {Meaning: "bound of the first wait before retrying a write ClickHouse could not take; doubles with each failure in a row (retried without limit)"},
	"clickhouse.max_backoff":                      {Meaning: "longest wait between two retries"},
	"clickhouse.retention_interval":               {Meaning: "how often partitions past their retention are dropped"},
	"clickhouse.retention.process_events":         {Meaning: "days kept (0: forever); an event kind's table defaults to its kind's retention (`schemas.Kinds`)"},
	"clickhouse.retention.network_events":         {Meaning: "days kept"},
	"clickhouse.retention.file_events":            {Meaning: "days kept"},
	"clickhouse.retention.identity_events":        {Meaning: "days kept"},
	"clickhouse.retention.system_events":          {Meaning: "days kept"},
	"clickhouse.retention.alerts":                 {Meaning: "days kept"},
	"clickhouse.retention.alerts_hourly":          {Meaning: "days kept"},
	"clickhouse.retention.executions_by_service":  {Meaning: "days kept"},
	"clickhouse.retention.logins_by_account":      {Meaning: "days kept"},
	"clickhouse.retention.service_graph_minute":   {Meaning: "days kept"},
	"clickhouse.retention.service_activity":       {Meaning: "days kept"},
	"collectors.process.enabled":                  {Meaning: "run the process collector"},
	"collectors.process.ring_buffer_bytes":        {Meaning: "kernel ring buffer (a power of two, a multiple of the page size); when full, events are dropped in the kernel and counted. The kernel wakes the collector each time the data waiting in its ring crosses another sixteenth of it, and the collector also reads it every 100 ms: an event reaches user space within 100 ms"},
	"collectors.process.max_args":                 {Meaning: "argv elements kept per exec; more set `args_truncated`"},
	"collectors.process.max_arg_bytes":            {Meaning: "argv bytes copied per exec (1..16384); more set `args_truncated`"},
	"collectors.process.hash_workers":             {Meaning: "goroutines computing executables' sha256"},
	"collectors.process.hash_max_file_bytes":      {Meaning: "larger executables get no sha256"},
	"collectors.process.hash_cache_entries":       {Meaning: "sha256 cache entries, keyed by device, inode, change time and size (as the kernel reports them with each exec, so a cached executable is not even opened)"},
	"collectors.process.exclude_executables":      {Meaning: "globs of executable paths not reported"},
	"collectors.process.exclude_users":            {Meaning: "user names or uids not reported"},
	"collectors.process.refuse":                   {Meaning: "capabilities (as `crumbs doctor` names them: `tp_btf`, `ring_buffer`, ...) treated as refused by the kernel: the collector takes its fallback or turns off what needs them ([When the kernel refuses a capability](collectors.md#when-the-kernel-refuses-a-capability))"},
	"collectors.network.enabled":                  {Meaning: "run the network collector"},
	"collectors.network.ring_buffer_bytes":        {Meaning: "kernel ring buffer"},
	"collectors.network.coalesce_window":          {Meaning: "a TCP connection that closes within this is reported by one event, its `connect` or `accept` carrying bytes and duration; one still open after it gets its `connect`/`accept` then (within 1.5 times the window), `update`s, and a `close`. The kernel holds a connection for the window, so a short one costs one ring-buffer record, not two. `0`: report every open and every close"},
	"collectors.network.summarize":                {Meaning: "sum the TCP connections that close within `coalesce_window` in the kernel per (pid, direction, remote address, service port: the remote port outbound, the local port inbound) and report them every `summary_interval` as `connect_summary`/`accept_summary` events, `packets` holding how many connections (longer connections keep their own events); needs `coalesce_window` above 0. When the kernel cannot hold the summaries (map full, or a kernel without map-in-map), a connection is reported by its own event"},
	"collectors.network.summary_interval":         {Meaning: "period of the summaries of `summarize`"},
	"collectors.network.update_interval":          {Meaning: "an `update` event for TCP connections open longer than this, every interval"},
	"collectors.network.udp_flow_interval":        {Meaning: "period of the `udp_flow` summaries per (pid, destination)"},
	"collectors.network.dns":                      {Meaning: "capture DNS answers: `dns` events and host names on later connections"},
	"collectors.network.max_connections":          {Meaning: "kernel map size for open connections and UDP flows; overflow is counted"},
	"collectors.network.exclude_ports":            {Meaning: "local or remote ports not reported"},
	"collectors.network.exclude_executables":      {Meaning: "globs of executable paths not reported"},
	"collectors.network.exclude_users":            {Meaning: "user names or uids not reported"},
	"collectors.network.iterators":                {Meaning: "how open connections' bytes are refreshed and long connections announced: `auto` takes the first the kernel allows of `map_elem` (the map-element iterator, both jobs), `tcp` (the tcp iterator reads bytes; user space announces from its walk of the connection map) and `off` (the walk only: bytes known at close); `map_elem` and `tcp` use only that iterator and fall back to the walk where the kernel refuses it"},
	"collectors.network.refuse":                   {Meaning: "capabilities treated as refused by the kernel (as for the process collector)"},
	"collectors.file.enabled":                     {Meaning: "run the file collector"},
	"collectors.file.paths":                       {Meaning: "watched globs; a glob covers what it matches and everything under it"},
	"collectors.file.change_only_paths":           {Meaning: "watched globs whose changes are reported but which scans leave alone (their contents change by design)"},
	"collectors.file.sensitive_reads":             {Meaning: "globs whose opens for reading are reported (action read, once per process and file), filtered in the kernel"},
	"collectors.file.exclude_paths":               {Meaning: "globs not reported and not scanned"},
	"collectors.file.exclude_executables":         {Meaning: "globs of executables whose changes are not reported"},
	"collectors.file.exclude_users":               {Meaning: "user names or uids whose changes are not reported"},
	"collectors.file.ring_buffer_bytes":           {Meaning: "kernel ring buffer"},
	"collectors.file.scan_interval":               {Meaning: "time between scheduled scans; `0` turns them off"},
	"collectors.file.scan_on_start":               {Meaning: "scan when the collector starts"},
	"collectors.file.state_dir":                   {Meaning: "where the last scan is kept"},
	"collectors.file.hash_max_file_bytes":         {Meaning: "larger files get no sha256"},
	"collectors.file.refuse":                      {Meaning: "capabilities treated as refused by the kernel (as for the process collector)"},
	"collectors.identity.enabled":                 {Meaning: "run the identity collector"},
	"collectors.identity.libpam_path":             {Default: "found with `ldconfig`", Meaning: "the libpam to probe"},
	"collectors.identity.ring_buffer_bytes":       {Meaning: "kernel ring buffer"},
	"collectors.identity.exclude_users":           {Meaning: "acting users not reported"},
	"collectors.identity.refuse":                  {Meaning: "capabilities treated as refused by the kernel (as for the process collector; `uprobe` turns off PAM events)"},
	"collectors.system.enabled":                   {Meaning: "run the system collector"},
	"collectors.system.interval":                  {Meaning: "sampling interval (at least 1s)"},
	"collectors.system.max_services":              {Meaning: "services reported per interval, largest first; the rest are counted"},
	"collectors.system.cgroup_root":               {Default: "the cgroup v2 mount", Meaning: "where the cgroups are read"},
	"collectors.host_root":                        {Default: "empty (on the host)", Meaning: "where the host's root is mounted when crumbs runs in a container (`/host` in the DaemonSet and `docker-compose.yml`): the files events name, watched paths, passwd and group, libpam, the cgroup mount and `/etc/machine-id` are read under it, links resolved inside it; events keep the host's paths ([deploy.md](deploy.md))"},
	"collectors.spool.dir":                        {Meaning: "on-disk spool per collector while Kafka is unreachable; empty turns it off"},
	"collectors.spool.max_bytes":                  {Meaning: "spool limit per collector; when full the newest events are dropped and counted"},
	"collectors.spool.delivery_timeout":           {Meaning: "how long an event waits for Kafka before it is spooled"},
	"collectors.redact.enabled":                   {Meaning: "redact secrets in argv and command lines at the source (the forms are listed in [the security model](security.md))"},
	"collectors.redact.patterns":                  {Meaning: "extra Go regexps, tried on every argument and command line; the first capture group (or the whole match) becomes `[REDACTED]`"},
	"collectors.health.interval":                  {Meaning: "how often drops are checked and reported as health events"},
	"collectors.containers.enabled":               {Meaning: "put the container's name, image and Kubernetes pod on events ([containers.md](containers.md))"},
	"collectors.containers.sockets":               {Meaning: "`runtime:/path` of the container runtimes' API sockets (containerd, crio, docker, podman), tried in order; those that answer at start are asked"},
	"collectors.containers.cache_size":            {Meaning: "containers remembered (least recently used dropped first)"},
	"collectors.containers.queue_size":            {Meaning: "container ids waiting to be asked; when full, a later event of the container asks again"},
	"collectors.containers.lookup_timeout":        {Meaning: "bound on one question to one runtime"},
	"collectors.containers.negative_ttl":          {Meaning: "how long an id no runtime knows stays unknown before it is asked again"},
	"collectors.containers.kubernetes.enabled":    {Meaning: "watch this node's pods for labels and workload: `auto` (when `KUBERNETES_SERVICE_HOST` is set), `true` or `false`"},
	"collectors.containers.kubernetes.api_server": {Default: "`https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`", Meaning: "the API server's https URL"},
	"collectors.containers.kubernetes.node_name":  {Default: "`$NODE_NAME`, else the host name", Meaning: "the node whose pods are watched (`spec.nodeName`)"},
	"collectors.containers.kubernetes.token_file": {Meaning: "the service account's bearer token, read again for every request"},
	"collectors.containers.kubernetes.ca_file":    {Meaning: "CA of the API server's certificate"},
	"collectors.containers.kubernetes.max_pods":   {Meaning: "pods remembered"},
	"enricher.group":                              {Meaning: "the enricher's consumer group"},
	"enricher.kinds":                              {Meaning: "raw topics enriched"},
	"enricher.max_context_records":                {Meaning: "context records held per kind; beyond it the oldest are evicted and counted"},
	"enricher.deploy_history":                     {Meaning: "deploys kept per service for joining by event time"},
	"enricher.max_poll_records":                   {Meaning: "records per transaction at most (the enricher joins them 32 at a time)"},
	"enricher.api.listen":                         {Meaning: "address of the context HTTP API; empty turns it off"},
	"enricher.api.tokens":                         {Meaning: "bearer tokens the API accepts (at least 16 characters; required with `listen`)"},
	"enricher.api.max_body_bytes":                 {Meaning: "largest request body"},
	"enricher.api.tls.cert_file":                  {Meaning: "PEM certificate chain; with `key_file` the API serves TLS 1.2+ (required when `listen` is not a loopback address); reloaded when the files change"},
	"enricher.api.tls.key_file":                   {Meaning: "PEM private key of `cert_file`"},
	"enricher.api.tls.client_ca_file":             {Meaning: "PEM CA bundle; when set, clients must present a certificate it signed (mutual TLS) besides their token"},
	"enricher.context_dir":                        {Meaning: "directory of context files kept in sync; empty turns it off"},
	"enricher.context_dir_interval":               {Meaning: "how often the directory is read"},
	"detector.group":                              {Meaning: "the detector's consumer group; its state topic is `crumbs.state.<group>`"},
	"detector.rules_dir":                          {Meaning: "folder of rule files; empty: the built-in pack"},
	"detector.sigma_dirs":                         {Meaning: "extra folders of Sigma rules loaded beside the rules"},
	"detector.sigma_refused":                      {Meaning: "`fail`: a Sigma file crumbs cannot evaluate makes the set invalid; `skip`: it is logged with its reason, counted, and the rest loads"},
	"detector.sources":                            {Meaning: "enriched topics judged"},
	"detector.allowed_lateness":                   {Meaning: "how far behind its kind's clock on its partition an event may be and still count in windows"},
	"detector.idle_timeout":                       {Meaning: "a partition that gets no record for this long has its watermark follow the wall clock (now − allowed_lateness − idle_timeout), so windows close after a burst followed by silence; 0 turns it off"},
	"detector.max_state_keys":                     {Meaning: "group keys held in memory; the oldest are evicted and counted"},
	"detector.max_evidence":                       {Meaning: "evidence event ids an alert carries at most"},
	"detector.max_poll_records":                   {Meaning: "records per transaction at most"},
	"detector.reload_interval":                    {Meaning: "how often rule folders are checked for changes (SIGHUP reloads at once)"},
	"detector.throttle":                           {Meaning: "alerts of a match, new_term or sequence rule for one host and group key within this long of the first are that one alert, its count growing (a rule's own `throttle` overrides it); 0 turns it off"},
	"detector.incidents.span":                     {Meaning: "alerts of one process tree or login session on one host, each within this long of the one before, share an incident id; the incident goes to `crumbs.incidents`; 0 turns incidents off"},
	"detector.incidents.max_processes":            {Meaning: "processes the detector's process table remembers (from fork and exec events) to find process trees; the oldest are forgotten first"},
	"detector.sigma_min_level":                    {Meaning: "the lowest Sigma level loaded (a rule without a level counts as medium); rules below it raise no alert of their own, a correlation may still use them"},
	"detector.sigma_status":                       {Meaning: "the Sigma statuses loaded (a rule without a status loads); deprecated and unsupported rules are left out"},
	"detector.sigma_on_change":                    {Meaning: "what a change window in force does to Sigma rules' alerts (they cannot say it themselves): ignore, suppress, or explain (one severity lower, naming the change)"},
	"detector.max_condition_cost":                 {Meaning: "CEL cost units one condition may spend on one event: a rule whose estimated worst cost is higher is refused at load (file, line and estimate named); an evaluation past it (an event larger than the estimate assumed) stops, counts as no match and is counted in `crumbs_detector_conditions_interrupted_total`"},
	"alerts.group":                                {Meaning: "the alerts stage's consumer group"},
	"alerts.max_in_flight":                        {Meaning: "alerts consumed and not yet delivered (or given up) at every output; at the bound the stage stops fetching"},
	"alerts.commit_interval":                      {Meaning: "how often the offsets of alerts done with are committed"},
	"alerts.console_url":                          {Meaning: "base of the link to an alert (`{console_url}/alerts/{id}`) that outputs carry"},
	"alerts.outputs":                              {Meaning: "the outputs, a list in the file (name, type, filters, templates, rate limit, retry, and the type's keys)"},
	"console.listen":                              {Meaning: "where the console and triage API listen; off loopback only with TLS"},
	"console.tls.cert_file":                       {Meaning: "PEM certificate; with `console.tls.key_file` the console serves HTTPS (reread when renewed)"},
	"console.tls.key_file":                        {Meaning: "PEM private key of `console.tls.cert_file`"},
	"console.users":                               {Meaning: "users who log in: `name`, `password_hash` (bcrypt, `crumbs console hash-password`), `role` (`read` or `triage`)"},
	"console.tokens":                              {Meaning: "tokens for the login page and the API (`Authorization: Bearer`): `name`, `token` (16 characters at least), `role`"},
	"console.session_ttl":                         {Meaning: "how long a login lasts"},
	"console.max_sessions":                        {Meaning: "sessions held at most (the oldest goes)"},
	"console.suppress_for":                        {Meaning: "how long a false positive suppresses its rule when the analyst does not say"},
	"console.max_suppress_for":                    {Meaning: "the longest suppression"},
	"console.page_size":                           {Meaning: "alerts the inbox lists"},
	"console.query_timeout":                       {Meaning: "bound on one page's ClickHouse queries"},
}

// configIntro opens docs/configuration.md.
const configIntro = `# Configuration reference

<!-- Generated by ` + "`crumbs config --markdown`" + ` from cmd/crumbs/configdoc.go; do not edit.
     Regenerate: go test ./cmd/crumbs -run TestConfigurationDocIsCurrent -update -->

Every key can be set in a YAML file (` + "`--config FILE`" + `, or ` + "`CRUMBS_CONFIG`" + `), in the environment
(` + "`CRUMBS_`" + ` + the key upper-cased with dots as underscores: ` + "`clickhouse.addr`" + ` is
` + "`CRUMBS_CLICKHOUSE_ADDR`" + `) and by a flag named like the key (` + "`--clickhouse.addr`" + `) on every
command that reads configuration. Flags win over the environment, which wins over the file,
which wins over the defaults. Lists are YAML lists in the file and comma-separated elsewhere
(` + "`alerts.outputs`" + `, ` + "`console.users`" + ` and ` + "`console.tokens`" + `, lists of records, are set in the file
only); durations are Go durations (` + "`500ms`" + `, ` + "`1m`" + `). An unknown key — in the file or as a
` + "`CRUMBS_`" + ` variable — or an invalid value is refused with exit code 2 and a message naming the
key. ` + "`make run`" + ` reads ` + "`crumbs.yaml`" + ` when it exists. ` + "`crumbs config`" + ` prints every key with its
effective value (secrets hidden); ` + "`crumbs config --help`" + ` lists the flags with their meaning.

` + "```yaml" + `
# crumbs.yaml
clickhouse:
  addr: [127.0.0.1:9000]
  database: crumbs
collectors:
  file:
    paths: [/usr/bin, /etc, /opt/*/webapps]
detector:
  sigma_dirs: [/etc/crumbs/sigma]
  sigma_refused: skip
enricher:
  context_dir: /etc/crumbs/context
` + "```" + `

Secrets (passwords, tokens) belong in the environment or a file only root reads, never on a
command line.
`

// configMarkdown is the configuration reference: every key by section, with its environment
// variable, default and meaning.
func configMarkdown() string {
	var b strings.Builder
	b.WriteString(configIntro)
	keys := config.Keys(defaultConfig())
	for _, sec := range configSections {
		fmt.Fprintf(&b, "\n## %s\n\n", sec.Title)
		if sec.Note != "" {
			fmt.Fprintf(&b, "%s\n\n", sec.Note)
		}
		b.WriteString("| key | environment | default | meaning |\n| --- | --- | --- | --- |\n")
		for _, k := range keys {
			if !sec.has(k.Name) {
				continue
			}
			d := keyDocs[k.Name]
			def := d.Default
			if def == "" {
				def = docDefault(k.Default)
			}
			fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s |\n", k.Name, k.Env(), mdCell(def), mdCell(d.Meaning))
		}
	}
	return b.String()
}

// docDefault writes a default value as the reference shows it: durations short (1h, not
// 1h0m0s), lists in brackets, an empty string as "empty".
func docDefault(v any) string {
	switch d := v.(type) {
	case time.Duration:
		return "`" + shortDuration(d) + "`"
	case string:
		if d == "" {
			return "empty"
		}
		return "`" + d + "`"
	case []string:
		return "`[" + strings.Join(d, ", ") + "]`"
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice && rv.Len() == 0 {
		return "`[]`"
	}
	return "`" + fmt.Sprint(v) + "`"
}

func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// mdCell keeps a table cell on one line with its pipes escaped.
func mdCell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\n", " "), "|", "\\|")
}
