package sigma

import (
	"fmt"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// sigmaAt is a process_creation rule of a level and status matching an image.
func sigmaAt(id, level, status, image string) string {
	s := fmt.Sprintf("title: %s\nid: %s\nname: %s\n", id, id, id)
	if level != "" {
		s += "level: " + level + "\n"
	}
	if status != "" {
		s += "status: " + status + "\n"
	}
	return s + "logsource:\n  category: process_creation\ndetection:\n  s:\n    Image|endswith: " + image + "\n  condition: s\n"
}

// TestFilterByLevelAndStatus: rules below the minimum level or of a status left out raise no
// alert, a rule without a level counts as medium, a kept correlation still counts the events of
// a rule below the level, and the counts say what was left out and why.
func TestFilterByLevelAndStatus(t *testing.T) {
	files := map[string]string{
		"high.yml":       sigmaAt("high", "high", "stable", "/nc"),
		"medium.yml":     sigmaAt("medium", "medium", "test", "/socat"),
		"nolevel.yml":    sigmaAt("nolevel", "", "", "/ncat"),
		"low.yml":        sigmaAt("low", "low", "test", "/rm"),
		"info.yml":       sigmaAt("info", "informational", "experimental", "/find"),
		"deprecated.yml": sigmaAt("deprecated", "critical", "deprecated", "/wget"),
		"corr.yml": "title: Many rm\nid: corr\nlevel: high\nstatus: test\ncorrelation:\n  type: event_count\n  rules: [low]\n" +
			"  timespan: 1m\n  condition: {gte: 3}\n",
		"corr-low.yml": "title: Some finds\nid: corr-low\nlevel: low\ncorrelation:\n  type: event_count\n  rules: [info]\n" +
			"  timespan: 1m\n  condition: {gte: 2}\n",
		"broken.yml": "title: Broken\nid: broken\nlogsource:\n  category: process_creation\ndetection:\n  condition: nope\n",
	}
	for _, tc := range []struct {
		name   string
		filter Filter
		rules  []string // engine rules built
		counts string
	}{{
		name:   "defaults",
		filter: Filter{MinLevel: DefaultMinLevel, Statuses: DefaultStatuses},
		rules:  []string{"corr", "high", "medium", "nolevel"},
		counts: "9 Sigma rules: 4 loaded, 3 below level medium, 1 deprecated, 1 refused",
	}, {
		name:   "low and every status",
		filter: Filter{MinLevel: "low"},
		rules:  []string{"corr", "corr-low", "deprecated", "high", "medium", "nolevel"},
		counts: "9 Sigma rules: 7 loaded, 1 below level low, 1 refused",
	}, {
		name:   "no filter",
		rules:  []string{"corr", "corr-low", "deprecated", "high", "medium", "nolevel"}, // low and info feed correlations: quiet
		counts: "9 Sigma rules: 8 loaded, 1 refused",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			f := &Format{Refused: RefusedSkip, Filter: tc.filter}
			rules, err := loadSet(t, f, files)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range rules {
				ids = append(ids, r.ID)
			}
			sort.Strings(ids)
			if d := cmp.Diff(tc.rules, ids); d != "" {
				t.Errorf("engine rules (-want +got):\n%s", d)
			}
			if got := f.Counts.String(); got != tc.counts {
				t.Errorf("counts %q, want %q", got, tc.counts)
			}
		})
	}

	t.Run("a kept correlation counts a rule below the level", func(t *testing.T) {
		rules, err := loadSet(t, &Format{Refused: RefusedSkip, Filter: Filter{MinLevel: "medium"}}, files)
		if err != nil {
			t.Fatal(err)
		}
		const sec = int64(1e9)
		var evs []map[string]any
		for i := range 3 {
			evs = append(evs, event(t, "process", fmt.Sprint("e", i), int64(i+1)*sec, map[string]any{"process.file.path": "/bin/rm"}))
		}
		got := runEvents(t, rules, evs...)
		if len(got) != 1 || got[0].Rule != "corr" || got[0].Count != 3 {
			t.Errorf("alerts %+v, want one of corr counting the 3 rm", got)
		}
	})
}
