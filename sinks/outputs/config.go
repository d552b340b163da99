package outputs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Config configures the alerts stage (key prefix `alerts.`).
type Config struct {
	// Group is the stage's Kafka consumer group (kgo.ConsumerGroup). Default "crumbs-alerts".
	Group string `mapstructure:"group"`
	// MaxInFlight bounds the records consumed and not yet done with (delivered, dead-lettered
	// or filtered out at every output); at the bound the stage stops polling (backpressure).
	// Default 10000.
	MaxInFlight int `mapstructure:"max_in_flight"`
	// CommitInterval is how often the offsets of records done with are committed
	// (kgo CommitRecords). Default 1s.
	CommitInterval time.Duration `mapstructure:"commit_interval"`
	// ConsoleURL, when set, is the base of the link to an alert that outputs carry
	// ({console_url}/alerts/{alert id}; templates see it as .URL). Default empty.
	ConsoleURL string `mapstructure:"console_url"`
	// Outputs are where alerts go; each alert goes to every output whose filters it passes.
	// docs/outputs.md describes every key of an output. Default none.
	Outputs []OutputConfig `mapstructure:"outputs"`
}

// Output types.
const (
	TypeWebhook      = "webhook"
	TypeSlack        = "slack"
	TypePagerDuty    = "pagerduty"
	TypeAlertmanager = "alertmanager"
	TypeSyslog       = "syslog"
	TypeEmail        = "email"
	TypeFile         = "file"
)

var outputTypes = []string{TypeWebhook, TypeSlack, TypePagerDuty, TypeAlertmanager, TypeSyslog, TypeEmail, TypeFile}

// What an output delivers (alerts.outputs[N].deliver).
const (
	DeliverAlerts    = "alerts"    // every alert (crumbs.alerts)
	DeliverIncidents = "incidents" // incidents: alerts of one process tree tied together (crumbs.incidents)
)

// Which later versions of an alert or incident an output delivers (alerts.outputs[N].updates).
// The first version is always delivered.
const (
	UpdatesNone  = "none"  // the first version only: one message per alert, with the count so far
	UpdatesFinal = "final" // the first, and the final version once the alert's window closed
	UpdatesAll   = "all"   // every version: the alert as it grows
)

// defaultUpdates is the updates policy of an output type and what it delivers: receivers
// that update what they show in place (PagerDuty's dedup key, Alertmanager's labels) and
// machines (webhook, syslog, file) take every version; people reading a channel or a mailbox
// take an alert's first and final versions, and an incident's updates (at most one per
// detector.throttle while it grows, and its final version).
func defaultUpdates(typ, deliver string) string {
	switch typ {
	case TypeSlack, TypeEmail:
		if deliver == DeliverAlerts {
			return UpdatesFinal
		}
	}
	return UpdatesAll
}

