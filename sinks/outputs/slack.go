package outputs

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// slackMessage is an incoming-webhook message (api.slack.com/messaging/webhooks) with one
// attachment, coloured by severity.
type slackMessage struct {
	Text        string            `json:"text"`
	Channel     string            `json:"channel,omitempty"`
	Username    string            `json:"username,omitempty"`
	IconEmoji   string            `json:"icon_emoji,omitempty"`
	Attachments []slackAttachment `json:"attachments"`
}

type slackAttachment struct {
	Fallback  string       `json:"fallback"`
	Color     string       `json:"color"`
	Title     string       `json:"title"`
	TitleLink string       `json:"title_link,omitempty"`
	Text      string       `json:"text"`
	Fields    []slackField `json:"fields"`
	Footer    string       `json:"footer"`
	Ts        int64        `json:"ts"`
}

type slackField struct {
	Title string `json:"title"`
	Value string `json:"value"`
	Short bool   `json:"short"`
}

var severityColor = map[string]string{
	"critical": "#7b1fa2", "high": "#d32f2f", "medium": "#f57c00", "low": "#fbc02d", "informational": "#1976d2",
}

type slack struct {
	http *httpPoster
	o    OutputConfig
}

func newSlack(key string, o OutputConfig) (*slack, error) {
	p, err := newHTTPPoster(key, o, o.URL)
	if err != nil {
		return nil, err
	}
	return &slack{http: p, o: o}, nil
}

// slackEscape escapes what Slack reads as markup (&, <, >): an alert's command line cannot
// mention @channel or forge a link.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func (s *slack) Send(ctx context.Context, m *message) error {
	a := m.Alert
	fields := []slackField{
		{"Severity", slackEscape(a.Severity), true}, {"Host", slackEscape(a.Host.Name), true},
		{"Rule", slackEscape(a.RuleID), true}, {"Events", fmt.Sprint(a.Count), true},
	}
	footer := "crumbs · alert " + a.AlertID
	if in := m.Incident; in != nil {
		rules := make([]string, 0, len(in.Rules))
		for _, r := range in.Rules {
			rules = append(rules, fmt.Sprintf("%s (%d, %s)", r.Title, r.Alerts, r.Severity))
		}
		fields = []slackField{
			{"Severity", slackEscape(a.Severity), true}, {"Host", slackEscape(a.Host.Name), true},
			{"Alerts", fmt.Sprint(in.Alerts), true}, {"Events", fmt.Sprint(in.Events), true},
			{"Rules", slackEscape(strings.Join(rules, "\n")), false}, {"Process tree", slackEscape(in.Subject), false},
		}
		footer = "crumbs · incident " + a.AlertID
	}
	switch {
	case a.Version > 1 && a.Final:
		footer += fmt.Sprintf(" · final (version %d)", a.Version)
	case a.Version > 1:
		footer += fmt.Sprintf(" · update (version %d)", a.Version)
	}
	if a.Service != "" {
		fields = append(fields, slackField{"Service", slackEscape(a.Service), true})
	}
	if len(a.Tags) > 0 {
		fields = append(fields, slackField{"Tags", slackEscape(strings.Join(a.Tags, ", ")), false})
	}
	names := make([]string, 0, len(m.Fields))
	for k := range m.Fields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fields = append(fields, slackField{slackEscape(k), slackEscape(m.Fields[k]), len(m.Fields[k]) < 40})
	}
	text := slackEscape(m.Text)
	msg := slackMessage{
		Text: text, Channel: s.o.Channel, Username: s.o.Username, IconEmoji: s.o.IconEmoji,
		Attachments: []slackAttachment{{
			Fallback: text, Color: severityColor[a.Severity], Title: slackEscape(a.Title), TitleLink: m.Data.URL,
			Text: slackEscape(truncate(3000, a.Summary)), Fields: fields, Footer: footer, Ts: m.Raised.Unix(),
		}},
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("encode slack message: %w", err)
	}
	return s.http.post(ctx, body, nil)
}

func (s *slack) Close() error { s.http.close(); return nil }
