// SPDX-License-Identifier: GPL-2.0
/* Changes to files: create, write, rename, delete, chmod and chown, written to the "events"
 * ring buffer as the file_event records of file.h. Reserve or output failures (ring buffer
 * full) are counted per CPU in "drops" so user space can report them.
 *
 * Only syscall tracepoints are used (no kprobes or fentry on this kernel). Paths are taken
 * where they cannot lie: a file opened for writing is named by walking its dentry up to the
 * task's root at open and again at close; a path a process passed (rename, unlink, chmod,
 * chown, setxattr, utimensat) is the string it passed plus its base directory (the cwd or
 * the dirfd), walked the same way.
 *
 * A write is reported once, when the last descriptor of this process on a file opened for
 * writing goes, if the file saw a write-family call or was opened with O_TRUNC or O_APPEND.
 * Descriptors are tracked in write_fds (tgid and fd -> the open file) and the open files in
 * write_files (with how many tracked descriptors hold them), so that a shell's redirection
 * (open, dup2 onto stdout, close the first descriptor, write, exit) is still one write: dup,
 * dup2, dup3 and fcntl's F_DUPFD copy a tracked descriptor, a dup2 onto one releases it, and
 * a process's exit releases what it still holds.
 *
 * A file opened for reading is reported (FILE_OP_READ, once per process and file) when its
 * parent directory's name and its own match read_filter, which user space fills from the
 * sensitive-read globs: every open pays one name read and one trie lookup, nothing more.
 *
 * To keep the cost low, the first component of every path ("etc", "usr", ...) is looked up
 * in watched_tops, which user space fills from the configured globs; paths under other tops
 * are not reported. User space matches the full globs. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include "file.h"
#include "wakeup.h"

char LICENSE[] SEC("license") = "GPL";

#define AT_FDCWD -100
#define AT_REMOVEDIR 0x200
#define O_ACCMODE 3
#define O_CREAT 0100
#define O_TRUNC 01000
#define O_APPEND 02000
#define FMODE_WRITE 0x2
#define S_IFMT 0170000
#define S_IFREG 0100000
#define FMODE_CREATED (1 << 20)
#define UTIME_NOW ((1L << 30) - 1)
#define UTIME_OMIT ((1L << 30) - 2)
#define F_DUPFD 0
#define F_DUPFD_CLOEXEC 1030

/* A dup-family call in flight, in calls (not a file_op: never reported). */
#define CALL_DUP 100
/* How many descriptors a process's exit releases at most, and how many it looks at. */
#define FLUSH_MAX 8
#define FLUSH_FDS 256

#define __stringify_1(x) #x
#define __stringify(x) __stringify_1(x)

/* Set by the loader before load. */
volatile const __u32 self_tgid = 0;   /* events of this process are not reported */
volatile const __u32 filter_tops = 0; /* 1: report only paths whose first component is in watched_tops */
volatile const __u32 sensitive_reads = 0; /* 1: read_filter holds globs: look at opens for reading */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 23); /* replaced by the loader */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

struct top_key {
	char name[TOP_BYTES];
};

/* watched_tops maps a path's first component to 1 when every path under it is watched, to 2
 * when only some of its second components are: those are in watched_seconds. */
#define TOP_WHOLE 1
#define TOP_SECONDS 2

struct second_key {
	struct top_key top;
	struct top_key second;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct second_key);
	__type(value, __u8);
} watched_seconds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct top_key);
	__type(value, __u8);
} watched_tops SEC(".maps");

/* A syscall seen at entry and completed at exit, by thread id. */
struct call {
	__u32 op;
	__u32 flags;
	__s32 dfd[2];
	__u64 str[2]; /* user pointers of the path strings; 0: the path is fd's */
	__s32 fd;
	__u32 mode;
	__u32 uid;
	__u32 gid;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct call);
} calls SEC(".maps");

/* A descriptor on a file opened for writing under a watched path: tgid << 32 | fd -> the
 * open file (struct file *). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} write_fds SEC(".maps");

/* An open file being written, by its struct file *: refs counts the write_fds entries on it. */
struct write_file {
	__u32 written;
	__u32 flags;
	__u32 refs;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct write_file);
} write_files SEC(".maps");

/* Processes that hold (or held) a tracked descriptor, whose exit looks for what is left. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} writer_tgids SEC(".maps");

/* read_filter: "parent/name" prefixes of the sensitive-read globs (bits in prefixlen). */
struct read_key {
	__u32 prefixlen;
	char data[READ_KEY_BYTES];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 256);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct read_key);
	__type(value, __u8);
} read_filter SEC(".maps");

/* A sensitive file a process was reported reading: not reported again for it. */
struct read_seen_key {
	__u64 inode;
	__u32 tgid;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct read_seen_key);
	__type(value, __u8);
} read_seen SEC(".maps");

