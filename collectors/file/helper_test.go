package file

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// helperEnv makes the test binary act as the helper process: changes made by the test
// process itself would be excluded as crumbs' own.
const helperEnv = "CRUMBS_FILE_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		if err := runHelper(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runHelper performs file operations given as words: "write PATH N" (one open, N write
// calls, one close), "rename OLD NEW", "chmod PATH MODE" (octal), "chown PATH UID GID",
// "remove PATH", "storm DIR N" (N times: create and write DIR/f, rename it to DIR/g),
// "setcap PATH" (cap_net_raw, permitted and effective, as setcap gives).
func runHelper(args []string) error {
	for len(args) > 0 {
		var n int
		var err error
		switch args[0] {
		case "write":
			n, err = 3, helperWrite(args[1], args[2])
		case "rename":
			n, err = 3, os.Rename(args[1], args[2])
		case "chmod":
			mode, perr := strconv.ParseUint(args[2], 8, 32)
			if perr != nil {
				return perr
			}
			n, err = 3, os.Chmod(args[1], os.FileMode(mode))
		case "chown":
			uid, _ := strconv.Atoi(args[2])
			gid, _ := strconv.Atoi(args[3])
			n, err = 4, os.Chown(args[1], uid, gid)
		case "storm":
			n, err = 3, helperStorm(args[1], args[2])
		case "remove":
			n, err = 2, os.Remove(args[1])
		case "setcap":
			n, err = 2, helperSetCap(args[1])
		default:
			return fmt.Errorf("unknown op %q", args[0])
		}
		if err != nil {
			return err
		}
		args = args[n:]
	}
	return nil
}

func helperWrite(path, count string) error {
	n, err := strconv.Atoi(count)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	for i := range n {
		if _, err := fmt.Fprintf(f, "line %d\n", i); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

func helperStorm(dir, count string) error {
	n, err := strconv.Atoi(count)
	if err != nil {
		return err
	}
	f, g := dir+"/f", dir+"/g"
	for range n {
		if err := os.WriteFile(f, []byte("storm\n"), 0o644); err != nil {
			return err
		}
		if err := os.Rename(f, g); err != nil {
			return err
		}
	}
	return nil
}

// helperSetCap sets the security.capability attribute: struct vfs_cap_data, revision 2,
// with cap_net_raw (13) permitted and effective.
func helperSetCap(path string) error {
	data := make([]byte, 20)
	binary.LittleEndian.PutUint32(data[0:], 0x02000000|1)
	binary.LittleEndian.PutUint32(data[4:], 1<<13)
	return unix.Setxattr(path, "security.capability", data, 0)
}
