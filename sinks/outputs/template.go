package outputs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/threatcrumbs/crumbs/schemas"
)

// maxRendered bounds what one template may render: a template over an alert with many
// evidence ids cannot grow a message without limit.
const maxRendered = 64 << 10

// defaultBody is the e-mail body when alerts.outputs[N].body is not set.
const defaultBody = `{{.Title}}

Severity:  {{.Severity}}{{if .OriginalSeverity}} (the rule says {{.OriginalSeverity}}; lowered by {{join .Changes ", "}}){{end}}
Rule:      {{.RuleID}}
Host:      {{.Host.Name}} ({{.Host.ID}})
Service:   {{default "-" .Service}}
Time:      {{rfc3339 .Time}}
Events:    {{.Count}}
Tags:      {{join .Tags ", "}}
Alert id:  {{.ID}}
{{if .URL}}Console:   {{.URL}}
{{end}}
{{.Summary}}
{{if .Explanation}}
{{.Explanation}}
{{end}}
Evidence event ids:
{{range .Evidence}}  {{.}}
{{end}}{{if .Author}}
Rule by {{.Author}}.{{end}}
`

// TemplateHost is an alert's host as templates see it.
type TemplateHost struct{ ID, Name string }

// TemplateData is what an output's templates (text, body, fields, labels) see: `{{.Title}}`,
// `{{.Host.Name}}`, `{{join .Tags ", "}}`.
type TemplateData struct {
	ID, RuleID, Title, Severity, GroupKey, Service, Summary string
	Tags, Evidence, Changes                                 []string
	Host                                                    TemplateHost
	// Time is the event time of the alert's first evidence event.
	Time, WindowStart, WindowEnd time.Time
	// Count is how many events the alert stands for.
	Count int64
	// OriginalSeverity is the rule's severity when a change window lowered it; Explanation
	// names the changes.
	OriginalSeverity, Explanation string
	// Author, Level and RuleSource describe the rule (Sigma rules credit their author).
	Author, Level, RuleSource string
	// Output is the output's name.
	Output string
	// URL is the alert's page in the console (alerts.console_url); empty when not set.
	URL string
	// Version orders the deliveries of one alert (1 for the first; see the output's updates);
	// Final marks the last; IncidentID names the alert's incident.
	Version    int64
	Final      bool
	IncidentID string
	// Incident is set when the output delivers incidents: the message is an incident, its
	// Count the number of its alerts and Evidence their ids; Rules are its rules.
	Incident bool
	Rules    []TemplateRule
}

// TemplateRule is one rule of an incident as templates see it.
type TemplateRule struct {
	ID, Title, Severity string
	Alerts              int64
}

func templateData(a *schemas.Alert, output, consoleURL string) *TemplateData {
	d := &TemplateData{
		ID: a.AlertID, RuleID: a.RuleID, Title: a.Title, Severity: a.Severity, GroupKey: a.GroupKey,
		Service: a.Service, Summary: a.Summary, Tags: a.Tags, Evidence: a.Evidence, Changes: a.Changes,
		Host: TemplateHost{a.Host.ID, a.Host.Name}, Time: time.Unix(0, a.Time).UTC(),
		WindowStart: time.Unix(0, a.WindowStart).UTC(), WindowEnd: time.Unix(0, a.WindowEnd).UTC(),
		Count: a.Count, OriginalSeverity: a.OriginalSeverity, Explanation: a.Explanation,
		Author: a.Author, Level: a.Level, RuleSource: a.RuleSource, Output: output,
		Version: a.Version, Final: a.Final, IncidentID: a.IncidentID,
	}
	if consoleURL != "" {
		d.URL = alertURL(consoleURL, a.AlertID)
	}
	return d
}

func alertURL(base, id string) string {
	return strings.TrimRight(base, "/") + "/alerts/" + id
}

// funcs is what templates may call: pure functions of their arguments, no I/O, nothing of the
// process (environment, files, time now).
var funcs = template.FuncMap{
	"upper":     strings.ToUpper,
	"lower":     strings.ToLower,
	"trim":      strings.TrimSpace,
	"join":      func(ss []string, sep string) string { return strings.Join(ss, sep) },
	"replace":   func(s, old, new string) string { return strings.ReplaceAll(s, old, new) },
	"contains":  strings.Contains,
	"hasPrefix": strings.HasPrefix,
	"hasSuffix": strings.HasSuffix,
	"quote":     strconv.Quote,
	"default": func(def string, s string) string {
		if s == "" {
			return def
		}
		return s
	},
	"truncate": truncate,
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
	"unix":    func(t time.Time) int64 { return t.Unix() },
}