// OutputConfig configures one output (key prefix `alerts.outputs[N].`). Keys tagged with
// `types` belong to those output types only; setting one on another type is an error.
type OutputConfig struct {
	// Name names the output in metrics, logs, delivery state and dead letters: letters,
	// digits, '-' and '_'. Required.
	Name string `mapstructure:"name"`
	// Type is webhook, slack, pagerduty, alertmanager, syslog, email or file. Required.
	Type string `mapstructure:"type"`
	// MinSeverity is the lowest severity delivered: informational, low, medium, high or
	// critical. Default informational (every alert).
	MinSeverity string `mapstructure:"min_severity"`
	// Rules, when set, delivers only alerts of rules whose id matches one of these patterns
	// (path.Match: `crumbs-*`). Default empty: every rule.
	Rules []string `mapstructure:"rules"`
	// ExcludeRules leaves out alerts of rules whose id matches one of these patterns.
	// Default empty.
	ExcludeRules []string `mapstructure:"exclude_rules"`
	// Tags, when set, delivers only alerts with a tag matching one of these patterns
	// (`attack.t1078*`). Default empty: any tags.
	Tags []string `mapstructure:"tags"`
	// Services, when set, delivers only alerts of a service matching one of these patterns.
	// Default empty: any service.
	Services []string `mapstructure:"services"`
	// Deliver is what the output delivers: alerts, or incidents (the alerts of one process
	// tree or login session tied together, with their rules, counts and highest severity; the
	// filters then apply to the incident's severity, rules, tags and service). Default alerts.
	Deliver string `mapstructure:"deliver"`
	// Updates says which later versions of an alert (or incident) the output delivers: none
	// (the first only), final (the first, and the final version when its window closed) or
	// all. Default all, but final for slack and email outputs delivering alerts
	// (docs/outputs.md: Updates).
	Updates string `mapstructure:"updates"`
	// Fields are extra fields, each a text/template over the alert (docs/outputs.md lists
	// what a template sees), carried by every output type. Default none.
	Fields map[string]string `mapstructure:"fields"`
	// Text is the one-line message, a template: Slack's text, PagerDuty's summary, the syslog
	// MSG, the e-mail subject, Alertmanager's summary annotation. Default
	// `[{{.Severity}}] {{.Title}} on {{.Host.Name}}`.
	Text string `mapstructure:"text" types:"slack pagerduty syslog email alertmanager"`
	// Body is the e-mail body, a template. Default: the alert's fields, one per line.
	Body string `mapstructure:"body" types:"email"`
	// Timeout bounds one delivery attempt. Default 10s.
	Timeout time.Duration `mapstructure:"timeout"`
	// RateLimit bounds how many alerts the output delivers; off by default.
	RateLimit RateLimitConfig `mapstructure:"rate_limit"`
	// Retry says how failed deliveries are retried, and when they are given up.
	Retry RetryConfig `mapstructure:"retry"`

	// URL is where the output posts: the webhook's URL, Slack's incoming-webhook URL,
	// PagerDuty's Events v2 endpoint (default https://events.pagerduty.com/v2/enqueue), or
	// Alertmanager's base URL (crumbs posts to {url}/api/v2/alerts). `env:NAME` reads it
	// from the environment variable NAME.
	URL string `mapstructure:"url" types:"webhook slack pagerduty alertmanager"`
	// Headers are extra HTTP headers of the webhook's requests. Default none.
	Headers map[string]string `mapstructure:"headers" types:"webhook"`
	// Secret signs the webhook's body: header SignatureHeader is `sha256=` and the hex
	// HMAC-SHA256 of the body under this secret. Empty: not signed. `env:NAME` reads it from
	// the environment.
	Secret string `mapstructure:"secret" types:"webhook"`
	// SignatureHeader names the signature header. Default X-Crumbs-Signature.
	SignatureHeader string `mapstructure:"signature_header" types:"webhook"`
	// TLS configures TLS to the receiver: the CAs to trust, a client certificate (mTLS).
	TLS TLSConfig `mapstructure:"tls" types:"webhook slack pagerduty alertmanager syslog email"`

	// Channel, Username and IconEmoji override the Slack webhook's defaults. Default empty.
	Channel   string `mapstructure:"channel" types:"slack"`
	Username  string `mapstructure:"username" types:"slack email"`
	IconEmoji string `mapstructure:"icon_emoji" types:"slack"`

	// RoutingKey is the PagerDuty integration's routing key. Required for pagerduty.
	// `env:NAME` reads it from the environment.
	RoutingKey string `mapstructure:"routing_key" types:"pagerduty"`

	// Labels are extra Alertmanager labels, templates; label names are
	// [a-zA-Z_][a-zA-Z0-9_]*. Default none.
	Labels map[string]string `mapstructure:"labels" types:"alertmanager"`
	// EndsAfter, when set, gives Alertmanager an end time this long after the alert's start;
	// 0 leaves it to Alertmanager's resolve_timeout. Default 0.
	EndsAfter time.Duration `mapstructure:"ends_after" types:"alertmanager"`

	// Network is the syslog transport: udp, tcp (octet-counting framing, RFC 6587) or tls
	// (RFC 5425). Default udp.
	Network string `mapstructure:"network" types:"syslog"`
	// Address is host:port of the syslog receiver or of the SMTP server. Required for both.
	Address string `mapstructure:"address" types:"syslog email"`
	// Facility is the syslog facility: kern, user, ..., local0 to local7. Default local0.
	Facility string `mapstructure:"facility" types:"syslog"`
	// AppName is the syslog APP-NAME. Default crumbs.
	AppName string `mapstructure:"app_name" types:"syslog"`
	// SDID is the SD-ID of the structured-data element carrying the alert's fields.
	// Default crumbs@32473 (32473 is the enterprise number RFC 5612 reserves for examples:
	// set your own where that matters).
	SDID string `mapstructure:"sd_id" types:"syslog"`

	// Password is the SMTP password (PLAIN auth, always over STARTTLS); `env:NAME` reads it
	// from the environment. Username is the SMTP user; both empty: no auth.
	Password string `mapstructure:"password" types:"email"`
	// From is the sender address. Required for email.
	From string `mapstructure:"from" types:"email"`
	// To are the recipients. Required for email.
	To []string `mapstructure:"to" types:"email"`

	// Path is the file JSON lines are appended to; `-` writes them to standard output.
	// Required for file.
	Path string `mapstructure:"path" types:"file"`
	// MaxSize is the size in bytes at which the file is rotated (path.1, path.2, ...).
	// Default 104857600 (100 MiB).
	MaxSize int64 `mapstructure:"max_size" types:"file"`
	// MaxFiles is how many rotated files are kept besides the current one. Default 5.
	MaxFiles int `mapstructure:"max_files" types:"file"`
	// Fsync syncs the file after every alert, so that a machine crash loses none that was
	// reported delivered. Default false.
	Fsync bool `mapstructure:"fsync" types:"file"`
}

