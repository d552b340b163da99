// SPDX-License-Identifier: GPL-2.0
/* Process lifecycle: exec, fork and exit, written to the "events" ring buffer as the
 * records of process.h. Reserve or output failures (ring buffer full) are counted per CPU in
 * "drops" so user space can report them.
 *
 * exec and exit use the classic sched tracepoints. fork uses tp_btf because the classic
 * tracepoint's record only carries thread ids, which cannot tell a new process from a new
 * thread; tp_btf hands over the child task_struct. Where tp_btf is refused, a raw
 * tracepoint (handle_fork_raw) gets the same task_struct and writes the same records.
 *
 * exec walks the working directory and the executable in the kernel (path.h), because a
 * short-lived process is gone before user space could read /proc/<pid>/cwd or exe. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include "process.h"
#include "wakeup.h"
#include "path.h"

#define __stringify_1(x) #x
#define __stringify(x) __stringify_1(x)

/* The walked paths take data[0, WALK_AREA_BYTES); offsets in it are masked with WALK_MASK
 * (a literal, for the asm below: 2 * WALK_AREA_BYTES - 1). */
#define WALK_AREA_BYTES (2 * WALK_MAX_BYTES)
#define WALK_MASK 2047
_Static_assert(WALK_MASK == 2 * WALK_AREA_BYTES - 1, "WALK_MASK");

char LICENSE[] SEC("license") = "GPL";

/* Set by the loader before load. */
volatile const __u32 self_tgid = 0;     /* events of this process are not reported */
volatile const __u32 max_arg_bytes = 4096; /* cap on argv bytes copied per exec */

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

/* An exec record is built here, then copied into the ring buffer at its real length: a
 * fixed-size reservation of the largest record would waste most of the ring. */
struct exec_scratch {
	struct exec_event hdr;
	char data[WALK_AREA_BYTES + FILENAME_MAX_BYTES + ARGS_MAX_BYTES];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exec_scratch);
} exec_scratch SEC(".maps");

/* Keep the record types in BTF so bpf2go can generate Go types for them. */
const struct fork_event *unused_fork_event __attribute__((unused));
const struct exit_event *unused_exit_event __attribute__((unused));
const enum event_kind *unused_event_kind __attribute__((unused));
const enum exec_flag *unused_exec_flag __attribute__((unused));
const enum fd_kind *unused_fd_kind __attribute__((unused));

#define S_IFMT 0170000
#define S_IFSOCK 0140000
#define S_IFREG 0100000
#define S_IFCHR 0020000
#define S_IFIFO 0010000
#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10

static __always_inline void count_drop(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&drops, &zero);

	if (n)
		*n += 1; /* per-CPU slot; tracepoint programs do not migrate */
}

static __always_inline __u32 read_loginuid(struct task_struct *task)
{
	if (!bpf_core_field_exists(task->loginuid))
		return LOGINUID_UNSET;
	return BPF_CORE_READ(task, loginuid.val);
}

/* start_of is when task's process started (its fork), CLOCK_BOOTTIME: the thread-group
 * leader's start, which an exec from another thread inherits. With the pid it names one
 * process, where a pid alone may be reused. */
static __always_inline __u64 start_of(struct task_struct *task)
{
	return BPF_CORE_READ(task, group_leader, start_boottime);
}

/* session_of is task's session id: the pid (as the initial namespace numbers it) of its
 * session leader. */
static __always_inline __u32 session_of(struct task_struct *task)
{
	return BPF_CORE_READ(task, signal, pids[PIDTYPE_SID], numbers[0].nr);
}

/* read_euid_egid reads task's effective user and group ids. */
static __always_inline void read_euid_egid(struct task_struct *task, __u32 *euid, __u32 *egid)
{
	const struct cred *cred = BPF_CORE_READ(task, cred);

	*euid = BPF_CORE_READ(cred, euid.val);
	*egid = BPF_CORE_READ(cred, egid.val);
}