/* A record is built here, then copied into the ring buffer at its real length. */
struct scratch {
	struct file_event hdr;
	char data[DATA_BYTES];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

/* Keep the record types in BTF so bpf2go can generate Go types for them. */
const struct file_event *unused_file_event __attribute__((unused));
const enum file_op *unused_file_op __attribute__((unused));
const enum file_flag *unused_file_flag __attribute__((unused));

static __always_inline void count_drop(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&drops, &zero);

	if (n)
		*n += 1; /* per-CPU slot; tracepoint programs do not migrate */
}

/* at returns at(s, off), with the mask done where the verifier sees it: the
 * compiler drops a mask it can prove redundant, but the verifier may not prove the same. */
static __always_inline char *at(struct scratch *s, __u32 off)
{
	__u64 v = off;

	asm volatile("%0 &= " __stringify(DATA_MASK) : "+r"(v));
	return &s->data[v];
}

static __always_inline struct mount *real_mount(struct vfsmount *m)
{
	return (void *)m - bpf_core_field_offset(struct mount, mnt);
}

static __always_inline struct file *fd_file(__s32 fd)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *f = NULL;

	if (fd < 0 || (__u32)fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

/* walk_ctx carries a path walk across bpf_loop steps. The field offsets are relocated in
 * the caller and passed in: the callback itself has no CO-RE relocations, which cilium/ebpf
 * does not apply to bpf_loop callbacks reliably. */
struct walk_ctx {
	void *dentry;
	void *vfsmnt;
	void *mnt;
	void *root_d;
	void *root_m;
	const unsigned char *top;
	const unsigned char *second; /* the name below top, once two were copied */
	__u32 off;
	__u32 depth;
	__u32 done;
	/* offsets */
	__u32 mnt_root, d_parent, d_name_name, mnt_parent, mnt_mountpoint, mount_mnt;
};

static __always_inline void *read_ptr(void *base, __u32 off)
{
	void *p = NULL;

	bpf_probe_read_kernel(&p, sizeof(p), base + off);
	return p;
}

/* walk_step copies one component, or crosses one mount; it returns 1 to stop. A bpf_loop
 * callback is verified once, where an unrolled or bounded loop would be verified per step. */
static long walk_step(__u32 k, void *arg)
{
	struct walk_ctx *w = arg;
	void *parent, *mnt_root;
	const unsigned char *name;
	struct scratch *s;
	__u32 zero = 0;
	__u32 off = w->off;
	long n;

	if (w->dentry == w->root_d && w->vfsmnt == w->root_m) {
		w->done = 1;
		return 1;
	}
	mnt_root = read_ptr(w->vfsmnt, w->mnt_root);
	parent = read_ptr(w->dentry, w->d_parent);
	if (w->dentry == mnt_root || w->dentry == parent) {
		void *up = read_ptr(w->mnt, w->mnt_parent);

		if (up == w->mnt || !up) {
			w->done = 1;
			return 1;
		}
		w->dentry = read_ptr(w->mnt, w->mnt_mountpoint);
		w->mnt = up;
		w->vfsmnt = up + w->mount_mnt;
		return 0;
	}
	if (off > DATA_MASK - NAME_BYTES)
		return 1;
	s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return 1;
	name = read_ptr(w->dentry, w->d_name_name);
	n = bpf_probe_read_kernel_str(at(s, off), NAME_BYTES, name);
	if (n <= 0)
		return 1;
	w->off = off + n;
	w->depth++;
	w->second = w->top;
	w->top = name;
	w->dentry = parent;
	return 0;
}

/* walked_names are the two root-most names a walk copied (NULL where it copied fewer). */
struct walked_names {
	const unsigned char *top;
	const unsigned char *second;
};

/* walk writes the components of dentry's path, leaf first, each NUL terminated, at data[off]
 * up to the task's root, and returns the new offset; *top holds the root-most names copied. */
static __always_inline __u32 walk(struct scratch *s, int i, __u32 off, struct dentry *dentry,
				  struct vfsmount *vfsmnt, struct walked_names *top)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	struct walk_ctx w = {
		.dentry = dentry,
		.vfsmnt = vfsmnt,
		.mnt = real_mount(vfsmnt),
		.root_d = BPF_CORE_READ(task, fs, root.dentry),
		.root_m = BPF_CORE_READ(task, fs, root.mnt),
		.off = off,
		.mnt_root = bpf_core_field_offset(struct vfsmount, mnt_root),
		.d_parent = bpf_core_field_offset(struct dentry, d_parent),
		.d_name_name = bpf_core_field_offset(struct dentry, d_name) + bpf_core_field_offset(struct qstr, name),
		.mnt_parent = bpf_core_field_offset(struct mount, mnt_parent),
		.mnt_mountpoint = bpf_core_field_offset(struct mount, mnt_mountpoint),
		.mount_mnt = bpf_core_field_offset(struct mount, mnt),
	};

	bpf_loop(PATH_DEPTH, walk_step, &w, 0);
	if (!w.done)
		s->hdr.flags |= FILE_FLAG_TRUNCATED;
	if (i == 2) {
		s->hdr.exe_depth = w.depth;
		s->hdr.exe_len = w.off - off;
	} else {
		s->hdr.dir_depth[i & 1] = w.depth;
		s->hdr.dir_len[i & 1] = w.off - off;
	}
	top->top = w.top;
	top->second = w.second;
	return w.off;
}