// RateLimitConfig is a token bucket in front of an output (key prefix
// `alerts.outputs[N].rate_limit.`).
type RateLimitConfig struct {
	// PerMinute is the sustained rate, in alerts a minute; 0 turns the limit off. Default 0.
	PerMinute float64 `mapstructure:"per_minute"`
	// Burst is how many alerts may go at once above the rate. Default: PerMinute, at least 1.
	Burst int `mapstructure:"burst"`
	// Exceed is what happens to an alert over the limit: `summarize` holds it back and
	// delivers, every SummaryInterval, one summary alert that counts the alerts held back by
	// rule and severity (they stay whole in ClickHouse and the console); `delay` holds it
	// until the bucket allows it (nothing is left out, the output lags). Default summarize:
	// at a rate above the limit, on-call people want one message that says so, not a queue
	// that keeps them paged for an hour after the burst.
	Exceed string `mapstructure:"exceed"`
	// SummaryInterval is how long alerts are held back before their summary goes. Default 1m.
	SummaryInterval time.Duration `mapstructure:"summary_interval"`
}

// RetryConfig bounds the retries of an output (key prefix `alerts.outputs[N].retry.`). A
// delivery the receiver refused for its content (HTTP 400, 413, 415, 422; SMTP 5xx) is
// dead-lettered at once; other failures (receiver away, overloaded, timing out, refusing the
// output's credentials) are retried with exponential backoff until MaxAttempts or MaxDuration
// is reached, then dead-lettered.
type RetryConfig struct {
	// InitialBackoff is the wait after the first failure; it doubles up to MaxBackoff.
	// Default 1s.
	InitialBackoff time.Duration `mapstructure:"initial_backoff"`
	// MaxBackoff caps the wait between two attempts. Default 1m.
	MaxBackoff time.Duration `mapstructure:"max_backoff"`
	// MaxAttempts gives up after this many attempts; 0: no bound on attempts. Default 0.
	MaxAttempts int `mapstructure:"max_attempts"`
	// MaxDuration gives up once this long has passed since the alert was consumed; a negative
	// value never gives up (the alert is retried while Kafka holds it, as DESIGN.md's sinks
	// are). Default 1h.
	MaxDuration time.Duration `mapstructure:"max_duration"`
}

// TLSConfig configures TLS to an output's receiver.
type TLSConfig struct {
	// CAFile is a PEM file of the CAs to trust; empty: the system's. Default empty.
	CAFile string `mapstructure:"ca_file"`
	// CertFile is a PEM client certificate, for receivers that require one (mTLS). Default empty.
	CertFile string `mapstructure:"cert_file"`
	// KeyFile is the client certificate's key (see CertFile). Default empty.
	KeyFile string `mapstructure:"key_file"`
	// ServerName overrides the name checked in the receiver's certificate. Default empty.
	ServerName string `mapstructure:"server_name"`
	// InsecureSkipVerify skips checking the receiver's certificate (tests only). Default false.
	InsecureSkipVerify bool `mapstructure:"insecure_skip_verify"`
}

// Defaults of an output's keys (see OutputConfig).
const (
	DefaultText            = "[{{.Severity}}] {{.Title}} on {{.Host.Name}}"
	DefaultTimeout         = 10 * time.Second
	DefaultSignatureHeader = "X-Crumbs-Signature"
	DefaultPagerDutyURL    = "https://events.pagerduty.com/v2/enqueue"
	DefaultFacility        = "local0"
	DefaultAppName         = "crumbs"
	DefaultSDID            = "crumbs@32473"
	DefaultMaxSize         = 100 << 20
	DefaultMaxFiles        = 5
)

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{Group: "crumbs-alerts", MaxInFlight: 10000, CommitInterval: time.Second}
}