/* fd_kind says what task's descriptor fd is (enum fd_kind). */
static __always_inline __u8 fd_kind(struct task_struct *task, __u32 fd)
{
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *f = NULL;
	struct inode *inode;
	struct socket *sock;
	__u32 major;
	__u16 family;

	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return FD_KIND_NONE;
	fds = BPF_CORE_READ(fdt, fd);
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	if (!f)
		return FD_KIND_NONE;
	inode = BPF_CORE_READ(f, f_inode);
	switch (BPF_CORE_READ(inode, i_mode) & S_IFMT) {
	case S_IFREG:
		return FD_KIND_FILE;
	case S_IFIFO:
		return FD_KIND_PIPE;
	case S_IFCHR:
		/* The kernel's dev_t: major in the bits above 20. Terminals: 4 (virtual
		 * consoles, serial), 5 (tty, console, ptmx), 136-143 (pseudo-terminals). */
		major = BPF_CORE_READ(inode, i_rdev) >> 20;
		if (major == 4 || major == 5 || (major >= 136 && major <= 143))
			return FD_KIND_TTY;
		return FD_KIND_CHAR;
	case S_IFSOCK:
		sock = BPF_CORE_READ(f, private_data);
		family = BPF_CORE_READ(sock, sk, __sk_common.skc_family);
		if (family == AF_INET || family == AF_INET6)
			return FD_KIND_SOCKET_INET;
		if (family == AF_UNIX)
			return FD_KIND_SOCKET_UNIX;
		return FD_KIND_SOCKET;
	}
	return FD_KIND_OTHER;
}

static __always_inline void read_tty(struct task_struct *task, char *dst)
{
	struct tty_struct *tty = BPF_CORE_READ(task, signal, tty);

	dst[0] = '\0';
	if (tty)
		bpf_probe_read_kernel_str(dst, TTY_BYTES, &tty->name);
}

/* walk_step copies one component of a walk into the scratch, or crosses one mount; it
 * returns 1 to stop. A bpf_loop callback is verified once, where an unrolled loop would be
 * verified per step. */
static long walk_step(__u32 k, void *arg)
{
	struct path_walk *w = arg;
	struct exec_scratch *s;
	__u32 zero = 0;
	__u64 off;
	long n;

	if (path_walk_up(w) != PATH_WALK_NAME)
		return w->status != PATH_WALK_RUNNING;
	off = w->off;
	if (off - w->start >= WALK_MAX_BYTES)
		goto cut;
	s = bpf_map_lookup_elem(&exec_scratch, &zero);
	if (!s)
		goto cut;
	/* Mask where the verifier sees it: the compiler drops a mask it proves redundant. */
	asm volatile("%0 &= " __stringify(WALK_MASK) : "+r"(off));
	if (off >= WALK_AREA_BYTES)
		goto cut;
	n = bpf_probe_read_kernel_str(&s->data[off], WALK_NAME_BYTES, w->name);
	if (n <= 0 || off + n - w->start > WALK_MAX_BYTES)
		goto cut;
	path_walk_next(w, n);
	return 0;
cut:
	w->status = PATH_WALK_CUT;
	return 1;
}

/* walk_path writes dentry's path (path.h) at data[off] and returns how many bytes it
 * wrote; *complete says whether it reached the task's root. */
static __always_inline __u32 walk_path(struct task_struct *task, struct dentry *dentry,
				       struct vfsmount *vfsmnt, __u32 off, bool *complete)
{
	struct path_walk w;

	path_walk_init(&w, task, dentry, vfsmnt, off);
	bpf_loop(WALK_MAX_STEPS, walk_step, &w, 0);
	*complete = w.status == PATH_WALK_ROOT;
	if (w.off < off || w.off - off > WALK_MAX_BYTES)
		return 0;
	return w.off - off;
}

/* The inode's change time, as kernels before 6.11 (timespec64 __i_ctime, from 6.6) and
 * before 6.6 (timespec64 i_ctime) hold it. */
struct inode___pre611 {
	struct timespec64 __i_ctime;
} __attribute__((preserve_access_index));

