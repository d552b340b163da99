package sigma

import (
	"fmt"

	"github.com/threatcrumbs/crumbs/detectors/engine"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// LintResult is what became of one rule file: loaded (every rule in it compiled) or refused.
type LintResult struct {
	File         string
	Logsource    string         // "category" or "service" of its first rule, for the report
	Rules        []*Compiled    // the file's detection rules, when loaded
	Correlations []*Rule        // the file's correlation rules, when loaded
	Engine       []*engine.Rule // what the engine runs of the file, when loaded as part of a set (LintFiles)
	Err          error          // why the file was refused; nil when loaded
	// LeftOut says, for each rule of the file a level and status filter left out, why: its
	// status ("deprecated") or "below level medium" (LintFilesFiltered, Format.Load).
	LeftOut []string
}

// Warnings are what lint says of a loaded file's rules, in rule order: each OR branch crumbs
// cannot judge ("rule <title>: condition branch <branch> dropped (<why>); the rule loads
// without it"), then each value written as a Windows path (naming the search, the field and
// the value). None for a refused file.
func (r LintResult) Warnings() []string {
	var out []string
	for _, c := range r.Rules {
		name := c.Title
		if name == "" {
			name = engineID(c.ID, c.Name, c.File, c.Title)
		}
		for _, d := range c.Dropped {
			out = append(out, fmt.Sprintf("rule %q: condition branch %q dropped (%s); the rule loads without it", name, d.Branch, d.Reason))
		}
		for _, p := range c.WindowsPaths {
			out = append(out, windowsPathWarning(name, p))
		}
	}
	return out
}

// Loaded tells whether every rule of the file compiled.
func (r LintResult) Loaded() bool { return r.Err == nil }

// LintFile parses and compiles one file's rules; the file is refused as a whole when one of
// its rules is.
func LintFile(path string, data []byte) LintResult {
	res := LintResult{File: path}
	rules, err := ParseFile(path, data)
	if err != nil {
		res.Err = err
		return res
	}
	res.Logsource = logsourceName(rules[0])
	for _, r := range rules {
		if r.Correlation != nil {
			res.Correlations = append(res.Correlations, r)
			continue
		}
		c, err := r.Compile()
		if err != nil {
			res.Rules, res.Correlations, res.Err = nil, nil, err
			return res
		}
		res.Rules = append(res.Rules, c)
	}
	return res
}

func logsourceName(r *Rule) string {
	switch {
	case r.Correlation != nil:
		return "correlation"
	case r.Logsource.Category != "":
		return r.Logsource.Category
	case r.Logsource.Service != "":
		return r.Logsource.Service
	}
	return "(none)"
}

// LintDir lints every .yml and .yaml file under dir (dir may also be one file) as one set,
// in path order (see LintFiles).
func LintDir(dir string) ([]LintResult, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".yaml")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk sigma rules in %s: %w", dir, err)
	}
	sort.Strings(files)
	set := make([]engine.SourceFile, 0, len(files))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read sigma rule %s: %w", f, err)
		}
		set = append(set, engine.SourceFile{Path: f, Data: data})
	}
	return LintFiles(set), nil
}

// resolveCorrelations refuses the correlation rules naming rules that did not load, or
// grouping by a field one of those rules' events lack.
func resolveCorrelations(results []LintResult) {
	known := map[string]*Compiled{}
	for _, r := range results {
		for _, c := range r.Rules {
			known[c.ID] = c
			if c.Name != "" {
				known[c.Name] = c
			}
		}
	}
	for i := range results {
		r := &results[i]
		for _, c := range r.Correlations {
			if err := checkCorrelation(c.Correlation, known); err != nil {
				r.Err = &RuleError{File: r.File, Title: c.Title, Reason: "correlation: " + err.Error()}
				r.Rules, r.Correlations = nil, nil
				break
			}
		}
	}
}

func checkCorrelation(c *Correlation, known map[string]*Compiled) error {
	for _, ref := range c.Rules {
		rule, ok := known[ref]
		if !ok {
			return fmt.Errorf("rules: %q is not a loaded rule id or name", ref)
		}
		fields := append([]string(nil), c.GroupBy...)
		if c.Condition != nil && c.Condition.Field != "" {
			fields = append(fields, c.Condition.Field)
		}
		for _, f := range fields {
			if per, ok := c.Aliases[f]; ok {
				alias := f
				if f, ok = per[ref]; !ok {
					return fmt.Errorf("aliases: %s: no field given for rule %s", alias, ref)
				}
			}
			if _, ok := rule.FieldPaths(f); !ok {
				return fmt.Errorf("group-by %s: crumbs has no equivalent in the events of rule %s", f, ref)
			}
		}
	}
	return nil
}
