package console

import (
	"net/url"
	"testing"
)

// FuzzFilterOf: any query string of the inbox or the API either gives a filter that validates
// or an error naming the parameter; it never panics.
func FuzzFilterOf(f *testing.F) {
	for _, seed := range []string{"", "since=7d&severity=high&state=open", "since=2026-12-01T00:00:00Z&until=1h", "since=99999999d",
		"limit=0", "limit=1000", "state=done", "since=-1h", "since=1h&until=2h", "tag=%00&host=%ff"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		flt, _, err := filterOf(v, 50)
		if err != nil {
			if _, ok := err.(*badRequest); !ok {
				t.Fatalf("filterOf(%q): %T %v, want a *badRequest", raw, err, err)
			}
			return
		}
		if err := flt.Validate(); err != nil {
			t.Fatalf("filterOf(%q) gave a filter that does not validate: %v", raw, err)
		}
	})
}