// truncate cuts s to at most n runes, ending in "…" when it cut.
func truncate(n int, s string) string {
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// parseTemplate parses one template with the safe function map.
func parseTemplate(text string) (*template.Template, error) {
	t, err := template.New("").Funcs(funcs).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	return t, nil
}

// errTooLong: a template rendered more than maxRendered bytes.
var errTooLong = errors.New("template rendered more than 64 KiB")

// limitedBuffer refuses writes past maxRendered.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > maxRendered {
		return 0, errTooLong
	}
	return b.Buffer.Write(p)
}

// render executes t over d.
func render(t *template.Template, d *TemplateData) (string, error) {
	var b limitedBuffer
	if err := t.Execute(&b, d); err != nil {
		return "", err
	}
	return b.String(), nil
}

// templates are an output's parsed templates.
type templates struct {
	text, body *template.Template // nil when the type has none
	fields     map[string]*template.Template
	labels     map[string]*template.Template
}

// sampleAlert is what templates are tried on at start: every field set, so a template that
// names a field that does not exist or misuses a function fails then, not on the first alert.
func sampleAlert() *schemas.Alert {
	return &schemas.Alert{
		AlertID: "0123456789abcdef", Time: 1700000000000000000, RuleID: "sample-rule", Title: "Sample alert",
		Severity: "high", Tags: []string{"attack.t1078"}, GroupKey: "web-1|root",
		Host: schemas.Host{ID: "m1", Name: "web-1"}, Service: "shop", WindowStart: 1700000000000000000,
		WindowEnd: 1700000060000000000, Count: 3, Evidence: []string{"e1", "e2", "e3"}, Summary: "sample",
		Author: "crumbs", Level: "high", RuleSource: "native", OriginalSeverity: "critical",
		Changes: []string{"CHG-1"}, Explanation: "CHG-1 (planned_change)",
	}
}

// compileTemplates parses an output's templates and renders each once over a sample alert.
func compileTemplates(key string, o OutputConfig) (*templates, error) {
	sample := templateData(sampleAlert(), o.Name, "https://console.example/")
	sample.Version, sample.IncidentID = 2, "fedcba9876543210"
	sample.Incident = o.Deliver == DeliverIncidents
	sample.Rules = []TemplateRule{{ID: "sample-rule", Title: "Sample alert", Severity: "high", Alerts: 3}}
	var errs []error
	compile := func(k, text string) *template.Template {
		t, err := parseTemplate(text)
		if err == nil {
			_, err = render(t, sample)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.%s: %w", key, k, err))
			return nil
		}
		return t
	}
	ts := &templates{fields: map[string]*template.Template{}, labels: map[string]*template.Template{}}
	if o.Text != "" {
		ts.text = compile("text", o.Text)
	}
	if o.Body != "" {
		ts.body = compile("body", o.Body)
	}
	for k, v := range o.Fields {
		ts.fields[k] = compile("fields."+k, v)
	}
	for k, v := range o.Labels {
		ts.labels[k] = compile("labels."+k, v)
	}
	return ts, errors.Join(errs...)
}

// rendered is an alert with its output's templates rendered.
type rendered struct {
	Text, Body string
	Fields     map[string]string
	Labels     map[string]string
}

func (ts *templates) render(d *TemplateData) (*rendered, error) {
	r := &rendered{}
	var err error
	if ts.text != nil {
		if r.Text, err = render(ts.text, d); err != nil {
			return nil, fmt.Errorf("text: %w", err)
		}
	}
	if ts.body != nil {
		if r.Body, err = render(ts.body, d); err != nil {
			return nil, fmt.Errorf("body: %w", err)
		}
	}
	renderMap := func(what string, m map[string]*template.Template) (map[string]string, error) {
		if len(m) == 0 {
			return nil, nil
		}
		out := make(map[string]string, len(m))
		for k, t := range m {
			v, err := render(t, d)
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %w", what, k, err)
			}
			out[k] = v
		}
		return out, nil
	}
	if r.Fields, err = renderMap("fields", ts.fields); err != nil {
		return nil, err
	}
	if r.Labels, err = renderMap("labels", ts.labels); err != nil {
		return nil, err
	}
	return r, nil
}
