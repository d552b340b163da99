package console

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/threatcrumbs/crumbs/query"
	"github.com/threatcrumbs/crumbs/schemas"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// staticFiles serves the embedded stylesheet and script.
func staticFiles() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	return http.FileServerFS(sub)
}

// pages renders the console's pages.
type pages struct {
	c    *Console
	tmpl map[string]*template.Template
}

var funcs = template.FuncMap{
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05.000Z")
	},
	"join":  strings.Join,
	"depth": func(d int) string { return "d" + strconv.Itoa(min(d, 15)) },
	"short": func(s string) string {
		if len(s) > 16 {
			return s[:16] + "…"
		}
		return s
	},
	"label": func(s string) string { return strings.ReplaceAll(s, "_", " ") },
}

func newPages(c *Console) (*pages, error) {
	p := &pages{c: c, tmpl: map[string]*template.Template{}}
	for _, name := range []string{"login", "inbox", "alert", "timeline", "graph", "context", "error"} {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: parse template %s: %w", name, err)
		}
		p.tmpl[name] = t
	}
	return p, nil
}

// render executes a page into a buffer first, so that a template error is a clean 500.
func (p *pages) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := p.tmpl[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		p.c.log.Error("console: render page", "page", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// base is what every page's layout shows.
type base struct {
	Title     string
	User      string
	Role      string
	CanTriage bool
	CSRF      string
	Nav       string
	Took      string
}

func (p *pages) base(pr principal, title, nav string) base {
	b := base{Title: title, User: pr.name, Role: pr.role, CanTriage: pr.canTriage() && p.c.deps.Triager != nil, Nav: nav}
	if pr.sess != nil {
		b.CSRF = pr.sess.csrf
	}
	return b
}

// fail renders an error page: a bad request names the parameter, anything else says what
// could not be read (ClickHouse away) without detail from the server.
func (p *pages) fail(w http.ResponseWriter, pr principal, err error) {
	status, msg := http.StatusServiceUnavailable, "ClickHouse could not answer; the console shows nothing until it does."
	var bad *badRequest
	switch {
	case errors.As(err, &bad):
		status, msg = http.StatusBadRequest, bad.Error()
	case errors.Is(err, query.ErrNotFound):
		status, msg = http.StatusNotFound, "no such alert"
	default:
		p.c.log.Warn("console: query failed", "err", err)
	}
	p.render(w, status, "error", map[string]any{"Base": p.base(pr, "Error", ""), "Message": msg})
}

// badRequest is a request parameter that cannot be used.
type badRequest struct{ param, problem string }

func (b *badRequest) Error() string { return b.param + ": " + b.problem }

func (p *pages) queryContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), p.c.cfg.QueryTimeout)
}

// parseDuration reads a Go duration or a number of days ("7d").
func parseDuration(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 || n > 3650 {
			return 0, fmt.Errorf("%q: want a duration such as 24h or 7d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: want a duration such as 24h or 7d", s)
	}
	return d, nil
}

// parseWhen reads an RFC 3339 time or a duration before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := parseDuration(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want an RFC 3339 time or a duration such as 24h or 7d", s)
	}
	return now.Add(-d), nil
}

// Ranges the inbox offers.
var sinceChoices = []string{"1h", "24h", "7d", "30d", "365d"}

const defaultSince = "24h"

// filterOf reads the inbox's filter from a request's query.
func filterOf(v url.Values, limit int) (query.AlertFilter, string, error) {
	f := query.AlertFilter{Severity: v.Get("severity"), Rule: v.Get("rule"), Service: v.Get("service"), Host: v.Get("host"),
		Tag: v.Get("tag"), State: v.Get("state"), Limit: limit}
	since := v.Get("since")
	if since == "" {
		since = defaultSince
	}
	now := time.Now()
	t, err := parseWhen(since, now)
	if err != nil {
		return f, since, &badRequest{"since", err.Error()}
	}
	f.Since = t
	if u := v.Get("until"); u != "" {
		if f.Until, err = parseWhen(u, now); err != nil {
			return f, since, &badRequest{"until", err.Error()}
		}
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return f, since, &badRequest{"limit", fmt.Sprintf("%q: want 1 to 1000", l)}
		}
		f.Limit = n
	}
	if err := f.Validate(); err != nil {
		return f, since, &badRequest{"filter", err.Error()}
	}
	return f, since, nil
}

// facetParam is the query parameter of each facet.
var facetParam = map[string]string{query.FacetSeverity: "severity", query.FacetRule: "rule", query.FacetService: "service",
	query.FacetHost: "host", query.FacetTag: "tag", query.FacetState: "state"}

type facetView struct {
	Name   string
	Values []facetValueView
}

type facetValueView struct {
	Value  string
	Count  uint64
	URL    string // the inbox with this value chosen, or cleared when it is chosen
	Active bool
}

type inboxView struct {
	Base   base
	Filter query.AlertFilter
	Since  string
	Ranges []string
	Total  uint64
	Alerts []query.AlertRow
	Facets []facetView
	Clear  string
	Error  string
}

