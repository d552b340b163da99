// Package atomics runs attack simulations against a running crumbs pipeline and measures
// what its detections make of them.
//
// In: simulations in Atomic Red Team's YAML form (an atomics file: attack_technique and
// atomic_tests with input_arguments, dependencies and executor; or the derived list form of
// ../shared/atomics, whose tests carry their commands with the defaults filled in), a
// ClickHouse connection to the pipeline's store, and the rules the pipeline runs.
// Out: per simulation, whether it ran, the events of its own process tree by kind, the alerts
// an evidence event of that tree raised, whether one carries the simulation's ATT&CK
// technique (or its parent) and, where none does, why: no telemetry, no rule, or a rule that
// missed; and the figures over them (Report).
//
// Each simulation runs as root, one at a time, in a scratch directory of its own, from a
// fresh shell in a session of its own with a clean environment, re-parented to init before
// it runs anything (its parent is not the evaluator, which may itself be a test binary in
// /tmp). An event belongs to a simulation when its process descends from that shell by pid
// and start time.
package atomics

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/threatcrumbs/crumbs/pkg/yamlsafe"
)

// Simulation is one attack simulation: a test of an ATT&CK technique, its commands and
// their cleanup.
type Simulation struct {
	Technique  string // e.g. T1053.003
	TestNumber int    // the test's number among its technique's (Atomic Red Team's numbering)
	Name       string
	GUID       string
	Executor   string   // sh or bash
	Command    string   // run in the simulation's shell: its command line
	Cleanup    string   // run after it, apart
	Setup      []string // run before it, apart: what its prerequisites need in place
	Prereqs    []string // checks that exit 0 when it can run here
	Telemetry  []string // the kinds of crumbs that should show it (process, file, network, identity)
	// Benign marks ordinary work (the list form's benign: true) run to see which alerts it
	// raises: it has no technique, and every alert it raises is a false positive.
	Benign bool
}

// ID names a simulation in reports: technique and test number.
func (s Simulation) ID() string {
	if s.Benign && s.Technique == "" {
		return fmt.Sprintf("benign #%d", s.TestNumber)
	}
	return fmt.Sprintf("%s #%d", s.Technique, s.TestNumber)
}

// derived is the list form: tests with their defaults already filled in.
type derived struct {
	Tests []struct {
		Technique  string   `yaml:"technique"`
		TestNumber int      `yaml:"test_number"`
		TestName   string   `yaml:"test_name"`
		GUID       string   `yaml:"guid"`
		Executor   string   `yaml:"executor"`
		Command    string   `yaml:"command"`
		Cleanup    string   `yaml:"cleanup_command"`
		Setup      []string `yaml:"setup"`
		Prereqs    []string `yaml:"prereq_checks"`
		Telemetry  []string `yaml:"telemetry"`
		Benign     bool     `yaml:"benign"`
	} `yaml:"tests"`
}

// art is Atomic Red Team's atomics file: one technique, its tests.
type art struct {
	Technique string `yaml:"attack_technique"`
	Tests     []struct {
		Name      string   `yaml:"name"`
		GUID      string   `yaml:"auto_generated_guid"`
		Platforms []string `yaml:"supported_platforms"`
		Inputs    map[string]struct {
			Default any `yaml:"default"`
		} `yaml:"input_arguments"`
		Dependencies []struct {
			Prereq    string `yaml:"prereq_command"`
			GetPrereq string `yaml:"get_prereq_command"`
		} `yaml:"dependencies"`
		Executor struct {
			Name    string `yaml:"name"`
			Command string `yaml:"command"`
			Cleanup string `yaml:"cleanup_command"`
		} `yaml:"executor"`
	} `yaml:"atomic_tests"`
}