// withDefaults returns o with every unset key at its documented default.
func (o OutputConfig) withDefaults() OutputConfig {
	set := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	set(&o.MinSeverity, "informational")
	set(&o.Deliver, DeliverAlerts)
	set(&o.Updates, defaultUpdates(o.Type, o.Deliver))
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Retry.InitialBackoff == 0 {
		o.Retry.InitialBackoff = time.Second
	}
	if o.Retry.MaxBackoff == 0 {
		o.Retry.MaxBackoff = time.Minute
	}
	if o.Retry.MaxDuration == 0 {
		o.Retry.MaxDuration = time.Hour
	}
	if o.RateLimit.PerMinute > 0 {
		if o.RateLimit.Burst == 0 {
			o.RateLimit.Burst = max(1, int(o.RateLimit.PerMinute))
		}
		set(&o.RateLimit.Exceed, "summarize")
		if o.RateLimit.SummaryInterval == 0 {
			o.RateLimit.SummaryInterval = time.Minute
		}
	}
	switch o.Type {
	case TypeSlack, TypePagerDuty, TypeSyslog, TypeEmail, TypeAlertmanager:
		set(&o.Text, DefaultText)
	}
	switch o.Type {
	case TypeWebhook:
		set(&o.SignatureHeader, DefaultSignatureHeader)
	case TypePagerDuty:
		set(&o.URL, DefaultPagerDutyURL)
	case TypeSyslog:
		set(&o.Network, "udp")
		set(&o.Facility, DefaultFacility)
		set(&o.AppName, DefaultAppName)
		set(&o.SDID, DefaultSDID)
	case TypeEmail:
		set(&o.Body, defaultBody)
	case TypeFile:
		if o.MaxSize == 0 {
			o.MaxSize = DefaultMaxSize
		}
		if o.MaxFiles == 0 {
			o.MaxFiles = DefaultMaxFiles
		}
	}
	return o
}

var outputName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// labelName is what an Alertmanager (Prometheus) label name may be.
var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// Validate reports every invalid key, each named in full (`alerts.outputs[2].url: ...`).
func (c Config) Validate() error {
	var errs []error
	if c.Group == "" {
		errs = append(errs, errors.New("alerts.group: must not be empty"))
	}
	if c.MaxInFlight < 1 {
		errs = append(errs, fmt.Errorf("alerts.max_in_flight: %d: must be at least 1", c.MaxInFlight))
	}
	if c.CommitInterval <= 0 {
		errs = append(errs, fmt.Errorf("alerts.commit_interval: %s: must be positive", c.CommitInterval))
	}
	if c.ConsoleURL != "" {
		if u, err := url.Parse(c.ConsoleURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("alerts.console_url: %q: must be an http or https URL", c.ConsoleURL))
		}
	}
	names := map[string]int{}
	for i, o := range c.Outputs {
		key := fmt.Sprintf("alerts.outputs[%d]", i)
		if j, dup := names[o.Name]; dup && o.Name != "" {
			errs = append(errs, fmt.Errorf("%s.name: %q: already the name of alerts.outputs[%d]", key, o.Name, j))
		}
		names[o.Name] = i
		errs = append(errs, o.validate(key)...)
	}
	return errors.Join(errs...)
}

