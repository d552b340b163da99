package sigma

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"unicode/utf16"
)

// Modifiers lists the Sigma value modifiers crumbs evaluates.
var Modifiers = []string{"contains", "startswith", "endswith", "all", "re", "i", "m", "s", "cidr",
	"base64", "base64offset", "utf16le", "utf16be", "utf16", "wide", "windash", "exists",
	"gt", "gte", "lt", "lte", "cased", "fieldref"}

// refusedModifiers are Sigma modifiers crumbs knows and cannot evaluate, with why.
var refusedModifiers = map[string]string{
	"expand": "placeholders are filled by a processing pipeline, which crumbs does not have",
}

// maxVariants bounds the values one Sigma value may expand into (windash, base64offset).
const maxVariants = 256

// modChain is a field's modifiers, in the order written.
type modChain []string

func parseMods(mods []string) (modChain, error) {
	known := map[string]bool{}
	for _, m := range Modifiers {
		known[m] = true
	}
	seenRe := false
	for _, m := range mods {
		if why, ok := refusedModifiers[m]; ok {
			return nil, fmt.Errorf("modifier %q: %s", m, why)
		}
		if !known[m] {
			return nil, fmt.Errorf("modifier %q: not a Sigma modifier crumbs knows", m)
		}
		if (m == "i" || m == "m" || m == "s") && !seenRe {
			return nil, fmt.Errorf("modifier %q: is a sub-modifier of re", m)
		}
		seenRe = seenRe || m == "re"
	}
	return mods, nil
}

func (c modChain) has(m string) bool {
	for _, x := range c {
		if x == m {
			return true
		}
	}
	return false
}

// only fails when the chain holds a modifier other than those allowed.
func (c modChain) only(what string, allowed ...string) error {
	for _, m := range c {
		ok := m == what || m == "all"
		for _, a := range allowed {
			ok = ok || m == a
		}
		if !ok {
			return fmt.Errorf("modifier %q cannot be combined with %s", m, what)
		}
	}
	return nil
}

