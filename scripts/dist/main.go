// Command dist builds crumbs' release artefacts (make dist): for each architecture a static
// binary with that architecture's BPF objects built in (CGO_ENABLED=0, checked in the
// binary's build information), and its deb and rpm packages from deploy/packaging/nfpm.yaml,
// built with nfpm as a library; then SHA256SUMS over all of them.
//
//	cd scripts/dist && go run . -root ../.. [-version V] [-out dist] [-arch amd64,arm64] [-formats deb,rpm]
//
// It is a module of its own (scripts/dist/go.mod): nfpm and what it needs are build tools,
// never linked into the crumbs binary, so they stay out of crumbs' go.mod and NOTICE.
// -root is the repository's root; the paths in nfpm.yaml and -out are relative to it.
//
// In: the source tree. Out, under -out: crumbs-linux-<arch>, crumbs_<version>_<arch>.deb,
// crumbs-<version>-1.<rpm arch>.rpm, SHA256SUMS.
package main

import (
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the rpm packager
)

// machines is the ELF machine of each architecture a release is built for.
var machines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

const nfpmConfig = "deploy/packaging/nfpm.yaml"

func main() {
	version := flag.String("version", "", "version stamped into the binary (main.version) and the packages (default: git describe)")
	out := flag.String("out", "dist", "directory the artefacts are written to")
	archs := flag.String("arch", "amd64,arm64", "architectures, comma-separated")
	formats := flag.String("formats", "deb,rpm", "package formats, comma-separated (empty: binaries only)")
	root := flag.String("root", ".", "the repository's root")
	prebuilt := flag.Bool("prebuilt", false, "package the binaries already in -out (crumbs-linux-<arch>, checked as a build is) instead of building them")
	flag.Parse()
	if err := os.Chdir(*root); err != nil {
		fmt.Fprintln(os.Stderr, "dist: -root:", err)
		os.Exit(1)
	}
	if err := run(*version, *out, split(*archs), split(*formats), *prebuilt); err != nil {
		fmt.Fprintln(os.Stderr, "dist:", err)
		os.Exit(1)
	}
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func run(version, out string, archs, formats []string, prebuilt bool) error {
	if _, err := os.Stat(nfpmConfig); err != nil {
		return fmt.Errorf("-root is not the repository's root: %w", err)
	}
	if version == "" {
		b, err := exec.Command("git", "describe", "--always", "--dirty").Output()
		if err != nil {
			return fmt.Errorf("git describe (or give -version): %w", err)
		}
		version = strings.TrimSpace(string(b))
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("make %s: %w", out, err)
	}
	var made []string
	for _, arch := range archs {
		if _, ok := machines[arch]; !ok {
			return fmt.Errorf("-arch %s: not one of %v", arch, slices.Sorted(maps.Keys(machines)))
		}
		bin, err := filepath.Join(out, "crumbs-linux-"+arch), error(nil)
		if prebuilt {
			err = checkStatic(bin, machines[arch])
		} else {
			bin, err = build(version, out, arch)
		}
		if err != nil {
			return err
		}
		made = append(made, bin)
		for _, format := range formats {
			p, err := pkg(version, out, arch, format)
			if err != nil {
				return err
			}
			made = append(made, p)
		}
	}
	return writeSums(out, made)
}

// build cross-compiles the static binary of arch and checks it is one: an ELF of that
// machine, without an interpreter or shared libraries, built with cgo off.
func build(version, out, arch string) (string, error) {
	want := machines[arch]
	bin := filepath.Join(out, "crumbs-linux-"+arch)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+version, "-o", bin, "./cmd/crumbs")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	fmt.Fprintf(os.Stderr, "dist: building %s\n", bin)
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build crumbs for %s: %w", arch, err)
	}
	if err := checkStatic(bin, want); err != nil {
		return "", err
	}
	return bin, nil
}