func (p *pages) inbox(w http.ResponseWriter, r *http.Request, pr principal) {
	v := r.URL.Query()
	f, since, err := filterOf(v, p.c.cfg.PageSize)
	if err != nil {
		p.fail(w, pr, err)
		return
	}
	ctx, cancel := p.queryContext(r)
	defer cancel()
	start := time.Now()
	in, err := p.c.deps.Store.Inbox(ctx, f)
	if err != nil {
		p.fail(w, pr, err)
		return
	}
	view := inboxView{Base: p.base(pr, "Alerts", "alerts"), Filter: f, Since: since, Ranges: sinceChoices, Total: in.Total, Alerts: in.Alerts,
		Clear: "/alerts?" + url.Values{"since": {since}}.Encode()}
	for _, name := range query.Facets {
		param := facetParam[name]
		fv := facetView{Name: name}
		for _, val := range in.Facets[name] {
			q := cloneValues(v)
			active := v.Get(param) == val.Value
			if active {
				q.Del(param)
			} else {
				q.Set(param, val.Value)
			}
			fv.Values = append(fv.Values, facetValueView{Value: val.Value, Count: val.Count, URL: "/alerts?" + q.Encode(), Active: active})
		}
		view.Facets = append(view.Facets, fv)
	}
	view.Base.Took = time.Since(start).Round(time.Millisecond).String()
	p.render(w, http.StatusOK, "inbox", view)
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		if k == "limit" {
			continue
		}
		out[k] = append([]string(nil), vs...)
	}
	return out
}

type alertView struct {
	Base        base
	D           *query.AlertDetail
	States      []string
	SuppressFor string
	Done        string // what the last change did
	Pending     bool   // the change is published but not yet in ClickHouse
	TimelineURL string
}

func (p *pages) alert(w http.ResponseWriter, r *http.Request, pr principal) {
	ctx, cancel := p.queryContext(r)
	defer cancel()
	id := r.PathValue("id")
	d, err := p.c.deps.Store.AlertDetail(ctx, id, 10*time.Minute, 5*time.Minute)
	if err != nil {
		p.fail(w, pr, err)
		return
	}
	view := alertView{Base: p.base(pr, "Alert "+d.Alert.Title, "alerts"), D: d, States: query.States,
		SuppressFor: p.c.cfg.SuppressFor.String(), Done: r.URL.Query().Get("done"), Pending: r.URL.Query().Get("pending") == "1"}
	if d.Alert.Host != "" {
		view.TimelineURL = "/timeline?" + url.Values{"host": {d.Alert.Host}, "from": {d.Alert.Time.Add(-time.Hour).Format(time.RFC3339)},
			"to": {d.Alert.Time.Add(30 * time.Minute).Format(time.RFC3339)}}.Encode()
	}
	p.render(w, http.StatusOK, "alert", view)
}

// changeOf reads a triage change from form or JSON fields.
func (p *pages) changeOf(action, assignee, note, suppressFor, scope, by string) (Change, error) {
	c := Change{Action: action, Assignee: strings.TrimSpace(assignee), Note: strings.TrimSpace(note), Scope: scope, By: by}
	if action == ActionFalsePositive {
		c.SuppressFor = p.c.cfg.SuppressFor
		if suppressFor != "" {
			d, err := parseDuration(suppressFor)
			if err != nil {
				return c, &badRequest{"suppress_for", err.Error()}
			}
			c.SuppressFor = d
		}
	}
	return c, nil
}

