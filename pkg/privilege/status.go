package privilege

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"kernel.org/pub/linux/libs/security/libcap/cap"
)

// Status is what /proc/<pid>/status says about a process's privileges.
type Status struct {
	UID, GID [4]int // real, effective, saved, filesystem
	Groups   []int  // supplementary
	// Capability sets, as sorted names (CAP_BPF).
	Inheritable, Permitted, Effective, Bounding, Ambient []string
	NoNewPrivs                                           bool
}

// ReadStatus reads the privileges of process pid from /proc/<pid>/status.
func ReadStatus(pid int) (Status, error) {
	return readStatusFile("/proc/" + strconv.Itoa(pid) + "/status")
}

func readStatusFile(path string) (Status, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Status{}, err
	}
	var st Status
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Uid":
			st.UID, err = ids(v)
		case "Gid":
			st.GID, err = ids(v)
		case "Groups":
			for _, f := range strings.Fields(v) {
				g, perr := strconv.Atoi(f)
				if perr != nil {
					err = perr
				}
				st.Groups = append(st.Groups, g)
			}
		case "CapInh":
			st.Inheritable, err = MaskNames(v)
		case "CapPrm":
			st.Permitted, err = MaskNames(v)
		case "CapEff":
			st.Effective, err = MaskNames(v)
		case "CapBnd":
			st.Bounding, err = MaskNames(v)
		case "CapAmb":
			st.Ambient, err = MaskNames(v)
		case "NoNewPrivs":
			st.NoNewPrivs = v == "1"
		}
		if err != nil {
			return Status{}, fmt.Errorf("%s: %s: %w", path, k, err)
		}
	}
	return st, nil
}

func ids(v string) ([4]int, error) {
	var out [4]int
	f := strings.Fields(v)
	if len(f) != 4 {
		return out, fmt.Errorf("%q: want 4 ids", v)
	}
	for i, s := range f {
		n, err := strconv.Atoi(s)
		if err != nil {
			return out, err
		}
		out[i] = n
	}
	return out, nil
}

// MaskNames decodes a capability mask as /proc/<pid>/status prints it (hex) into sorted names;
// a bit this build does not know is named by its number.
func MaskNames(hex string) ([]string, error) {
	m, err := strconv.ParseUint(hex, 16, 64)
	if err != nil {
		return nil, fmt.Errorf("capability mask %q: %w", hex, err)
	}
	var out []string
	for bit := range 64 {
		if m&(1<<bit) == 0 {
			continue
		}
		if c := Capability(bit); c < cap.MaxBits() {
			out = append(out, Name(c))
		} else {
			out = append(out, "CAP_"+strconv.Itoa(bit))
		}
	}
	slices.Sort(out)
	return out, nil
}