/* split_ctx carries the split of a path string's first two components across bpf_loop
 * steps (one character each: a callback is verified once, where nested loops over the
 * characters would be verified per path through them). */
struct split_ctx {
	__u32 off;  /* the string's first byte in the scratch data */
	__u32 part; /* 0: slashes before the first name, 1: in it, 2: slashes before the second, 3: in it */
	__u32 len;  /* bytes of the current name copied */
	struct top_key top;
	struct top_key second;
};

static long split_step(__u32 k, void *arg)
{
	struct split_ctx *c = arg;
	struct scratch *s;
	__u32 zero = 0;
	char ch;

	s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return 1;
	ch = *at(s, c->off + k);
	if (ch == '\0')
		return 1;
	if (ch == '/') {
		if (c->part == 1)
			c->part = 2;
		else if (c->part == 3)
			return 1;
		return 0;
	}
	if (c->part == 0 || c->part == 2) {
		c->part++;
		c->len = 0;
	}
	if (c->len >= TOP_BYTES - 1)
		return 0; /* cut, as the kernel's keys are */
	if (c->part == 1)
		c->top.name[c->len & (TOP_BYTES - 1)] = ch;
	else
		c->second.name[c->len & (TOP_BYTES - 1)] = ch;
	c->len++;
	return 0;
}

static __always_inline bool is_dot(struct top_key *key)
{
	return key->name[0] == '.' && (key->name[1] == '\0' || (key->name[1] == '.' && key->name[2] == '\0'));
}

/* top_of_string copies the first two components of the string at data[off] into key and
 * second. It returns false when one is "." or "..", which the kernel filter cannot judge. */
static __always_inline bool top_of_string(struct scratch *s, __u32 off, struct top_key *key, struct top_key *second)
{
	struct split_ctx c = {.off = off};

	bpf_loop(2 * (TOP_BYTES + 8), split_step, &c, 0);
	__builtin_memcpy(key, &c.top, sizeof(*key));
	__builtin_memcpy(second, &c.second, sizeof(*second));
	return !is_dot(key) && !is_dot(second);
}

/* watched reports whether the kernel filter lets a path with these first two components
 * through; second is empty when the path has (or the caller knows) only one. */
static __always_inline bool watched(struct top_key *key, struct top_key *second)
{
	struct second_key k2 = {};
	__u8 *v;

	if (!filter_tops)
		return true;
	v = bpf_map_lookup_elem(&watched_tops, key);
	if (!v)
		return false;
	if (*v == TOP_WHOLE || !second->name[0])
		return true;
	__builtin_memcpy(&k2.top, key, sizeof(k2.top));
	__builtin_memcpy(&k2.second, second, sizeof(k2.second));
	return bpf_map_lookup_elem(&watched_seconds, &k2) != NULL;
}

/* watched_names is watched for names a walk copied. */
static __always_inline bool watched_names(struct walked_names *n)
{
	struct top_key key = {}, second = {};

	if (!filter_tops)
		return true;
	if (!n->top)
		return false;
	bpf_probe_read_kernel_str(key.name, sizeof(key.name), n->top);
	if (n->second)
		bpf_probe_read_kernel_str(second.name, sizeof(second.name), n->second);
	return watched(&key, &second);
}

static __always_inline struct scratch *begin(__u32 op)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	__u64 id, ugid;

	if (!s)
		return NULL;
	id = bpf_get_current_pid_tgid();
	ugid = bpf_get_current_uid_gid();
	__builtin_memset(&s->hdr, 0, sizeof(s->hdr));
	s->hdr.op = op;
	s->hdr.ktime_ns = bpf_ktime_get_boot_ns();
	s->hdr.cgroup_id = bpf_get_current_cgroup_id();
	s->hdr.pid = id >> 32;
	s->hdr.tid = (__u32)id;
	s->hdr.uid = (__u32)ugid;
	s->hdr.gid = ugid >> 32;
	bpf_get_current_comm(s->hdr.comm, sizeof(s->hdr.comm));
	return s;
}

/* submit appends the current process's executable and argv (read here, because a
 * short-lived process is gone before user space could read /proc) and outputs the record. */