struct inode___pre66 {
	struct timespec64 i_ctime;
} __attribute__((preserve_access_index));

/* read_exe_id sets the exe_* identity of e from the executable file exe: a change to the
 * file's content changes its change time, which user space cannot set. */
static __always_inline void read_exe_id(struct exec_event *e, struct file *exe)
{
	struct inode *inode = BPF_CORE_READ(exe, f_inode);
	__u64 sec, nsec;

	e->exe_dev = BPF_CORE_READ(inode, i_sb, s_dev);
	e->exe_ino = BPF_CORE_READ(inode, i_ino);
	e->exe_size = BPF_CORE_READ(inode, i_size);
	if (bpf_core_field_exists(inode->i_ctime_sec)) {
		sec = BPF_CORE_READ(inode, i_ctime_sec);
		nsec = BPF_CORE_READ(inode, i_ctime_nsec);
	} else if (bpf_core_field_exists(((struct inode___pre611 *)inode)->__i_ctime)) {
		sec = BPF_CORE_READ((struct inode___pre611 *)inode, __i_ctime.tv_sec);
		nsec = BPF_CORE_READ((struct inode___pre611 *)inode, __i_ctime.tv_nsec);
	} else {
		sec = BPF_CORE_READ((struct inode___pre66 *)inode, i_ctime.tv_sec);
		nsec = BPF_CORE_READ((struct inode___pre66 *)inode, i_ctime.tv_nsec);
	}
	/* From 6.13 the top bit of i_ctime_nsec flags a ctime someone read (multigrain
	 * timestamps); nanoseconds need 30 bits. */
	e->exe_ctime_ns = sec * 1000000000ULL + (nsec & ((1U << 30) - 1));
}

/* leaf_name writes dentry's own name at data[off] and returns the bytes written: all that
 * names a file whose dentry has no parent (a memfd's "memfd:<name>"). */
static __always_inline __u32 leaf_name(struct dentry *dentry, __u32 off)
{
	struct exec_scratch *s;
	__u32 zero = 0;
	__u64 o = off;
	long n;

	s = bpf_map_lookup_elem(&exec_scratch, &zero);
	if (!s)
		return 0;
	asm volatile("%0 &= " __stringify(WALK_MASK) : "+r"(o));
	if (o > WALK_AREA_BYTES - WALK_NAME_BYTES)
		return 0;
	n = bpf_probe_read_kernel_str(&s->data[o], WALK_NAME_BYTES, BPF_CORE_READ(dentry, d_name.name));
	return n > 0 ? n : 0;
}

/* walk_cwd_and_exe writes the working directory, then the executable, at data[0] and
 * returns the bytes written. */
static __always_inline __u32 walk_cwd_and_exe(struct exec_event *e, struct task_struct *task)
{
	struct file *exe = BPF_CORE_READ(task, mm, exe_file);
	bool complete = false;
	__u32 cwd_len, exe_len = 0;

	cwd_len = walk_path(task, BPF_CORE_READ(task, fs, pwd.dentry), BPF_CORE_READ(task, fs, pwd.mnt), 0,
			    &complete);
	if (!complete)
		e->flags |= EXEC_FLAG_CWD_TRUNCATED;
	complete = false;
	if (exe) {
		read_exe_id(e, exe);
		if (BPF_CORE_READ(exe, f_inode, __i_nlink) == 0)
			e->flags |= EXEC_FLAG_EXE_UNLINKED;
		exe_len = walk_path(task, BPF_CORE_READ(exe, f_path.dentry), BPF_CORE_READ(exe, f_path.mnt), cwd_len,
				    &complete);
		if (!complete && exe_len == 0)
			exe_len = leaf_name(BPF_CORE_READ(exe, f_path.dentry), cwd_len);
	} else {
		e->exe_dev = 0;
		e->exe_ino = 0;
		e->exe_size = 0;
		e->exe_ctime_ns = 0;
	}
	if (!complete)
		e->flags |= EXEC_FLAG_EXE_TRUNCATED;
	e->cwd_len = cwd_len;
	e->exe_len = exe_len;
	return cwd_len + exe_len;
}

