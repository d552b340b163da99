package file

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/threatcrumbs/crumbs/collectors/internal/hostinfo"
)

// errTooLarge says a file is over hash_max_file_bytes and gets no sha256.
var errTooLarge = errors.New("file larger than hash_max_file_bytes")

// attrs is what lstat says about a file: what scans diff and events report.
type attrs struct {
	Size    int64  `json:"size"`
	UID     uint32 `json:"uid"`
	GID     uint32 `json:"gid"`
	Mode    uint32 `json:"mode"` // permission and set-id bits
	MtimeNs int64  `json:"mtime_ns"`
	CtimeNs int64  `json:"ctime_ns"`
	Ino     uint64 `json:"ino"`
	Dev     uint64 `json:"dev"`
	Regular bool   `json:"regular"`
}

// lstatAttrs lstats the host path path under root.
func lstatAttrs(root hostinfo.Root, path string) (attrs, error) {
	fi, err := root.Lstat(path)
	if err != nil {
		return attrs{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return attrs{}, fmt.Errorf("stat %s: no stat_t", path)
	}
	return attrs{
		Size:    st.Size,
		UID:     st.Uid,
		GID:     st.Gid,
		Mode:    st.Mode & 0o7777,
		MtimeNs: st.Mtim.Nano(),
		CtimeNs: st.Ctim.Nano(),
		Ino:     st.Ino,
		Dev:     st.Dev,
		Regular: fi.Mode().IsRegular(),
	}, nil
}

// sameVersion reports whether a and b are, as far as a stat can tell, the same contents.
func (a attrs) sameVersion(b attrs) bool {
	return a.Size == b.Size && a.MtimeNs == b.MtimeNs && a.CtimeNs == b.CtimeNs && a.Ino == b.Ino && a.Dev == b.Dev
}

// modeString formats permission and set-id bits in octal, as 0755.
func modeString(mode uint32) string { return fmt.Sprintf("%04o", mode&0o7777) }

// hashFile returns the hex sha256 of a regular file of at most maxBytes, the host path path
// under root. It does not follow a symbolic link put in the file's place, nor block on a FIFO.
func hashFile(root hostinfo.Root, path string, maxBytes int64) (string, error) {
	f, err := root.Open(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("stat %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("hash %s: not a regular file", path)
	}
	if fi.Size() > maxBytes {
		return "", fmt.Errorf("hash %s: %w", path, errTooLarge)
	}
	d := sha256.New()
	var r io.Reader = f
	if maxBytes < math.MaxInt64 {
		r = io.LimitReader(f, maxBytes+1) // a file that grew since the stat
	}
	n, err := io.Copy(d, r)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	if n > maxBytes {
		return "", fmt.Errorf("hash %s: %w", path, errTooLarge)
	}
	return hex.EncodeToString(d.Sum(nil)), nil
}