// checkStatic says why bin is not a static, cgo-free executable for machine.
func checkStatic(bin string, machine elf.Machine) error {
	f, err := elf.Open(bin)
	if err != nil {
		return fmt.Errorf("read %s: %w", bin, err)
	}
	defer f.Close()
	if f.Machine != machine {
		return fmt.Errorf("%s: ELF machine %s, want %s", bin, f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s: has a dynamic loader (PT_INTERP): not static", bin)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		return fmt.Errorf("%s: needs shared libraries %v", bin, libs)
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return fmt.Errorf("%s: build information: %w", bin, err)
	}
	for _, s := range info.Settings {
		if s.Key == "CGO_ENABLED" && s.Value != "0" {
			return fmt.Errorf("%s: built with CGO_ENABLED=%s", bin, s.Value)
		}
	}
	return nil
}

// packageVersion turns a git describe into a version deb and rpm accept and order rightly:
// "v1.2.3" is "1.2.3"; "v1.2.3-4-gabc" is "1.2.3+git4.gabc"; a pre-release "v1.2.3-rc1" is
// "1.2.3~rc1", which sorts before "1.2.3" in both; a bare commit ("abc1234-dirty", no tag
// yet) is "0.0.0~gitabc1234.dirty", which sorts before any release.
func packageVersion(describe string) string {
	v := strings.TrimPrefix(describe, "v")
	if m := describeRE.FindStringSubmatch(v); m != nil {
		if m[2] == "dirty" && m[3] == "" && m[5] == "" { // "v1.2.3-dirty": no pre-release
			m[2], m[5] = "", "-dirty"
		}
		out := m[1]
		if m[2] != "" {
			out += "~" + m[2]
		}
		if m[3] != "" {
			out += "+git" + m[3] + "." + m[4]
		}
		if m[5] != "" {
			out += "+dirty"
		}
		return out
	}
	clean := regexp.MustCompile(`[^A-Za-z0-9.]+`).ReplaceAllString(v, ".")
	return "0.0.0~git" + strings.Trim(clean, ".")
}

// describeRE parses git describe of a release tag: version, pre-release (with a letter, so
// that it is not the count of commits since), commits since the tag and their commit, dirty.
var describeRE = regexp.MustCompile(`^(\d+\.\d+\.\d+)(?:-([0-9A-Za-z.]*[A-Za-z][0-9A-Za-z.]*))?(?:-(\d+)-(g[0-9a-f]+))?(-dirty)?$`)

// pkg writes the package of format for arch from nfpm.yaml and returns its path.
func pkg(version, out, arch, format string) (string, error) {
	vars := map[string]string{"ARCH": arch, "VERSION": packageVersion(version), "DIST": out}
	cfg, err := nfpm.ParseFileWithEnvMapping(nfpmConfig, func(k string) string { return vars[k] })
	if err != nil {
		return "", fmt.Errorf("%s: %w", nfpmConfig, err)
	}
	info, err := cfg.Get(format)
	if err != nil {
		return "", fmt.Errorf("%s: %s: %w", nfpmConfig, format, err)
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, format); err != nil {
		return "", fmt.Errorf("%s: %s: %w", nfpmConfig, format, err)
	}
	if format != "deb" && format != "rpm" {
		return "", fmt.Errorf("-formats %s: deb or rpm", format)
	}
	packager, err := nfpm.Get(format)
	if err != nil {
		return "", err
	}
	target := filepath.Join(out, packager.ConventionalFileName(info))
	f, err := os.Create(target)
	if err != nil {
		return "", fmt.Errorf("create %s: %w", target, err)
	}
	info.Target = target
	err = packager.Package(info, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(target)
		return "", fmt.Errorf("package %s: %w", target, err)
	}
	fmt.Fprintf(os.Stderr, "dist: packaged %s\n", target)
	return target, nil
}

// writeSums writes SHA256SUMS (sha256sum's format) of the artefacts.
func writeSums(out string, paths []string) error {
	sort.Strings(paths)
	var b strings.Builder
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("hash %s: %w", p, err)
		}
		fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(h.Sum(nil)), filepath.Base(p))
	}
	if len(paths) == 0 {
		return errors.New("nothing was built")
	}
	return os.WriteFile(filepath.Join(out, "SHA256SUMS"), []byte(b.String()), 0o644)
}
