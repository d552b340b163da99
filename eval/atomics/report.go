package atomics

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Figures sum up a run.
type Figures struct {
	Simulations int // in the file
	Ran         int // prerequisites met
	// Observable ran, had the tools they call, and crumbs saw their shell and at least one
	// more of their events.
	Observable int
	// Technique and AnyAlert count observable simulations with an alert carrying the
	// technique (or its parent), and with any alert, from their own process tree.
	Technique, AnyAlert int
	// MedianLatency is the median, over the simulations credited with their technique, of
	// the time from the tree's first event to the first such alert seen in ClickHouse.
	MedianLatency time.Duration
}

// Sum computes the figures of results.
func Sum(results []Result) Figures {
	f := Figures{Simulations: len(results)}
	var lat []time.Duration
	for _, r := range results {
		if r.Skipped != "" || r.Simulation.Benign {
			continue
		}
		f.Ran++
		if r.Why == WhyNoTelemetry || r.Why == WhyShellMissing || strings.HasPrefix(r.Why, WhyToolMissing) {
			continue
		}
		f.Observable++
		if len(r.Alerts) > 0 {
			f.AnyAlert++
		}
		if r.Technique {
			f.Technique++
			lat = append(lat, r.Latency)
		}
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		f.MedianLatency = lat[len(lat)/2]
		if len(lat)%2 == 0 {
			f.MedianLatency = (lat[len(lat)/2-1] + lat[len(lat)/2]) / 2
		}
	}
	return f
}

func pct(n, of int) string {
	if of == 0 {
		return "-"
	}
	return fmt.Sprintf("%d %%", (n*100+of/2)/of)
}

// Markdown renders results as a report; intro is put after the title.
func Markdown(results []Result, intro string) string {
	f := Sum(results)
	var b strings.Builder
	b.WriteString("# Attack simulations against crumbs' detections\n\n")
	b.WriteString(intro)
	if !strings.HasSuffix(intro, "\n\n") {
		b.WriteString("\n\n")
	}
	fmt.Fprintf(&b, "- simulations: %d; ran (prerequisites met): %d; observable (tools present, shell and more events seen): %d\n", f.Simulations, f.Ran, f.Observable)
	fmt.Fprintf(&b, "- observable with an alert carrying the technique or its parent: %d of %d (%s; target 80 %%)\n", f.Technique, f.Observable, pct(f.Technique, f.Observable))
	fmt.Fprintf(&b, "- observable with any alert from their own process tree: %d of %d (%s; target 95 %%)\n", f.AnyAlert, f.Observable, pct(f.AnyAlert, f.Observable))
	fmt.Fprintf(&b, "- median time from a simulation's first event to its first technique alert in ClickHouse: %s (varies with load; not compared by the test)\n\n", f.MedianLatency.Round(100*time.Millisecond))
	b.WriteString("| technique | test | result | events (process/file/identity/network) | alerts (* carries the technique) | technique alert | why not |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		s := r.Simulation
		res, ev, why := r.Exit, fmt.Sprintf("%d/%d/%d/%d", r.Events["process"], r.Events["file"], r.Events["identity"], r.Events["network"]), r.Why
		if r.Skipped != "" {
			res, ev, why = "not run", "", r.Skipped
		}
		var alerts []string
		for _, a := range r.Alerts {
			id := a.RuleID
			if a.Technique {
				id += "*"
			}
			alerts = append(alerts, id)
		}
		tech := "no"
		if r.Technique {
			tech = "yes"
		}
		if r.Why == WhyRuleMissed {
			why += ": " + strings.Join(r.RulesForTechnique, ", ")
		}
		fmt.Fprintf(&b, "| %s | %d. %s | %s | %s | %s | %s | %s |\n", s.Technique, s.TestNumber, cell(s.Name), cell(res), ev,
			cell(strings.Join(alerts, ", ")), tech, cell(why))
	}
	return b.String()
}

func cell(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	return strings.Join(strings.Fields(s), " ")
}

// Recorded is what a report says of one simulation.
type Recorded struct {
	Ran, Technique, AnyAlert bool
}

// ParseReport reads the table of a report written by Markdown: technique and test number
// ("T1053.003 #2") to what it recorded.
func ParseReport(report string) map[string]Recorded {
	out := map[string]Recorded{}
	for _, line := range strings.Split(report, "\n") {
		if !strings.HasPrefix(line, "| T") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) < 7 {
			continue
		}
		num, _, _ := strings.Cut(strings.TrimSpace(cells[1]), ".")
		n, err := strconv.Atoi(num)
		if err != nil {
			continue
		}
		id := Simulation{Technique: strings.TrimSpace(cells[0]), TestNumber: n}.ID()
		out[id] = Recorded{Ran: strings.TrimSpace(cells[2]) != "not run", Technique: strings.TrimSpace(cells[5]) == "yes",
			AnyAlert: strings.TrimSpace(cells[4]) != ""}
	}
	return out
}

// SortedIDs returns the keys of a ParseReport map in order.
func SortedIDs(m map[string]Recorded) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