/* read_args copies argv from the new image's stack to dst, at most cap bytes, and returns
 * how many bytes it copied. */
static __always_inline __u32 read_args(struct exec_event *e, char *dst, struct task_struct *task)
{
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	__u64 start = BPF_CORE_READ(mm, arg_start);
	__u64 end = BPF_CORE_READ(mm, arg_end);
	__u64 cap = max_arg_bytes;
	__u64 len;

	if (end <= start)
		return 0;
	len = end - start;
	e->args_size = len;
	if (cap > ARGS_MAX_BYTES)
		cap = ARGS_MAX_BYTES;
	if (len > cap) {
		len = cap;
		e->flags |= EXEC_FLAG_ARGS_TRUNCATED;
	}
	/* Restate the bound on the register the helper gets, for the verifier. */
	len &= (ARGS_MAX_BYTES << 1) - 1;
	if (len > ARGS_MAX_BYTES)
		return 0;
	if (bpf_probe_read_user(dst, len, (void *)start) < 0) {
		e->flags |= EXEC_FLAG_ARGS_UNREADABLE;
		return 0;
	}
	return len;
}

SEC("tracepoint/sched/sched_process_exec")
int handle_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	__u32 zero = 0;
	struct exec_scratch *s;
	struct exec_event *e;
	struct task_struct *task;
	__u64 ugid, total, walked;
	long n;
	__u32 fn_len;
	char *fn;

	if (tgid == self_tgid)
		return 0;
	s = bpf_map_lookup_elem(&exec_scratch, &zero);
	if (!s)
		return 0;
	e = &s->hdr;
	task = (struct task_struct *)bpf_get_current_task();
	ugid = bpf_get_current_uid_gid();

	e->kind = EVENT_KIND_EXEC;
	e->flags = 0;
	e->ktime_ns = bpf_ktime_get_boot_ns();
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->pid = tgid;
	e->tid = (__u32)id;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = (__u32)ugid;
	e->gid = ugid >> 32;
	e->loginuid = read_loginuid(task);
	e->args_size = 0;
	e->start_ns = start_of(task);
	e->parent_start_ns = start_of(BPF_CORE_READ(task, real_parent));
	read_euid_egid(task, &e->euid, &e->egid);
	e->sid = session_of(task);
	e->stdin_kind = fd_kind(task, 0);
	e->stdout_kind = fd_kind(task, 1);
	e->_pad = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	read_tty(task, e->tty);

	walked = walk_cwd_and_exe(e, task);
	asm volatile("" : "+r"(walked)); /* check the register the pointer math gets */
	if (walked > WALK_AREA_BYTES) { /* cannot happen; keep the event, without the paths */
		walked = 0;
		e->cwd_len = 0;
		e->exe_len = 0;
		e->flags |= EXEC_FLAG_CWD_TRUNCATED | EXEC_FLAG_EXE_TRUNCATED;
	}
	fn = s->data + walked;

	/* __data_loc: the low 16 bits are the string's offset from the record's start. */
	n = bpf_probe_read_kernel_str(fn, FILENAME_MAX_BYTES,
				      (void *)ctx + (ctx->__data_loc_filename & 0xffff));
	fn_len = n > 0 ? n : 0;
	if (fn_len >= FILENAME_MAX_BYTES)
		e->flags |= EXEC_FLAG_FILENAME_TRUNCATED;
	if (fn_len > FILENAME_MAX_BYTES)
		fn_len = FILENAME_MAX_BYTES;
	e->filename_len = fn_len;
	e->args_len = read_args(e, fn + fn_len, task);

	total = sizeof(*e) + walked + fn_len + e->args_len;
	if (total > sizeof(*s))
		return 0;
	if (bpf_ringbuf_output(&events, s, total, output_wakeup_flags(&events, total)) < 0)
		count_drop();
	return 0;
}