// Parse reads simulations from an atomics file of either form. Of Atomic Red Team's tests it
// keeps those for Linux with an sh or bash executor, their input arguments' defaults put in
// for #{name}; dependencies become prerequisite checks (their get_prereq_command, which may
// install packages, is not run). file names the input in errors.
func Parse(file string, data []byte) ([]Simulation, error) {
	var probe map[string]any
	if err := yamlsafe.Unmarshal(data, &probe, yamlsafe.DefaultLimits(), false); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	switch {
	case probe["tests"] != nil:
		return parseDerived(file, data)
	case probe["atomic_tests"] != nil:
		return parseART(file, data)
	}
	return nil, fmt.Errorf("%s: neither an Atomic Red Team atomics file (attack_technique, atomic_tests) nor a list of tests (tests)", file)
}

func parseDerived(file string, data []byte) ([]Simulation, error) {
	var d derived
	if err := yamlsafe.Unmarshal(data, &d, yamlsafe.DefaultLimits(), false); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var out []Simulation
	var errs []error
	for i, t := range d.Tests {
		s := Simulation{Technique: t.Technique, TestNumber: t.TestNumber, Name: t.TestName, GUID: t.GUID,
			Executor: t.Executor, Command: t.Command, Cleanup: t.Cleanup, Setup: t.Setup, Prereqs: t.Prereqs,
			Telemetry: t.Telemetry, Benign: t.Benign}
		if err := s.check(); err != nil {
			errs = append(errs, fmt.Errorf("%s: tests.%d: %w", file, i, err))
			continue
		}
		out = append(out, s)
	}
	return out, errors.Join(errs...)
}

var argRef = regexp.MustCompile(`#\{([A-Za-z0-9_]+)\}`)

func parseART(file string, data []byte) ([]Simulation, error) {
	var a art
	if err := yamlsafe.Unmarshal(data, &a, yamlsafe.DefaultLimits(), false); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var out []Simulation
	var errs []error
	for i, t := range a.Tests {
		if !slices.Contains(t.Platforms, "linux") || (t.Executor.Name != "sh" && t.Executor.Name != "bash") {
			continue
		}
		fill := func(s string) string {
			return argRef.ReplaceAllStringFunc(s, func(m string) string {
				name := argRef.FindStringSubmatch(m)[1]
				if in, ok := t.Inputs[name]; ok && in.Default != nil {
					return fmt.Sprint(in.Default)
				}
				return m
			})
		}
		s := Simulation{Technique: a.Technique, TestNumber: i + 1, Name: t.Name, GUID: t.GUID,
			Executor: t.Executor.Name, Command: fill(t.Executor.Command), Cleanup: fill(t.Executor.Cleanup)}
		for _, d := range t.Dependencies {
			if strings.TrimSpace(d.Prereq) != "" {
				s.Prereqs = append(s.Prereqs, fill(d.Prereq))
			}
		}
		if err := s.check(); err != nil {
			errs = append(errs, fmt.Errorf("%s: atomic_tests.%d: %w", file, i, err))
			continue
		}
		out = append(out, s)
	}
	return out, errors.Join(errs...)
}

// check fills a simulation's defaults and says what is wrong with it.
func (s *Simulation) check() error {
	var errs []error
	if !(s.Benign && s.Technique == "") && !regexp.MustCompile(`^T\d{4}(\.\d{3})?$`).MatchString(s.Technique) {
		errs = append(errs, fmt.Errorf("technique %q: want an ATT&CK technique id such as T1053 or T1053.003", s.Technique))
	}
	if s.Executor != "sh" && s.Executor != "bash" {
		errs = append(errs, fmt.Errorf("executor %q: must be sh or bash", s.Executor))
	}
	if strings.TrimSpace(s.Command) == "" {
		errs = append(errs, errors.New("command: is empty"))
	}
	if len(s.Telemetry) == 0 {
		s.Telemetry = []string{"process"}
	}
	return errors.Join(errs...)
}

// Techniques are the technique ids an alert may carry to count for a simulation: its own and,
// for a sub-technique, its parent (T1053.003 and T1053), lower case as Sigma tags them.
func (s Simulation) Techniques() []string {
	if s.Technique == "" {
		return nil
	}
	t := strings.ToLower(s.Technique)
	if parent, _, ok := strings.Cut(t, "."); ok {
		return []string{t, parent}
	}
	return []string{t}
}