// apply makes a change and waits (5 s at most) until ClickHouse shows it, so that the page
// the analyst lands on shows it too. It reports whether ClickHouse does.
func (p *pages) apply(ctx context.Context, id string, c Change) (*schemas.TriageState, bool, error) {
	st, err := p.c.deps.Triager.Apply(ctx, id, c, p.c.cfg.MaxSuppressFor)
	if err != nil {
		return nil, false, err
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return st, p.c.deps.Triager.Visible(wctx, id, st.Version), nil
}

func (p *pages) triage(w http.ResponseWriter, r *http.Request, pr principal) {
	if !pr.canTriage() || p.c.deps.Triager == nil {
		http.Error(w, "your role may not change triage", http.StatusForbidden)
		return
	}
	id := r.PathValue("id")
	c, err := p.changeOf(r.PostFormValue("action"), r.PostFormValue("assignee"), r.PostFormValue("note"),
		r.PostFormValue("suppress_for"), r.PostFormValue("scope"), pr.name)
	if err == nil {
		ctx, cancel := context.WithTimeout(r.Context(), p.c.cfg.QueryTimeout+5*time.Second)
		defer cancel()
		var visible bool
		var st *schemas.TriageState
		st, visible, err = p.apply(ctx, id, c)
		if err == nil {
			q := url.Values{"done": {c.Action}}
			if !visible {
				q.Set("pending", "1")
			}
			p.c.log.Info("triage changed", "alert", id, "action", c.Action, "state", st.State, "by", pr.name)
			http.Redirect(w, r, "/alerts/"+url.PathEscape(id)+"?"+q.Encode(), http.StatusSeeOther)
			return
		}
	}
	if errors.Is(err, ErrInvalidChange) {
		err = &badRequest{"change", err.Error()}
	}
	p.fail(w, pr, err)
}

type timelineView struct {
	Base     base
	Host     string
	From, To string
	T        *query.Timeline
}

func (p *pages) timeline(w http.ResponseWriter, r *http.Request, pr principal) {
	v := r.URL.Query()
	view := timelineView{Base: p.base(pr, "Timeline", "timeline"), Host: v.Get("host"), From: v.Get("from"), To: v.Get("to")}
	if view.Host == "" {
		p.render(w, http.StatusOK, "timeline", view)
		return
	}
	now := time.Now()
	if view.From == "" {
		view.From = "1h"
	}
	from, err := parseWhen(view.From, now)
	if err != nil {
		p.fail(w, pr, &badRequest{"from", err.Error()})
		return
	}
	to := now
	if view.To != "" {
		if to, err = parseWhen(view.To, now); err != nil {
			p.fail(w, pr, &badRequest{"to", err.Error()})
			return
		}
	}
	ctx, cancel := p.queryContext(r)
	defer cancel()
	start := time.Now()
	tl, err := p.c.deps.Store.Timeline(ctx, query.TimelineQuery{Host: view.Host, From: from, To: to, Limit: 2000})
	if err != nil {
		if strings.Contains(err.Error(), "empty range") {
			err = &badRequest{"from", err.Error()}
		}
		p.fail(w, pr, err)
		return
	}
	view.T = tl
	view.Base.Took = time.Since(start).Round(time.Millisecond).String()
	p.render(w, http.StatusOK, "timeline", view)
}

type graphNode struct {
	Name string
	Y    int
}

type graphEdge struct {
	query.ServiceEdge
	Y1, Y2 int
	Width  int
}

type graphView struct {
	Base    base
	Since   string
	Ranges  []string
	Edges   []query.ServiceEdge
	Sources []graphNode
	Dests   []graphNode
	Lines   []graphEdge
	Height  int
}

func (p *pages) graph(w http.ResponseWriter, r *http.Request, pr principal) {
	since := r.URL.Query().Get("since")
	if since == "" {
		since = "1h"
	}
	now := time.Now()
	from, err := parseWhen(since, now)
	if err != nil {
		p.fail(w, pr, &badRequest{"since", err.Error()})
		return
	}
	ctx, cancel := p.queryContext(r)
	defer cancel()
	start := time.Now()
	edges, err := p.c.deps.Store.ServiceGraph(ctx, from, now)
	if err != nil {
		p.fail(w, pr, err)
		return
	}
	view := graphView{Base: p.base(pr, "Service graph", "graph"), Since: since, Ranges: sinceChoices, Edges: edges}
	// Sources on the left, destinations on the right, one line per edge (the busiest 100).
	const row = 22
	srcY, dstY := map[string]int{}, map[string]int{}
	for i, e := range edges {
		if i == 100 {
			break
		}
		src := e.Source
		if src == "" {
			src = "(no service)"
		}
		if _, ok := srcY[src]; !ok {
			srcY[src] = 20 + row*len(view.Sources)
			view.Sources = append(view.Sources, graphNode{src, srcY[src]})
		}
		dst := e.Destination + ":" + strconv.Itoa(int(e.Port))
		if _, ok := dstY[dst]; !ok {
			dstY[dst] = 20 + row*len(view.Dests)
			view.Dests = append(view.Dests, graphNode{dst, dstY[dst]})
		}
		width := 1
		for c := e.Connections; c > 10 && width < 6; c /= 10 {
			width++
		}
		view.Lines = append(view.Lines, graphEdge{ServiceEdge: e, Y1: srcY[src] - 4, Y2: dstY[dst] - 4, Width: width})
	}
	view.Height = 30 + row*max(len(view.Sources), len(view.Dests))
	view.Base.Took = time.Since(start).Round(time.Millisecond).String()
	p.render(w, http.StatusOK, "graph", view)
}

type contextView struct {
	Base         base
	C            *query.ContextInForce
	Suppressions []*query.Triage
}

func (p *pages) context(w http.ResponseWriter, r *http.Request, pr principal) {
	ctx, cancel := p.queryContext(r)
	defer cancel()
	now := time.Now()
	c, err := p.c.deps.Store.Context(ctx, now)
	if err != nil {
		p.fail(w, pr, err)
		return
	}
	sup, err := p.c.deps.Store.Suppressions(ctx, now)
	if err != nil {
		p.fail(w, pr, err)
		return
	}
	p.render(w, http.StatusOK, "context", contextView{Base: p.base(pr, "Context in force", "context"), C: c, Suppressions: sup})
}