static __always_inline void submit(struct scratch *s, __u32 off)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	struct file *exe = BPF_CORE_READ(mm, exe_file);
	struct walked_names top;
	__u64 start, end, len;
	__u64 total;

	if (exe && off <= DATA_MASK - NAME_BYTES)
		off = walk(s, 2, off, BPF_CORE_READ(exe, f_path.dentry), BPF_CORE_READ(exe, f_path.mnt), &top);
	start = BPF_CORE_READ(mm, arg_start);
	end = BPF_CORE_READ(mm, arg_end);
	if (end > start && off <= DATA_MASK) {
		len = end - start;
		if (len > ARGS_BYTES)
			len = ARGS_BYTES;
		asm volatile("%0 &= " __stringify(ARGS_MASK) : "+r"(len));
		if (bpf_probe_read_user(at(s, off), len, (void *)start) == 0) {
			s->hdr.args_len = len;
			off += len;
		}
	}
	total = sizeof(s->hdr) + off;
	asm volatile("" : "+r"(total)); /* check the register the helper gets */
	if (total > sizeof(*s))
		return;
	if (bpf_ringbuf_output(&events, s, total, output_wakeup_flags(&events, total)) < 0)
		count_drop();
}

static __always_inline long file_path_of(struct scratch *s, int i, __u32 off, struct file *f, bool filter);

/* file_path writes path i as the walked path of an open file; it returns the new offset, or
 * -1 when the file is not a regular file or not watched. */
static __always_inline long file_path(struct scratch *s, int i, __u32 off, struct file *f)
{
	return file_path_of(s, i, off, f, true);
}

/* file_path_of is file_path; unless filter, a file under any path is taken. */
static __always_inline long file_path_of(struct scratch *s, int i, __u32 off, struct file *f, bool filter)
{
	struct walked_names top;
	umode_t mode;

	if (!f)
		return -1;
	mode = BPF_CORE_READ(f, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFREG)
		return -1;
	off = walk(s, i, off, BPF_CORE_READ(f, f_path.dentry), BPF_CORE_READ(f, f_path.mnt), &top);
	if (filter && !watched_names(&top))
		return -1;
	s->hdr.str_len[i & 1] = 0;
	return off;
}

/* string_path writes path i as a string the process passed, relative to dfd; it returns the
 * new offset and sets *ok when the kernel filter lets it through. */
static __always_inline __u32 string_path(struct scratch *s, int i, __u32 off, __s32 dfd, __u64 str, bool *ok)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	struct walked_names top = {};
	struct top_key key = {}, second = {};
	__u32 depth = 0;
	char first = 0;
	long n;

	bpf_probe_read_user(&first, 1, (void *)str);
	s->hdr.dir_depth[i & 1] = 0;
	s->hdr.dir_len[i & 1] = 0;
	if (first != '/') {
		if (dfd == AT_FDCWD) {
			off = walk(s, i, off, BPF_CORE_READ(task, fs, pwd.dentry), BPF_CORE_READ(task, fs, pwd.mnt), &top);
		} else {
			struct file *f = fd_file(dfd);

			if (f)
				off = walk(s, i, off, BPF_CORE_READ(f, f_path.dentry), BPF_CORE_READ(f, f_path.mnt), &top);
		}
		depth = s->hdr.dir_depth[i & 1];
	}
	if (off > DATA_MASK) {
		s->hdr.flags |= FILE_FLAG_TRUNCATED;
		s->hdr.str_len[i & 1] = 0;
		*ok = true;
		return off;
	}
	n = bpf_probe_read_user_str(at(s, off), PATH_BYTES, (void *)str);
	if (n < 0)
		n = 0;
	if (!top_of_string(s, off, &key, &second)) {
		s->hdr.flags |= FILE_FLAG_UNFILTERED;
		*ok = true;
	} else if (depth >= 2) {
		*ok = *ok || watched_names(&top);
	} else if (depth == 1) {
		/* The walked directory is the top; the string's first name is the second. */
		struct top_key dir = {};

		if (top.top)
			bpf_probe_read_kernel_str(dir.name, sizeof(dir.name), top.top);
		*ok = *ok || watched(&dir, &key);
	} else {
		*ok = *ok || watched(&key, &second);
	}
	s->hdr.str_len[i & 1] = n;
	return off + n;
}

static __always_inline void track_open(__u32 flags)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct call c = {};

	if ((bpf_get_current_pid_tgid() >> 32) == self_tgid)
		return;
	if ((flags & O_ACCMODE) == 0 && !(flags & (O_CREAT | O_TRUNC)))
		return;
	c.op = FILE_OP_WRITE;
	if (flags & O_TRUNC)
		c.flags |= FILE_FLAG_TRUNC;
	if (flags & O_APPEND)
		c.flags |= FILE_FLAG_APPEND;
	bpf_map_update_elem(&calls, &tid, &c, BPF_ANY);
}

