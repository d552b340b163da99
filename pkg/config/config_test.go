package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"

	"github.com/threatcrumbs/crumbs/pkg/config"
)

type inner struct {
	Addr    []string      `mapstructure:"addr"`
	Timeout time.Duration `mapstructure:"timeout"`
	Size    int           `mapstructure:"size"`
}

type cfg struct {
	Name  string `mapstructure:"name"`
	On    bool   `mapstructure:"on"`
	Inner inner  `mapstructure:"inner"`
}

func defaults() cfg {
	return cfg{Name: "d", On: true, Inner: inner{Addr: []string{"a:1"}, Timeout: time.Second, Size: 10}}
}

func load(t *testing.T, file string, env map[string]string, args ...string) (cfg, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	path := ""
	if file != "" {
		path = filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	config.AddFlags(fs, defaults())
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	var c cfg
	err := config.Load(&c, defaults(), path, fs)
	return c, err
}

func TestPrecedenceFlagOverEnvOverFileOverDefault(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string
		env  map[string]string
		args []string
		want cfg
	}{
		{"defaults", "", nil, nil, defaults()},
		{"file", "name: f\ninner:\n  timeout: 3s\n  addr: [x:1, y:2]\n", nil, nil,
			cfg{Name: "f", On: true, Inner: inner{Addr: []string{"x:1", "y:2"}, Timeout: 3 * time.Second, Size: 10}}},
		{"env over file", "name: f\n", map[string]string{"CRUMBS_NAME": "e", "CRUMBS_INNER_SIZE": "7", "CRUMBS_INNER_ADDR": "p:1,q:2"}, nil,
			cfg{Name: "e", On: true, Inner: inner{Addr: []string{"p:1", "q:2"}, Timeout: time.Second, Size: 7}}},
		{"flag over env", "name: f\n", map[string]string{"CRUMBS_NAME": "e"}, []string{"--name=g", "--on=false", "--inner.timeout=5s"},
			cfg{Name: "g", On: false, Inner: inner{Addr: []string{"a:1"}, Timeout: 5 * time.Second, Size: 10}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := load(t, tc.file, tc.env, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("config (-want +got):\n%s", d)
			}
		})
	}
}

func TestBadKeysAreNamed(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		env        map[string]string
		want       string
	}{
		{"unknown file key", "inner:\n  sise: 3\n", nil, "inner.sise"},
		{"wrong type in file", "inner:\n  size: lots\n", nil, "inner.size"},
		{"bad duration in env", "", map[string]string{"CRUMBS_INNER_TIMEOUT": "soon"}, "inner.timeout"},
		{"unknown env key", "", map[string]string{"CRUMBS_INNER_SIZZE": "3"}, "CRUMBS_INNER_SIZZE: no such configuration key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.file, tc.env)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v does not name %q", err, tc.want)
			}
		})
	}
}

func TestKeysAndEnvNames(t *testing.T) {
	var names []string
	for _, k := range config.Keys(defaults()) {
		names = append(names, k.Name+"="+k.Env())
	}
	want := []string{"inner.addr=CRUMBS_INNER_ADDR", "inner.size=CRUMBS_INNER_SIZE", "inner.timeout=CRUMBS_INNER_TIMEOUT", "name=CRUMBS_NAME", "on=CRUMBS_ON"}
	if d := cmp.Diff(want, names); d != "" {
		t.Errorf("keys (-want +got):\n%s", d)
	}
}

// tableCfg holds a table of settings by name, as clickhouse.retention does.
type tableCfg struct {
	Days map[string]int `mapstructure:"days"`
}

func TestTableKeysOnePerDefaultEntry(t *testing.T) {
	defaults := func() tableCfg { return tableCfg{Days: map[string]int{"a": 1, "b": 2}} }
	var names []string
	for _, k := range config.Keys(defaults()) {
		names = append(names, k.Name+"="+k.Env())
	}
	if d := cmp.Diff([]string{"days.a=CRUMBS_DAYS_A", "days.b=CRUMBS_DAYS_B"}, names); d != "" {
		t.Errorf("keys (-want +got):\n%s", d)
	}
	for _, tc := range []struct {
		name string
		file string
		env  map[string]string
		args []string
		want map[string]int
	}{
		{"defaults", "", nil, nil, map[string]int{"a": 1, "b": 2}},
		{"file sets one", "days:\n  a: 5\n", nil, nil, map[string]int{"a": 5, "b": 2}},
		{"env sets one", "", map[string]string{"CRUMBS_DAYS_B": "7"}, nil, map[string]int{"a": 1, "b": 7}},
		{"flag sets one", "", nil, []string{"--days.a=9"}, map[string]int{"a": 9, "b": 2}},
		{"file adds one, for the owner's Validate", "days:\n  c: 3\n", nil, nil, map[string]int{"a": 1, "b": 2, "c": 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			path := ""
			if tc.file != "" {
				path = filepath.Join(t.TempDir(), "c.yaml")
				if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			config.AddFlags(fs, defaults())
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			var got tableCfg
			if err := config.Load(&got, defaults(), path, fs); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got.Days); d != "" {
				t.Errorf("days (-want +got):\n%s", d)
			}
		})
	}
}