/* fork_record writes the fork record of child, created by parent; the task fields are read
 * with GET (a direct load for tp_btf arguments, BPF_CORE_READ for others). */
#define FORK_DIRECT(task, field) ((task)->field)
#define FORK_PROBE(task, field) BPF_CORE_READ(task, field)
#define FORK_RECORD(parent, child, GET)                                                            \
	do {                                                                                       \
		struct fork_event *e;                                                              \
		__u64 ugid;                                                                        \
		if (GET(child, pid) != GET(child, tgid)) /* a new thread, not a new process */     \
			return 0;                                                                  \
		if (GET(parent, tgid) == self_tgid)                                                \
			return 0;                                                                  \
		e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);                                   \
		if (!e) {                                                                          \
			count_drop();                                                              \
			return 0;                                                                  \
		}                                                                                  \
		ugid = bpf_get_current_uid_gid();                                                  \
		e->kind = EVENT_KIND_FORK;                                                         \
		e->parent_pid = BPF_CORE_READ(child, real_parent, tgid);                           \
		e->ktime_ns = bpf_ktime_get_boot_ns();                                             \
		e->cgroup_id = bpf_get_current_cgroup_id();                                        \
		e->child_pid = GET(child, tgid);                                                   \
		e->uid = (__u32)ugid;                                                              \
		e->gid = ugid >> 32;                                                               \
		e->loginuid = read_loginuid(child);                                                \
		e->child_start_ns = GET(child, start_boottime);                                    \
		e->parent_start_ns = start_of(BPF_CORE_READ(child, real_parent));                   \
		read_euid_egid((struct task_struct *)bpf_get_current_task(), &e->euid, &e->egid);   \
		e->sid = session_of((struct task_struct *)bpf_get_current_task());                 \
		e->_pad = 0;                                                                       \
		bpf_ringbuf_submit(e, wakeup_flags(&events, sizeof(*e)));                          \
		return 0;                                                                          \
	} while (0)

SEC("tp_btf/sched_process_fork")
int BPF_PROG(handle_fork, struct task_struct *parent, struct task_struct *child)
{
	FORK_RECORD(parent, child, FORK_DIRECT);
}

/* handle_fork_raw is handle_fork for kernels that refuse tp_btf programs: a raw tracepoint,
 * whose task arguments are read through bpf_probe_read_kernel. The records are the same. */
SEC("raw_tracepoint/sched_process_fork")
int handle_fork_raw(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *parent = (struct task_struct *)ctx->args[0];
	struct task_struct *child = (struct task_struct *)ctx->args[1];

	FORK_RECORD(parent, child, FORK_PROBE);
}

/* process_exited reports whether the exiting thread is the last of its process. Kernels
 * that lack the tracepoint's group_dead field fall back to the thread-group leader's exit. */
static __always_inline bool process_exited(struct trace_event_raw_sched_process_exit *ctx, __u64 id)
{
	if (bpf_core_field_exists(ctx->group_dead))
		return ctx->group_dead;
	return (__u32)id == (__u32)(id >> 32);
}

SEC("tracepoint/sched/sched_process_exit")
int handle_exit(struct trace_event_raw_sched_process_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct task_struct *task;
	struct exit_event *e;
	__u64 ugid;

	if (tgid == self_tgid || !process_exited(ctx, id))
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop();
		return 0;
	}
	task = (struct task_struct *)bpf_get_current_task();
	ugid = bpf_get_current_uid_gid();
	e->kind = EVENT_KIND_EXIT;
	e->pid = tgid;
	e->ktime_ns = bpf_ktime_get_boot_ns();
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->exit_code = BPF_CORE_READ(task, exit_code);
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->uid = (__u32)ugid;
	e->gid = ugid >> 32;
	e->loginuid = read_loginuid(task);
	e->_pad = 0;
	e->start_ns = start_of(task);
	read_euid_egid(task, &e->euid, &e->egid);
	e->sid = session_of(task);
	e->_pad2 = 0;
	bpf_ringbuf_submit(e, wakeup_flags(&events, sizeof(*e)));
	return 0;
}