SEC("tracepoint/syscalls/sys_enter_openat")
int enter_openat(struct trace_event_raw_sys_enter *ctx)
{
	track_open(ctx->args[2]);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_open")
int enter_open(struct trace_event_raw_sys_enter *ctx)
{
	track_open(ctx->args[1]);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_creat")
int enter_creat(struct trace_event_raw_sys_enter *ctx)
{
	track_open(O_CREAT | O_TRUNC | 1);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_openat2")
int enter_openat2(struct trace_event_raw_sys_enter *ctx)
{
	__u64 flags = 0;

	bpf_probe_read_user(&flags, sizeof(flags), (void *)ctx->args[2]); /* open_how.flags */
	track_open(flags);
	return 0;
}

static __always_inline __u64 fd_key(__s32 fd)
{
	return (bpf_get_current_pid_tgid() & 0xffffffff00000000ULL) | (__u32)fd;
}

/* check_read reports fd, just opened, when it is a regular file opened for reading only
 * that read_filter names, once per process and file. */
static __always_inline void check_read(__s32 fd)
{
	struct file *f = fd_file(fd);
	struct read_seen_key seen = {};
	struct read_key k = {};
	struct dentry *d;
	struct scratch *s;
	__u8 one = 1;
	__u32 p;
	long n;

	if (!f || (BPF_CORE_READ(f, f_mode) & FMODE_WRITE))
		return;
	if ((BPF_CORE_READ(f, f_inode, i_mode) & S_IFMT) != S_IFREG)
		return;
	d = BPF_CORE_READ(f, f_path.dentry);
	n = bpf_probe_read_kernel_str(k.data, READ_NAME_BYTES, BPF_CORE_READ(d, d_parent, d_name.name));
	if (n <= 0)
		return;
	p = (n - 1) & (READ_NAME_BYTES - 1);
	k.data[p] = '/';
	n = bpf_probe_read_kernel_str(&k.data[p + 1], READ_NAME_BYTES, BPF_CORE_READ(d, d_name.name));
	if (n <= 0)
		return;
	k.prefixlen = READ_KEY_BYTES * 8;
	if (!bpf_map_lookup_elem(&read_filter, &k))
		return;
	seen.inode = (__u64)BPF_CORE_READ(f, f_inode);
	seen.tgid = bpf_get_current_pid_tgid() >> 32;
	if (bpf_map_lookup_elem(&read_seen, &seen))
		return;
	bpf_map_update_elem(&read_seen, &seen, &one, BPF_ANY);
	s = begin(FILE_OP_READ);
	if (!s)
		return;
	n = file_path_of(s, 0, 0, f, false);
	if (n < 0)
		return;
	submit(s, n);
}

/* exit_open starts tracking an fd opened for writing under a watched path, and reports a
 * file the open created; an open for reading may be a sensitive read. */
SEC("tracepoint/syscalls/sys_exit_openat")
int exit_open(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	__u32 tgid = id >> 32;
	struct write_file w = {};
	struct call *c = bpf_map_lookup_elem(&calls, &tid);
	struct scratch *s;
	struct file *f;
	__u8 one = 1;
	__u32 flags;
	__u64 key, fp;
	long off;

	if (!c) {
		if (sensitive_reads && ctx->ret >= 0 && tgid != self_tgid)
			check_read(ctx->ret);
		return 0;
	}
	flags = c->flags;
	bpf_map_delete_elem(&calls, &tid);
	if (c->op != FILE_OP_WRITE || ctx->ret < 0)
		return 0;
	s = begin(FILE_OP_CREATE);
	if (!s)
		return 0;
	f = fd_file(ctx->ret);
	off = file_path(s, 0, 0, f);
	if (off < 0)
		return 0;
	key = fd_key(ctx->ret);
	fp = (__u64)f;
	w.flags = flags;
	w.written = flags & (FILE_FLAG_TRUNC | FILE_FLAG_APPEND) ? 1 : 0;
	w.refs = 1;
	bpf_map_update_elem(&write_files, &fp, &w, BPF_ANY);
	bpf_map_update_elem(&write_fds, &key, &fp, BPF_ANY);
	bpf_map_update_elem(&writer_tgids, &tgid, &one, BPF_ANY);
	if (BPF_CORE_READ(f, f_mode) & FMODE_CREATED)
		submit(s, off);
	return 0;
}

/* mark_written marks a tracked fd's file as written; most calls find nothing and return. */
static __always_inline void mark_written(__s32 fd)
{
	__u64 key = fd_key(fd);
	__u64 *fp = bpf_map_lookup_elem(&write_fds, &key);
	struct write_file *w;

	if (!fp)
		return;
	w = bpf_map_lookup_elem(&write_files, fp);
	if (w && !w->written)
		w->written = 1;
}

SEC("tracepoint/syscalls/sys_enter_write")
int enter_write(struct trace_event_raw_sys_enter *ctx)
{
	mark_written(ctx->args[0]);
	return 0;
}

/* enter_write_family serves writev, pwrite64, pwritev, pwritev2, ftruncate and fallocate:
 * their first argument is the fd. */
SEC("tracepoint/syscalls/sys_enter_pwrite64")
int enter_write_family(struct trace_event_raw_sys_enter *ctx)
{
	mark_written(ctx->args[0]);
	return 0;
}

/* release lets go of the tracked descriptor key, which refers to f now (NULL when closed);
 * when it was the last one on a written file, the write is reported, with extra flags. */
static __always_inline void release(__u64 key, struct file *f, __u32 extra)
{
	__u64 *fpp = bpf_map_lookup_elem(&write_fds, &key);
	struct write_file *w;
	struct scratch *s;
	__u32 flags;
	__u64 fp;
	long off;

	if (!fpp)
		return;
	fp = *fpp;
	bpf_map_delete_elem(&write_fds, &key);
	if ((__u64)f != fp) /* stale: closed where it was not seen (close-on-exec) */
		return;
	w = bpf_map_lookup_elem(&write_files, &fp);
	if (!w)
		return;
	if (w->refs > 1) {
		w->refs -= 1;
		return;
	}
	flags = w->flags;
	if (!w->written) {
		bpf_map_delete_elem(&write_files, &fp);
		return;
	}
	bpf_map_delete_elem(&write_files, &fp);
	s = begin(FILE_OP_WRITE);
	if (!s)
		return;
	s->hdr.flags |= flags | extra;
	off = file_path(s, 0, 0, f);
	if (off < 0)
		return;
	submit(s, off);
}

SEC("tracepoint/syscalls/sys_enter_close")
int enter_close(struct trace_event_raw_sys_enter *ctx)
{
	__s32 fd = ctx->args[0];
	__u64 key = fd_key(fd);

	if (!bpf_map_lookup_elem(&write_fds, &key))
		return 0;
	release(key, fd_file(fd), 0);
	return 0;
}

/* track_dup remembers a dup-family call on a tracked fd, for exit_dup. */
static __always_inline void track_dup(__s32 fd)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 key = fd_key(fd);
	struct call c = {.op = CALL_DUP};

	if (!bpf_map_lookup_elem(&write_fds, &key))
		return;
	c.fd = fd;
	bpf_map_update_elem(&calls, &tid, &c, BPF_ANY);
}

SEC("tracepoint/syscalls/sys_enter_dup")
int enter_dup(struct trace_event_raw_sys_enter *ctx)
{
	track_dup(ctx->args[0]);
	return 0;
}

/* enter_dup2 serves dup2 and dup3 (old, new): new, if tracked, is closed by the call. */
SEC("tracepoint/syscalls/sys_enter_dup2")
int enter_dup2(struct trace_event_raw_sys_enter *ctx)
{
	__s32 old = ctx->args[0], new = ctx->args[1];
	__u64 key = fd_key(new);

	if (old == new)
		return 0;
	if (bpf_map_lookup_elem(&write_fds, &key))
		release(key, fd_file(new), 0);
	track_dup(old);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_fcntl")
int enter_fcntl(struct trace_event_raw_sys_enter *ctx)
{
	if (ctx->args[1] == F_DUPFD || ctx->args[1] == F_DUPFD_CLOEXEC)
		track_dup(ctx->args[0]);
	return 0;
}

/* exit_dup tracks the new descriptor a dup-family call made of a tracked one. It is attached
 * to the exit of dup, dup2, dup3 and fcntl. */
SEC("tracepoint/syscalls/sys_exit_dup")
int exit_dup(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct call *c = bpf_map_lookup_elem(&calls, &tid);
	struct write_file *w;
	__u64 key, fp, *fpp;
	__u32 op;
	__s32 fd;

	if (!c)
		return 0;
	op = c->op;
	fd = c->fd;
	bpf_map_delete_elem(&calls, &tid);
	if (op != CALL_DUP || ctx->ret < 0)
		return 0;
	key = fd_key(fd);
	fpp = bpf_map_lookup_elem(&write_fds, &key);
	if (!fpp)
		return 0;
	fp = *fpp;
	w = bpf_map_lookup_elem(&write_files, &fp);
	if (!w)
		return 0;
	w->refs += 1;
	key = fd_key(ctx->ret);
	bpf_map_update_elem(&write_fds, &key, &fp, BPF_ANY);
	return 0;
}

/* flush_ctx collects a process's tracked descriptors, in a bpf_loop callback that needs no
 * CO-RE relocation. */
struct flush_ctx {
	__u64 tgid_key;
	__u32 n;
	__s32 fds[FLUSH_MAX];
};

static long flush_step(__u32 k, void *arg)
{
	struct flush_ctx *fc = arg;
	__u64 key = fc->tgid_key | k;

	if (!bpf_map_lookup_elem(&write_fds, &key))
		return 0;
	if (fc->n >= FLUSH_MAX)
		return 1;
	fc->fds[fc->n & (FLUSH_MAX - 1)] = k;
	fc->n++;
	return 0;
}

/* flush releases what the exiting process still holds (a shell's redirection of a command
 * that never closed its output). */
static __always_inline void flush(__u32 extra)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct flush_ctx fc = {};
	int i;

	if (!bpf_map_lookup_elem(&writer_tgids, &tgid))
		return;
	bpf_map_delete_elem(&writer_tgids, &tgid);
	fc.tgid_key = (__u64)tgid << 32;
	bpf_loop(FLUSH_FDS, flush_step, &fc, 0);
	for (i = 0; i < FLUSH_MAX; i++) {
		__s32 fd;

		if (i >= fc.n)
			break;
		fd = fc.fds[i];
		release(fc.tgid_key | (__u32)fd, fd_file(fd), extra);
	}
}

/* enter_exit_group releases a process's descriptors while its memory is still there to read
 * its executable and argv from. */
SEC("tracepoint/syscalls/sys_enter_exit_group")
int enter_exit_group(struct trace_event_raw_sys_enter *ctx)
{
	flush(0);
	return 0;
}

/* exit_process releases what a process that did not call exit_group (killed by a signal)
 * still holds; its memory is gone by now. */
SEC("tracepoint/sched/sched_process_exit")
int exit_process(struct trace_event_raw_sched_process_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();

	if (bpf_core_field_exists(ctx->group_dead)) {
		if (!ctx->group_dead)
			return 0;
	} else if ((__u32)id != (__u32)(id >> 32)) {
		return 0;
	}
	flush(FILE_FLAG_AT_EXIT);
	return 0;
}

static __always_inline void track_call(struct call *c)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;

	if ((id >> 32) == self_tgid)
		return;
	bpf_map_update_elem(&calls, &tid, c, BPF_ANY);
}

SEC("tracepoint/syscalls/sys_enter_renameat2")
int enter_renameat(struct trace_event_raw_sys_enter *ctx)
{
	struct call c = {.op = FILE_OP_RENAME};

	c.dfd[0] = ctx->args[0];
	c.str[0] = ctx->args[1];
	c.dfd[1] = ctx->args[2];
	c.str[1] = ctx->args[3];
	track_call(&c);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_rename")
int enter_rename(struct trace_event_raw_sys_enter *ctx)
{
	struct call c = {.op = FILE_OP_RENAME, .dfd = {AT_FDCWD, AT_FDCWD}};

	c.str[0] = ctx->args[0];
	c.str[1] = ctx->args[1];
	track_call(&c);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_unlinkat")
int enter_unlinkat(struct trace_event_raw_sys_enter *ctx)
{
	struct call c = {.op = FILE_OP_DELETE};

	c.dfd[0] = ctx->args[0];
	c.str[0] = ctx->args[1];
	if (ctx->args[2] & AT_REMOVEDIR)
		c.flags = FILE_FLAG_DIR;
	track_call(&c);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_unlink")
int enter_unlink(struct trace_event_raw_sys_enter *ctx)
{
	struct call c = {.op = FILE_OP_DELETE, .dfd = {AT_FDCWD}};

	c.str[0] = ctx->args[0];
	track_call(&c);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_rmdir")
int enter_rmdir(struct trace_event_raw_sys_enter *ctx)
{
	struct call c = {.op = FILE_OP_DELETE, .flags = FILE_FLAG_DIR, .dfd = {AT_FDCWD}};

	c.str[0] = ctx->args[0];
	track_call(&c);
	return 0;
}

/* enter_fchmodat serves fchmodat and fchmodat2 (dfd, path, mode). */
SEC("tracepoint/syscalls/sys_enter_fchmodat")
int enter_fchmodat(struct trace_event_raw_sys_enter *ctx)
{
	struct call c = {.op = FILE_OP_CHMOD};

	c.dfd[0] = ctx->args[0];
	c.str[0] = ctx->args[1];
	c.mode = ctx->args[2];
	track_call(&c);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_chmod")
int enter_chmod(struct trace_event_raw_sys_enter *ctx)
{
	struct call c = {.op = FILE_OP_CHMOD, .dfd = {AT_FDCWD}};

	c.str[0] = ctx->args[0];
	c.mode = ctx->args[1];
	track_call(&c);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_fchmod")
int enter_fchmod(struct trace_event_raw_sys_enter *ctx)
{
	struct call c = {.op = FILE_OP_CHMOD};

	c.fd = ctx->args[0];
	c.mode = ctx->args[1];
	track_call(&c);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_fchownat")
int enter_fchownat(struct trace_event_raw_sys_enter *ctx)
{
	struct call c = {.op = FILE_OP_CHOWN};

	c.dfd[0] = ctx->args[0];
	c.str[0] = ctx->args[1];
	c.uid = ctx->args[2];
	c.gid = ctx->args[3];
	track_call(&c);
	return 0;
}

/* enter_chown serves chown and lchown (path, owner, group). */
SEC("tracepoint/syscalls/sys_enter_chown")
int enter_chown(struct trace_event_raw_sys_enter *ctx)
{
	struct call c = {.op = FILE_OP_CHOWN, .dfd = {AT_FDCWD}};

	c.str[0] = ctx->args[0];
	c.uid = ctx->args[1];
	c.gid = ctx->args[2];
	track_call(&c);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_fchown")
int enter_fchown(struct trace_event_raw_sys_enter *ctx)
{
	struct call c = {.op = FILE_OP_CHOWN};

	c.fd = ctx->args[0];
	c.uid = ctx->args[1];
	c.gid = ctx->args[2];
	track_call(&c);
	return 0;
}

/* is_capability_attr reports whether the attribute name at uname is security.capability. */
static __always_inline bool is_capability_attr(__u64 uname)
{
	const char want[] = "security.capability";
	char name[sizeof(want)] = {};
	int i;

	if (bpf_probe_read_user_str(name, sizeof(name), (void *)uname) != sizeof(want))
		return false;
#pragma unroll
	for (i = 0; i < sizeof(want); i++)
		if (name[i] != want[i])
			return false;
	return true;
}

/* enter_setxattr serves setxattr and lsetxattr (path, name, ...): file capabilities set. */
SEC("tracepoint/syscalls/sys_enter_setxattr")
int enter_setxattr(struct trace_event_raw_sys_enter *ctx)
{
	struct call c = {.op = FILE_OP_SETCAP, .dfd = {AT_FDCWD}};

	if (!is_capability_attr(ctx->args[1]))
		return 0;
	c.str[0] = ctx->args[0];
	track_call(&c);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_fsetxattr")
int enter_fsetxattr(struct trace_event_raw_sys_enter *ctx)
{
	struct call c = {.op = FILE_OP_SETCAP};

	if (!is_capability_attr(ctx->args[1]))
		return 0;
	c.fd = ctx->args[0];
	track_call(&c);
	return 0;
}

/* enter_setxattrat: (dfd, path, at_flags, name, args, size), from Linux 6.13. */
SEC("tracepoint/syscalls/sys_enter_setxattrat")
int enter_setxattrat(struct trace_event_raw_sys_enter *ctx)
{
	struct call c = {.op = FILE_OP_SETCAP};

	if (!is_capability_attr(ctx->args[3]))
		return 0;
	c.dfd[0] = ctx->args[0];
	c.str[0] = ctx->args[1];
	c.fd = ctx->args[0];
	track_call(&c);
	return 0;
}

/* track_times records a call setting a file's times when it gives the modification time
 * (not "now", not left alone): a path relative to dfd, or the file dfd itself. */
static __always_inline void track_times(__s32 dfd, __u64 path)
{
	struct call c = {.op = FILE_OP_UTIMES};

	c.dfd[0] = dfd;
	c.str[0] = path;
	c.fd = dfd;
	track_call(&c);
}

/* enter_utimensat: (dfd, path or NULL, times[2] or NULL, flags); futimens is utimensat on
 * the fd with no path. */
SEC("tracepoint/syscalls/sys_enter_utimensat")
int enter_utimensat(struct trace_event_raw_sys_enter *ctx)
{
	__s64 t[4] = {}; /* atime and mtime, each seconds and nanoseconds */

	if (!ctx->args[2])
		return 0;
	bpf_probe_read_user(t, sizeof(t), (void *)ctx->args[2]);
	if (t[3] == UTIME_NOW || t[3] == UTIME_OMIT)
		return 0;
	track_times(ctx->args[0], ctx->args[1]);
	return 0;
}

/* enter_futimesat: (dfd, path or NULL, timeval[2] or NULL). */
SEC("tracepoint/syscalls/sys_enter_futimesat")
int enter_futimesat(struct trace_event_raw_sys_enter *ctx)
{
	if (ctx->args[2])
		track_times(ctx->args[0], ctx->args[1]);
	return 0;
}

/* enter_utimes serves utimes (path, timeval[2] or NULL) and utime (path, utimbuf or NULL). */
SEC("tracepoint/syscalls/sys_enter_utimes")
int enter_utimes(struct trace_event_raw_sys_enter *ctx)
{
	if (ctx->args[1])
		track_times(AT_FDCWD, ctx->args[0]);
	return 0;
}

/* exit_path reports a successful rename, delete, chmod, chown or times set under a watched
 * path, and capabilities set on any file. It is attached to the exit of every syscall that
 * track_call records. */
SEC("tracepoint/syscalls/sys_exit_renameat2")
int exit_path(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct call *cp = bpf_map_lookup_elem(&calls, &tid);
	struct scratch *s;
	struct call c;
	bool ok = false;
	__u32 off = 0;

	if (!cp)
		return 0;
	c = *cp;
	bpf_map_delete_elem(&calls, &tid);
	if (ctx->ret != 0 || c.op == FILE_OP_WRITE || c.op == CALL_DUP)
		return 0;
	s = begin(c.op);
	if (!s)
		return 0;
	s->hdr.flags |= c.flags;
	s->hdr.arg_mode = c.mode;
	s->hdr.arg_uid = c.uid;
	s->hdr.arg_gid = c.gid;
	if (!c.str[0]) {
		long n = file_path_of(s, 0, 0, fd_file(c.fd), c.op != FILE_OP_SETCAP);

		if (n < 0)
			return 0;
		submit(s, n);
		return 0;
	}
	off = string_path(s, 0, off, c.dfd[0], c.str[0], &ok);
	if (c.op == FILE_OP_RENAME && off <= DATA_MASK)
		off = string_path(s, 1, off, c.dfd[1], c.str[1], &ok);
	if (ok || c.op == FILE_OP_SETCAP)
		submit(s, off);
	return 0;
}
