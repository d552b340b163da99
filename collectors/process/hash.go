package process

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/threatcrumbs/crumbs/collectors/internal/hostinfo"
)

// errTooLarge says a file is over HashMaxFileBytes and gets no sha256.
var errTooLarge = errors.New("file larger than hash_max_file_bytes")

// fileKey identifies one version of a file: a change to its content changes its change
// time (ctime), which, unlike the modification time, no one can set back.
type fileKey struct {
	Dev, Ino uint64
	CtimeNs  int64
	Size     int64
}

// kernelKey is the fileKey of the executable the kernel reported with an exec, from its inode
// (dev in the kernel's encoding); the zero key when it reported none.
func kernelKey(dev uint32, ino, size, ctimeNs uint64) fileKey {
	if ino == 0 {
		return fileKey{}
	}
	return fileKey{Dev: unix.Mkdev(dev>>20, dev&0xfffff), Ino: ino, CtimeNs: int64(ctimeNs), Size: int64(size)}
}

// sameVersion says whether a and b are the same version of a file as far as size and change
// time tell: a filesystem may report another device or inode number to stat (overlayfs,
// btrfs subvolumes) than its inode holds.
func sameVersion(a, b fileKey) bool { return a.CtimeNs == b.CtimeNs && a.Size == b.Size }

// hashCache is a bounded LRU of sha256 sums by fileKey, safe for concurrent use.
type hashCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // front is most recently used; values are *hashCacheEntry
	byKey map[fileKey]*list.Element
}

type hashCacheEntry struct {
	key fileKey
	sum string
}

func newHashCache(max int) *hashCache {
	return &hashCache{max: max, order: list.New(), byKey: make(map[fileKey]*list.Element)}
}

func (c *hashCache) get(k fileKey) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[k]
	if !ok {
		return "", false
	}
	c.order.MoveToFront(el)
	return el.Value.(*hashCacheEntry).sum, true
}

func (c *hashCache) put(k fileKey, sum string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[k]; ok {
		el.Value.(*hashCacheEntry).sum = sum
		c.order.MoveToFront(el)
		return
	}
	c.byKey[k] = c.order.PushFront(&hashCacheEntry{key: k, sum: sum})
	for c.order.Len() > c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.byKey, oldest.Value.(*hashCacheEntry).key)
	}
}

func (c *hashCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// hashJob is one executable to hash and, once done is closed, its result: a future the
// emitter waits on with a deadline.
type hashJob struct {
	pid    int32
	path   string  // absolute path of the executable
	viaExe bool    // /proc/<pid>/exe names path: open it there, immune to path replacement
	key    fileKey // the executable's version as the kernel reported it, if it did
	done   chan struct{}
	sum    string // hex sha256; empty when it could not be computed
}

func newHashJob(pid int32, path string, viaExe bool, key fileKey) *hashJob {
	return &hashJob{pid: pid, path: path, viaExe: viaExe, key: key, done: make(chan struct{})}
}

// hashCounters are the hashing parts of Stats.
type hashCounters struct {
	errors, tooLarge, cacheHits, cacheMisses, jobs atomic.Uint64
}

// fileHasher computes executables' sha256 for hashJobs, through a hashCache.
type fileHasher struct {
	cache    *hashCache
	maxBytes int64
	counters *hashCounters
	// jobSeen, when set, is called with each job's path (tests: the host's other execs make
	// jobs of their own, so the job counter alone cannot tell one executable's).
	jobSeen atomic.Pointer[func(path string)]
	root    hostinfo.Root // where the host's files are, for executables opened by path
}

// cached returns the sum cached for key, if there is one (the zero key has none).
func (h *fileHasher) cached(key fileKey) (string, bool) {
	if key == (fileKey{}) {
		return "", false
	}
	sum, ok := h.cache.get(key)
	if ok {
		h.counters.cacheHits.Add(1)
	}
	return sum, ok
}

// work hashes jobs until the channel is closed.
func (h *fileHasher) work(jobs <-chan *hashJob) {
	for j := range jobs {
		h.counters.jobs.Add(1)
		if f := h.jobSeen.Load(); f != nil {
			(*f)(j.path)
		}
		sum, err := h.hash(j)
		switch {
		case errors.Is(err, errTooLarge):
			h.counters.tooLarge.Add(1)
		case err != nil:
			h.counters.errors.Add(1)
		}
		j.sum = sum
		close(j.done)
	}
}

func (h *fileHasher) hash(j *hashJob) (string, error) {
	f, err := h.open(j)
	if err != nil {
		return "", err
	}
	defer f.Close()
	key, err := keyOf(f)
	if err != nil {
		return "", err
	}
	sum, ok := h.cached(key)
	if !ok {
		h.counters.cacheMisses.Add(1)
		if key.Size > h.maxBytes {
			return "", fmt.Errorf("hash %s: %w", j.path, errTooLarge)
		}
		d := sha256.New()
		if _, err := io.Copy(d, io.LimitReader(f, h.maxBytes+1)); err != nil {
			return "", fmt.Errorf("hash %s: %w", j.path, err)
		}
		sum = hex.EncodeToString(d.Sum(nil))
		h.cache.put(key, sum)
	}
	// The next exec of this version finds its sum by the kernel's key, without a job.
	if j.key != key && j.key != (fileKey{}) && sameVersion(j.key, key) {
		h.cache.put(j.key, sum)
	}
	return sum, nil
}

// open opens the job's executable through /proc/<pid>/exe when that names it (it still
// works when the path was replaced or deleted since the exec), else by path.
func (h *fileHasher) open(j *hashJob) (*os.File, error) {
	if j.viaExe {
		f, err := os.Open("/proc/" + strconv.Itoa(int(j.pid)) + "/exe")
		if err == nil {
			return f, nil
		}
	}
	f, err := h.root.Open(j.path, os.O_RDONLY)
	if err != nil {
		return nil, fmt.Errorf("open executable: %w", err)
	}
	return f, nil
}

func keyOf(f *os.File) (fileKey, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileKey{}, fmt.Errorf("stat executable: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileKey{}, fmt.Errorf("stat executable %s: no device and inode", f.Name())
	}
	return fileKey{Dev: st.Dev, Ino: st.Ino, CtimeNs: st.Ctim.Nano(), Size: fi.Size()}, nil
}
