// SPDX-License-Identifier: GPL-2.0
/* Changes to files: create, write, rename, delete, chmod and chown, written to the "events"
 * ring buffer as the file_event records of file.h. Reserve or output failures (ring buffer
 * full) are counted per CPU in "drops" so user space can report them.
 *
 * Only syscall tracepoints are used (no kprobes or fentry on this kernel). Paths are taken
 * where they cannot lie: a file opened for writing is named by walking its dentry up to the
 * task's root at open and again at close; a path a process passed (rename, unlink, chmod,
 * chown) is the string it passed plus its base directory (the cwd or the dirfd), walked the
 * same way. A write is reported once, at close, for a file opened for writing that saw at
 * least one write-family call; the open fds are tracked in write_fds keyed by tgid and fd.
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
#define S_IFMT 0170000
#define S_IFREG 0100000
#define FMODE_CREATED (1 << 20)

#define __stringify_1(x) #x
#define __stringify(x) __stringify_1(x)

/* Set by the loader before load. */
volatile const __u32 self_tgid = 0;   /* events of this process are not reported */
volatile const __u32 filter_tops = 0; /* 1: report only paths whose first component is in watched_tops */

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

/* An fd opened for writing under a watched path, by tgid << 32 | fd. */
struct write_fd {
	__u32 written;
	__u32 flags;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct write_fd);
} write_fds SEC(".maps");

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
	w->top = name;
	w->dentry = parent;
	return 0;
}

/* walk writes the components of dentry's path, leaf first, each NUL terminated, at data[off]
 * up to the task's root, and returns the new offset; *top is the root-most name copied. */
static __always_inline __u32 walk(struct scratch *s, int i, __u32 off, struct dentry *dentry,
				  struct vfsmount *vfsmnt, const unsigned char **top)
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
	*top = w.top;
	return w.off;
}

/* top_of_string copies the first component of the string at data[off] into key. It returns
 * false when that component is "." or "..", which the kernel filter cannot judge. */
static __always_inline bool top_of_string(struct scratch *s, __u32 off, struct top_key *key)
{
	__u32 p = off;
	int j;

	for (j = 0; j < 8; j++) {
		if (*at(s, p) != '/')
			break;
		p++;
	}
	for (j = 0; j < TOP_BYTES - 1; j++) {
		char ch = *at(s, p + j);

		if (ch == '/' || ch == '\0')
			break;
		key->name[j] = ch;
	}
	if (key->name[0] == '.' && (key->name[1] == '\0' || (key->name[1] == '.' && key->name[2] == '\0')))
		return false;
	return true;
}

/* watched reports whether the kernel filter lets a path with this first component through. */
static __always_inline bool watched(struct top_key *key)
{
	if (!filter_tops)
		return true;
	return bpf_map_lookup_elem(&watched_tops, key) != NULL;
}

static __always_inline bool watched_name(const unsigned char *name)
{
	struct top_key key = {};

	if (!filter_tops)
		return true;
	if (!name)
		return false;
	bpf_probe_read_kernel_str(key.name, sizeof(key.name), name);
	return watched(&key);
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
	const unsigned char *top;
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

/* file_path writes path i as the walked path of an open file; it returns the new offset, or
 * -1 when the file is not a regular file or not watched. */
static __always_inline long file_path(struct scratch *s, int i, __u32 off, struct file *f)
{
	const unsigned char *top;
	umode_t mode;

	if (!f)
		return -1;
	mode = BPF_CORE_READ(f, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFREG)
		return -1;
	off = walk(s, i, off, BPF_CORE_READ(f, f_path.dentry), BPF_CORE_READ(f, f_path.mnt), &top);
	if (!watched_name(top))
		return -1;
	s->hdr.str_len[i & 1] = 0;
	return off;
}

/* string_path writes path i as a string the process passed, relative to dfd; it returns the
 * new offset and sets *ok when the kernel filter lets it through. */
static __always_inline __u32 string_path(struct scratch *s, int i, __u32 off, __s32 dfd, __u64 str, bool *ok)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	const unsigned char *top = NULL;
	struct top_key key = {};
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
	if (!top_of_string(s, off, &key)) {
		s->hdr.flags |= FILE_FLAG_UNFILTERED;
		*ok = true;
	} else if (top) {
		*ok = *ok || watched_name(top);
	} else {
		*ok = *ok || watched(&key);
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
	c.flags = flags & O_TRUNC ? FILE_FLAG_TRUNC : 0;
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

/* exit_open starts tracking an fd opened for writing under a watched path, and reports a
 * file the open created. */
SEC("tracepoint/syscalls/sys_exit_openat")
int exit_open(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct write_fd w = {};
	struct call *c = bpf_map_lookup_elem(&calls, &tid);
	struct scratch *s;
	struct file *f;
	__u32 flags;
	__u64 key;
	long off;

	if (!c)
		return 0;
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
	key = (id & 0xffffffff00000000ULL) | (__u32)ctx->ret;
	w.flags = flags;
	w.written = flags & FILE_FLAG_TRUNC ? 1 : 0;
	bpf_map_update_elem(&write_fds, &key, &w, BPF_ANY);
	if (BPF_CORE_READ(f, f_mode) & FMODE_CREATED)
		submit(s, off);
	return 0;
}

/* mark_written marks a tracked fd as written; most calls find nothing and return. */
static __always_inline void mark_written(__s32 fd)
{
	__u64 key = (bpf_get_current_pid_tgid() & 0xffffffff00000000ULL) | (__u32)fd;
	struct write_fd *w = bpf_map_lookup_elem(&write_fds, &key);

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

SEC("tracepoint/syscalls/sys_enter_close")
int enter_close(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__s32 fd = ctx->args[0];
	__u64 key = (id & 0xffffffff00000000ULL) | (__u32)fd;
	struct write_fd *w = bpf_map_lookup_elem(&write_fds, &key);
	struct scratch *s;
	__u32 flags;
	long off;

	if (!w)
		return 0;
	if (!w->written) {
		bpf_map_delete_elem(&write_fds, &key);
		return 0;
	}
	flags = w->flags;
	bpf_map_delete_elem(&write_fds, &key);
	s = begin(FILE_OP_WRITE);
	if (!s)
		return 0;
	s->hdr.flags |= flags;
	off = file_path(s, 0, 0, fd_file(fd));
	if (off < 0)
		return 0;
	submit(s, off);
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

/* exit_path reports a successful rename, delete, chmod or chown under a watched path. It is
 * attached to the exit of every syscall that track_call records. */
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
	if (ctx->ret != 0 || c.op == FILE_OP_WRITE)
		return 0;
	s = begin(c.op);
	if (!s)
		return 0;
	s->hdr.flags |= c.flags;
	s->hdr.arg_mode = c.mode;
	s->hdr.arg_uid = c.uid;
	s->hdr.arg_gid = c.gid;
	if (!c.str[0]) {
		long n = file_path(s, 0, 0, fd_file(c.fd));

		if (n < 0)
			return 0;
		submit(s, n);
		return 0;
	}
	off = string_path(s, 0, off, c.dfd[0], c.str[0], &ok);
	if (c.op == FILE_OP_RENAME && off <= DATA_MASK)
		off = string_path(s, 1, off, c.dfd[1], c.str[1], &ok);
	if (ok)
		submit(s, off);
	return 0;
}