// valueMatcher compiles one Sigma value under a modifier chain.
func valueMatcher(v any, mods modChain) (matcher, error) {
	switch {
	case mods.has("exists"):
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("exists: value %v: must be true or false", v)
		}
		return exists{b}, mods.only("exists")
	case v == nil:
		if len(mods) > 0 {
			return nil, fmt.Errorf("null value with modifiers %s", strings.Join(mods, "|"))
		}
		return null{}, nil
	case mods.has("re"):
		return regexMatcher(v, mods)
	case mods.has("cidr"):
		return cidrMatcher(v, mods)
	}
	for _, op := range []string{"gt", "gte", "lt", "lte"} {
		if mods.has(op) {
			f, ok := valueNumber(v)
			if _, isBool := v.(bool); !ok || isBool {
				return nil, fmt.Errorf("%s: value %v: must be a number", op, v)
			}
			return compare{op, f}, mods.only(op)
		}
	}
	switch v.(type) {
	case map[string]any, []any:
		return nil, errors.New("a value must be a string, number, boolean or null, not a nested structure")
	}
	s, _ := valueString(v)
	if _, isStr := v.(string); !isStr {
		// Numbers and booleans match their decimal or true/false form; no wildcards in them.
		s = strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`).Replace(s)
	}
	return stringMatcher(s, mods)
}

func regexMatcher(v any, mods modChain) (matcher, error) {
	if err := mods.only("re", "i", "m", "s"); err != nil {
		return nil, err
	}
	s, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("re: value %v: must be a string", v)
	}
	flags := ""
	for _, f := range []string{"i", "m", "s"} {
		if mods.has(f) {
			flags += f
		}
	}
	expr := s
	if flags != "" {
		expr = "(?" + flags + ")" + s
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("re %q: not in the RE2 syntax crumbs evaluates: %w", s, err)
	}
	return &regex{re: re, example: regexExample(re)}, nil
}

func cidrMatcher(v any, mods modChain) (matcher, error) {
	if err := mods.only("cidr"); err != nil {
		return nil, err
	}
	s, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("cidr: value %v: must be a string", v)
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a, aerr := netip.ParseAddr(s)
		if aerr != nil {
			return nil, fmt.Errorf("cidr %q: not a network: %w", s, err)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	return cidr{p.Masked()}, nil
}

// stringMatcher applies the string modifiers in chain order to a Sigma string and compiles
// the resulting values to globs.
func stringMatcher(s string, mods modChain) (matcher, error) {
	values := [][]rune{parsePattern(s)}
	cased := mods.has("cased")
	encoding := ""
	for _, m := range mods {
		var err error
		switch m {
		case "contains", "startswith", "endswith":
			for i, p := range values {
				values[i] = wrap(p, m)
			}
		case "windash":
			values, err = windash(values)
		case "utf16le", "wide", "utf16be", "utf16":
			encoding = m
		case "base64", "base64offset":
			values, err = encodeBase64(values, m, encoding)
			cased = true // base64 text is case-significant
		case "all", "cased":
		default:
			err = fmt.Errorf("modifier %q cannot be applied to a string", m)
		}
		if err != nil {
			return nil, err
		}
	}
	if encoding != "" && !mods.has("base64") && !mods.has("base64offset") {
		return nil, fmt.Errorf("modifier %q: only meaningful before base64 or base64offset", encoding)
	}
	if len(values) == 1 {
		return newGlob(values[0], cased), nil
	}
	out := make(anyOf, len(values))
	for i, p := range values {
		out[i] = newGlob(p, cased)
	}
	return out, nil
}

func wrap(p []rune, how string) []rune {
	out := append([]rune(nil), p...)
	if (how == "contains" || how == "endswith") && (len(out) == 0 || out[0] != wildMany) {
		out = append([]rune{wildMany}, out...)
	}
	if (how == "contains" || how == "startswith") && (len(out) == 0 || out[len(out)-1] != wildMany) {
		out = append(out, wildMany)
	}
	return out
}

// windashChars are the characters a Windows command line accepts for a flag's dash.
var windashChars = []rune{'-', '/', '–', '—', '―'}

// windash expands each value into every permutation of the flag characters at the start of
// a word (a - or / not preceded by a word character and followed by one).
func windash(values [][]rune) ([][]rune, error) {
	var out [][]rune
	for _, p := range values {
		var pos []int
		for i, r := range p {
			if (r == '-' || r == '/') && (i == 0 || !isWord(p[i-1])) && i+1 < len(p) && isWord(p[i+1]) {
				pos = append(pos, i)
			}
		}
		n := 1
		for range pos {
			n *= len(windashChars)
			if n > maxVariants {
				return nil, fmt.Errorf("windash: more than %d variants", maxVariants)
			}
		}
		for k := 0; k < n; k++ {
			v := append([]rune(nil), p...)
			kk := k
			for _, i := range pos {
				v[i] = windashChars[kk%len(windashChars)]
				kk /= len(windashChars)
			}
			out = append(out, v)
		}
		if len(out) > maxVariants {
			return nil, fmt.Errorf("windash: more than %d variants", maxVariants)
		}
	}
	return out, nil
}

func isWord(r rune) bool {
	return r == '_' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || r > 127
}

func encodeBytes(s, encoding string) []byte {
	if encoding == "" {
		return []byte(s)
	}
	u := utf16.Encode([]rune(s))
	var b []byte
	if encoding == "utf16" {
		b = append(b, 0xff, 0xfe)
	}
	for _, c := range u {
		if encoding == "utf16be" {
			b = binary.BigEndian.AppendUint16(b, c)
		} else {
			b = binary.LittleEndian.AppendUint16(b, c)
		}
	}
	return b
}

// encodeBase64 encodes each value; base64offset gives the three forms the value takes at
// each offset inside a longer encoded text, with the characters that depend on its
// neighbours cut off.
func encodeBase64(values [][]rune, mod, encoding string) ([][]rune, error) {
	var out [][]rune
	for _, p := range values {
		if hasWildcard(p) {
			return nil, fmt.Errorf("%s: a value with wildcards cannot be encoded", mod)
		}
		raw := encodeBytes(string(p), encoding)
		if mod == "base64" {
			out = append(out, []rune(base64.StdEncoding.EncodeToString(raw)))
			continue
		}
		starts := []int{0, 2, 3}
		ends := []int{0, -3, -2}
		for i := 0; i < 3; i++ {
			shifted := append([]byte(strings.Repeat(" ", i)), raw...)
			enc := base64.StdEncoding.EncodeToString(shifted)
			end := len(enc)
			if e := ends[(len(raw)+i)%3]; e != 0 {
				end += e
			}
			if starts[i] > end {
				continue
			}
			out = append(out, []rune(enc[starts[i]:end]))
		}
	}
	return out, nil
}
