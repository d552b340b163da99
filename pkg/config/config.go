// Package config loads crumbs' configuration with viper: every key of a mapstructure-tagged
// struct is settable by file (--config, YAML), by environment (CRUMBS_ + the key upper-cased
// with dots as underscores) and by a flag named like the key; flags win over the environment,
// which wins over the file, which wins over the defaults. An unknown key in the file or the
// environment, or a value of the wrong type, is one error naming the key.
package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// EnvPrefix starts every environment variable that sets a key.
const EnvPrefix = "CRUMBS"

// envNotKeys are CRUMBS_ variables that are not configuration keys.
var envNotKeys = []string{"CRUMBS_STRICT", "CRUMBS_CONFIG", "CRUMBS_TEST_"}

// Key is one configuration key.
type Key struct {
	Name    string       // dotted, e.g. clickhouse.addr
	Type    reflect.Type // the Go type of its field
	Default any
}

// Env is the environment variable that sets the key.
func (k Key) Env() string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(k.Name, ".", "_"))
}

// Keys lists the keys of a config struct, with their defaults, sorted by name.
func Keys(defaults any) []Key {
	var keys []Key
	walk(reflect.ValueOf(defaults), "", func(name string, v reflect.Value) {
		keys = append(keys, Key{Name: name, Type: v.Type(), Default: v.Interface()})
	})
	sort.Slice(keys, func(i, j int) bool { return keys[i].Name < keys[j].Name })
	return keys
}

var durationType = reflect.TypeOf(time.Duration(0))

func walk(v reflect.Value, prefix string, leaf func(string, reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("mapstructure"), ",")[0]
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		name := tag
		if prefix != "" {
			name = prefix + "." + tag
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct && fv.Type() != durationType {
			walk(fv, name, leaf)
			continue
		}
		if fv.Kind() == reflect.Map && fv.Type().Key().Kind() == reflect.String && fv.Len() > 0 {
			// A table of settings by name (clickhouse.retention): one key per entry of the
			// default; an entry the defaults do not have is the owner's Validate's to refuse.
			names := make([]string, 0, fv.Len())
			for _, k := range fv.MapKeys() {
				names = append(names, k.String())
			}
			sort.Strings(names)
			for _, k := range names {
				leaf(name+"."+k, fv.MapIndex(reflect.ValueOf(k).Convert(fv.Type().Key())))
			}
			continue
		}
		leaf(name, fv)
	}
}

// AddFlags defines one flag per key on fs, named like the key, with the default shown.
func AddFlags(fs *pflag.FlagSet, defaults any) {
	for _, k := range Keys(defaults) {
		if k.Type.Kind() == reflect.Slice && k.Type.Elem().Kind() == reflect.Struct {
			continue // a list of records (alerts.outputs) is set in the file only
		}
		usage := "config key " + k.Name + " (env " + k.Env() + ")"
		switch d := k.Default.(type) {
		case time.Duration:
			fs.Duration(k.Name, d, usage)
		case bool:
			fs.Bool(k.Name, d, usage)
		case []string:
			fs.StringSlice(k.Name, d, usage)
		case string:
			fs.String(k.Name, d, usage)
		default:
			switch k.Type.Kind() {
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
				fs.Int64(k.Name, reflect.ValueOf(d).Int(), usage)
			case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
				fs.Uint64(k.Name, reflect.ValueOf(d).Uint(), usage)
			case reflect.Float32, reflect.Float64:
				fs.Float64(k.Name, reflect.ValueOf(d).Float(), usage)
			default:
				fs.String(k.Name, fmt.Sprint(d), usage)
			}
		}
	}
}

// Load fills out (a pointer to a struct of the same type as defaults) from defaults, the file
// at path (if not empty), the environment and the flags in fs that were set.
func Load(out any, defaults any, path string, fs *pflag.FlagSet) error {
	v := viper.New()
	keys := Keys(defaults)
	known := map[string]bool{}
	for _, k := range keys {
		known[k.Env()] = true
		v.SetDefault(k.Name, k.Default)
		if fs != nil {
			if f := fs.Lookup(k.Name); f != nil {
				if err := v.BindPFlag(k.Name, f); err != nil {
					return fmt.Errorf("bind flag --%s: %w", k.Name, err)
				}
			}
		}
	}
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	v.AllowEmptyEnv(true) // CRUMBS_METRICS_LISTEN= turns the endpoint off, as the key says
	if err := unknownEnv(known); err != nil {
		return err
	}
	if path != "" {
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
	}
	err := v.UnmarshalExact(out, func(c *mapstructure.DecoderConfig) {
		c.ErrorUnused = true
		c.WeaklyTypedInput = true
		c.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		)
	})
	if err != nil {
		where := "configuration"
		if path != "" {
			where = "config file " + path
		}
		return fmt.Errorf("%s: %w", where, cleanErr(err))
	}
	return nil
}

// unknownEnv refuses CRUMBS_ variables that set no key.
func unknownEnv(known map[string]bool) error {
	var errs []error
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix+"_") || known[name] {
			continue
		}
		skip := false
		for _, p := range envNotKeys {
			if name == p || (strings.HasSuffix(p, "_") && strings.HasPrefix(name, p)) {
				skip = true
			}
		}
		if !skip {
			errs = append(errs, fmt.Errorf("environment variable %s: no such configuration key", name))
		}
	}
	return errors.Join(errs...)
}

var invalidKeys = regexp.MustCompile(`(?:'([^']*)' )?has invalid keys: (.+)`)

// cleanErr turns mapstructure's error list into one line per problem, each naming the key.
func cleanErr(err error) error {
	msg := err.Error()
	msg = strings.ReplaceAll(msg, "decoding failed due to the following error(s):\n\n", "")
	var lines []string
	for _, line := range strings.Split(strings.TrimSpace(msg), "\n") {
		m := invalidKeys.FindStringSubmatch(line)
		if m == nil {
			lines = append(lines, strings.TrimSpace(line))
			continue
		}
		for _, k := range strings.Split(m[2], ", ") {
			if m[1] != "" {
				k = m[1] + "." + k
			}
			lines = append(lines, k+": no such configuration key")
		}
	}
	return errors.New(strings.Join(lines, "; "))
}