func (o OutputConfig) validate(key string) []error {
	var errs []error
	bad := func(k, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", key, k, fmt.Sprintf(format, a...)))
	}
	if !outputName.MatchString(o.Name) {
		bad("name", "%q: must be 1 to 64 letters, digits, '-' or '_'", o.Name)
	}
	if !slices.Contains(outputTypes, o.Type) {
		bad("type", "%q: must be one of %s", o.Type, strings.Join(outputTypes, ", "))
		return errs
	}
	errs = append(errs, o.foreignKeys(key)...)
	o = o.withDefaults()
	if _, ok := severityRank[o.MinSeverity]; !ok {
		bad("min_severity", "%q: must be informational, low, medium, high or critical", o.MinSeverity)
	}
	if o.Deliver != DeliverAlerts && o.Deliver != DeliverIncidents {
		bad("deliver", "%q: must be alerts or incidents", o.Deliver)
	}
	if o.Updates != UpdatesNone && o.Updates != UpdatesFinal && o.Updates != UpdatesAll {
		bad("updates", "%q: must be none, final or all", o.Updates)
	}
	for _, list := range []struct {
		k        string
		patterns []string
	}{{"rules", o.Rules}, {"exclude_rules", o.ExcludeRules}, {"tags", o.Tags}, {"services", o.Services}} {
		for _, p := range list.patterns {
			if _, err := path.Match(p, ""); err != nil || p == "" {
				bad(list.k, "%q: not a pattern (path.Match syntax)", p)
			}
		}
	}
	if o.Timeout < 0 {
		bad("timeout", "%s: must be positive", o.Timeout)
	}
	r := o.RateLimit
	if r.PerMinute < 0 {
		bad("rate_limit.per_minute", "%g: must not be negative (0 turns the limit off)", r.PerMinute)
	}
	if r.Burst < 0 {
		bad("rate_limit.burst", "%d: must not be negative", r.Burst)
	}
	if r.Exceed != "" && r.Exceed != "summarize" && r.Exceed != "delay" {
		bad("rate_limit.exceed", "%q: must be summarize or delay", r.Exceed)
	}
	if r.SummaryInterval < 0 {
		bad("rate_limit.summary_interval", "%s: must be positive", r.SummaryInterval)
	}
	rt := o.Retry
	if rt.InitialBackoff < 0 || rt.MaxBackoff < rt.InitialBackoff {
		bad("retry.max_backoff", "%s: must be at least retry.initial_backoff (%s), both positive", rt.MaxBackoff, rt.InitialBackoff)
	}
	if rt.MaxAttempts < 0 {
		bad("retry.max_attempts", "%d: must not be negative (0: no bound)", rt.MaxAttempts)
	}
	for k, v := range o.Fields {
		if k == "" {
			bad("fields", "a field has an empty name")
		}
		if _, err := parseTemplate(v); err != nil {
			bad("fields."+k, "%v", err)
		}
	}
	for k, v := range map[string]string{"text": o.Text, "body": o.Body} {
		if _, err := parseTemplate(v); err != nil {
			bad(k, "%v", err)
		}
	}
	if (o.TLS.CertFile == "") != (o.TLS.KeyFile == "") {
		bad("tls.cert_file", "set tls.cert_file and tls.key_file both or neither")
	}
	switch o.Type {
	case TypeWebhook, TypeSlack, TypePagerDuty, TypeAlertmanager:
		if !strings.HasPrefix(o.URL, "env:") {
			if u, err := url.Parse(o.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad("url", "%q: must be an http or https URL", redactURL(o.URL))
			}
		}
		for h := range o.Headers {
			if h == "" || strings.ContainsAny(h, " \t\r\n:") {
				bad("headers", "%q: not a header name", h)
			}
		}
		if o.Type == TypeWebhook && (o.SignatureHeader == "" || strings.ContainsAny(o.SignatureHeader, " \t\r\n:")) {
			bad("signature_header", "%q: not a header name", o.SignatureHeader)
		}
	}
	switch o.Type {
	case TypePagerDuty:
		if o.RoutingKey == "" {
			bad("routing_key", "required for a pagerduty output")
		}
	case TypeAlertmanager:
		for k, v := range o.Labels {
			if !labelName.MatchString(k) {
				bad("labels", "%q: not a label name ([a-zA-Z_][a-zA-Z0-9_]*)", k)
			}
			if _, err := parseTemplate(v); err != nil {
				bad("labels."+k, "%v", err)
			}
		}
		if o.EndsAfter < 0 {
			bad("ends_after", "%s: must not be negative", o.EndsAfter)
		}
	case TypeSyslog:
		if o.Network != "udp" && o.Network != "tcp" && o.Network != "tls" {
			bad("network", "%q: must be udp, tcp or tls", o.Network)
		}
		if _, _, err := net.SplitHostPort(o.Address); err != nil {
			bad("address", "%q: must be host:port", o.Address)
		}
		if _, ok := facilities[o.Facility]; !ok {
			bad("facility", "%q: not a syslog facility (kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp, local0..local7)", o.Facility)
		}
		if !printableASCII(o.AppName, 48) {
			bad("app_name", "%q: must be 1 to 48 printable ASCII characters", o.AppName)
		}
		if !validSDID(o.SDID) {
			bad("sd_id", "%q: must be name@number, printable ASCII without '=', ' ', ']' or '\"', at most 32 characters", o.SDID)
		}
	case TypeEmail:
		if _, _, err := net.SplitHostPort(o.Address); err != nil {
			bad("address", "%q: must be host:port of the SMTP server", o.Address)
		}
		if !validAddress(o.From) {
			bad("from", "%q: not an e-mail address", o.From)
		}
		if len(o.To) == 0 {
			bad("to", "must name at least one recipient")
		}
		for _, to := range o.To {
			if !validAddress(to) {
				bad("to", "%q: not an e-mail address", to)
			}
		}
		if (o.Username == "") != (o.Password == "") {
			bad("password", "set username and password both or neither")
		}
	case TypeFile:
		if o.Path == "" {
			bad("path", "required for a file output (`-` is standard output)")
		} else if o.Path != "-" && !filepath.IsAbs(o.Path) {
			bad("path", "%q: must be an absolute path or -", o.Path)
		}
		if o.MaxSize < 4096 {
			bad("max_size", "%d: must be at least 4096 bytes", o.MaxSize)
		}
		if o.MaxFiles < 1 || o.MaxFiles > 1000 {
			bad("max_files", "%d: must be 1 to 1000", o.MaxFiles)
		}
	}
	return errs
}

// foreignKeys refuses keys set that belong to other output types.
func (o OutputConfig) foreignKeys(key string) []error {
	var errs []error
	v := reflect.ValueOf(o)
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		types, ok := f.Tag.Lookup("types")
		if !ok || v.Field(i).IsZero() || slices.Contains(strings.Fields(types), o.Type) {
			continue
		}
		name := strings.Split(f.Tag.Get("mapstructure"), ",")[0]
		errs = append(errs, fmt.Errorf("%s.%s: not a key of a %s output (it belongs to: %s)", key, name, o.Type, strings.ReplaceAll(types, " ", ", ")))
	}
	return errs
}

// String shows the output without its credentials: `crumbs config` prints it.
func (o OutputConfig) String() string {
	o = o.withDefaults()
	s := fmt.Sprintf("{name:%s type:%s deliver:%s updates:%s min_severity:%s", o.Name, o.Type, o.Deliver, o.Updates, o.MinSeverity)
	if o.URL != "" {
		s += " url:" + redactURL(o.URL)
	}
	if o.Address != "" {
		s += " address:" + o.Address
	}
	if o.Path != "" {
		s += " path:" + o.Path
	}
	for _, secret := range []string{o.Secret, o.RoutingKey, o.Password} {
		if secret != "" {
			s += " (credentials set)"
			break
		}
	}
	return s + "}"
}

// redactURL keeps a URL's scheme and host: a Slack webhook's path is its credential.
func redactURL(s string) string {
	if strings.HasPrefix(s, "env:") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "(unparsable URL)"
	}
	if u.Path == "" && u.RawQuery == "" && u.User == nil {
		return u.Scheme + "://" + u.Host
	}
	return u.Scheme + "://" + u.Host + "/..."
}

func printableASCII(s string, maxLen int) bool {
	if s == "" || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}

func validSDID(s string) bool {
	name, num, ok := strings.Cut(s, "@")
	if !ok || name == "" || num == "" || !printableASCII(s, 32) || strings.ContainsAny(s, "= ]\"") {
		return false
	}
	for _, c := range num {
		if (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return true
}

func validAddress(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && domain != "" && !strings.ContainsAny(s, " <>\r\n,;\"")
}

// secretValue resolves `env:NAME` to the variable's value.
func secretValue(key, v string) (string, error) {
	name, ok := strings.CutPrefix(v, "env:")
	if !ok {
		return v, nil
	}
	val, set := os.LookupEnv(name)
	if !set || val == "" {
		return "", fmt.Errorf("%s: environment variable %s is not set", key, name)
	}
	return val, nil
}

// config returns the *tls.Config for a receiver at serverName (used when ServerName is empty).
func (t TLSConfig) config(key, serverName string) (*tls.Config, error) {
	c := &tls.Config{ServerName: serverName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // documented as tests only
	if t.ServerName != "" {
		c.ServerName = t.ServerName
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s.tls.ca_file: %w", key, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s.tls.ca_file: %s: no PEM certificate in it", key, t.CAFile)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s.tls.cert_file, %s.tls.key_file: %w", key, key, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
