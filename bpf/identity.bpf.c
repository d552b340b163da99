// SPDX-License-Identifier: GPL-2.0
/* Identity: PAM authentications and sessions, setuid-family credential changes and execs
 * of set-user-ID / set-group-ID files, written to the "events" ring buffer as the records
 * of identity.h. Reserve failures (ring buffer full) are counted per CPU in "drops".
 *
 * PAM: Linux-PAM's struct pam_handle is private and its layout is not an ABI, so its fields
 * are never read at offsets. Instead the programs follow the public, versioned API: the
 * service and user passed to pam_start / pam_start_confdir, and every pam_set_item of
 * PAM_SERVICE, PAM_USER, PAM_RUSER, PAM_RHOST and PAM_TTY (pam_get_user also sets PAM_USER
 * through pam_set_item), kept per (process, handle) until pam_end. The result of
 * pam_authenticate, pam_acct_mgmt, pam_open_session and pam_close_session comes from their
 * uretprobes. Authentication tokens are never read.
 *
 * Credentials: sys_enter of a setuid-family syscall saves the thread's credentials, its
 * sys_exit compares them with the new ones; a change or a failure is reported. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include "arch.h" /* arm64: the user_pt_regs BPF_KPROBE reads a uprobe's arguments from */
#include "identity.h"
#include "wakeup.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by the loader before load. */
volatile const __u32 self_tgid = 0; /* events of this process are not reported */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20); /* replaced by the loader */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

struct handle_key {
	__u32 tgid;
	__u32 _pad;
	__u64 pamh;
};

/* The items of every open PAM handle. LRU: a process that exits without pam_end must not
 * leak its entry. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct handle_key);
	__type(value, struct pam_items);
} pam_handles SEC(".maps");

/* pam_start arguments, from its entry to its return, per thread. */
struct start_args {
	__u64 service;
	__u64 user;
	__u64 pamhp;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct start_args);
} pam_starts SEC(".maps");

/* A PAM call in progress, per thread. */
struct pam_call {
	__u64 pamh;
	__u32 op;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct pam_call);
} pam_calls SEC(".maps");

/* Credentials before a setuid-family syscall, per thread. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct cred_ids);
} creds_before SEC(".maps");

static const struct pam_items empty_items;

/* Keep the record types in BTF so bpf2go can generate Go types for them. */
const struct pam_event *unused_pam_event __attribute__((unused));
const struct creds_event *unused_creds_event __attribute__((unused));
const struct setuid_exec_event *unused_setuid_exec_event __attribute__((unused));
const enum record_kind *unused_record_kind __attribute__((unused));
const enum pam_op *unused_pam_op __attribute__((unused));

static __always_inline void count_drop(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&drops, &zero);

	if (n)
		*n += 1; /* per-CPU slot; these programs do not migrate */
}

static __always_inline bool is_self(__u64 id)
{
	return (__u32)(id >> 32) == self_tgid;
}

/* read_str copies the user string at src into dst, or makes dst empty. */
static __always_inline void read_str(char *dst, __u32 size, const void *src)
{
	if (!src || bpf_probe_read_user_str(dst, size, src) < 0)
		dst[0] = '\0';
}

static __always_inline struct pam_items *handle_items(__u32 tgid, __u64 pamh, bool create)
{
	struct handle_key key = { .tgid = tgid, .pamh = pamh };
	struct pam_items *items = bpf_map_lookup_elem(&pam_handles, &key);

	if (items || !create)
		return items;
	bpf_map_update_elem(&pam_handles, &key, &empty_items, BPF_NOEXIST);
	return bpf_map_lookup_elem(&pam_handles, &key);
}

static __always_inline int start_enter(__u64 service, __u64 user, __u64 pamhp)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct start_args args = { .service = service, .user = user, .pamhp = pamhp };

	if (is_self(id))
		return 0;
	bpf_map_update_elem(&pam_starts, &id, &args, BPF_ANY);
	return 0;
}

SEC("uprobe/pam_start")
int BPF_KPROBE(pam_start_enter, const char *service, const char *user, void *conv, void **pamhp)
{
	return start_enter((__u64)service, (__u64)user, (__u64)pamhp);
}

SEC("uprobe/pam_start_confdir")
int BPF_KPROBE(pam_start_confdir_enter, const char *service, const char *user, void *conv,
	       const char *confdir, void **pamhp)
{
	return start_enter((__u64)service, (__u64)user, (__u64)pamhp);
}

/* pam_start_exit: on success, the handle's items start as pam_start's arguments. The
 * caller still owns those strings, so they are read here rather than at entry. */
SEC("uretprobe/pam_start")
int BPF_KRETPROBE(pam_start_exit, int rc)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct start_args *args = bpf_map_lookup_elem(&pam_starts, &id);
	struct pam_items *items;
	struct handle_key key = { .tgid = id >> 32 };
	__u64 pamh = 0;

	if (!args)
		return 0;
	if (rc != 0 || bpf_probe_read_user(&pamh, sizeof(pamh), (void *)args->pamhp) < 0 || !pamh)
		goto out;
	key.pamh = pamh;
	bpf_map_update_elem(&pam_handles, &key, &empty_items, BPF_ANY);
	items = bpf_map_lookup_elem(&pam_handles, &key);
	if (!items)
		goto out;
	read_str(items->service, sizeof(items->service), (void *)args->service);
	read_str(items->user, sizeof(items->user), (void *)args->user);
out:
	bpf_map_delete_elem(&pam_starts, &id);
	return 0;
}

SEC("uprobe/pam_set_item")
int BPF_KPROBE(pam_set_item_enter, void *pamh, int type, const void *item)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct pam_items *items;

	if (is_self(id) || !pamh)
		return 0;
	if (type != PAM_ITEM_SERVICE && type != PAM_ITEM_USER && type != PAM_ITEM_RUSER &&
	    type != PAM_ITEM_RHOST && type != PAM_ITEM_TTY)
		return 0; /* never the authentication tokens */
	items = handle_items(id >> 32, (__u64)pamh, true);
	if (!items)
		return 0;
	switch (type) {
	case PAM_ITEM_SERVICE:
		read_str(items->service, sizeof(items->service), item);
		break;
	case PAM_ITEM_USER:
		read_str(items->user, sizeof(items->user), item);
		break;
	case PAM_ITEM_RUSER:
		read_str(items->ruser, sizeof(items->ruser), item);
		break;
	case PAM_ITEM_RHOST:
		read_str(items->rhost, sizeof(items->rhost), item);
		break;
	case PAM_ITEM_TTY:
		read_str(items->tty, sizeof(items->tty), item);
		break;
	}
	return 0;
}

SEC("uprobe/pam_end")
int BPF_KPROBE(pam_end_enter, void *pamh)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct handle_key key = { .tgid = id >> 32, .pamh = (__u64)pamh };

	bpf_map_delete_elem(&pam_handles, &key);
	return 0;
}

static __always_inline int call_enter(__u64 pamh, __u32 op)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct pam_call call = { .pamh = pamh, .op = op };

	if (is_self(id))
		return 0;
	bpf_map_update_elem(&pam_calls, &id, &call, BPF_ANY);
	return 0;
}

static __always_inline int call_exit(int rc)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct pam_call *call = bpf_map_lookup_elem(&pam_calls, &id);
	struct pam_items *items;
	struct pam_event *e;
	__u64 ugid;

	if (!call)
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop();
		goto out;
	}
	ugid = bpf_get_current_uid_gid();
	e->kind = RECORD_PAM;
	e->op = call->op;
	e->ktime_ns = bpf_ktime_get_boot_ns();
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->uid = (__u32)ugid;
	e->gid = ugid >> 32;
	e->rc = rc;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	items = handle_items(id >> 32, call->pamh, false);
	e->known = items != 0;
	if (items)
		bpf_probe_read_kernel(&e->items, sizeof(e->items), items);
	else
		bpf_probe_read_kernel(&e->items, sizeof(e->items), &empty_items);
	bpf_ringbuf_submit(e, wakeup_flags(&events, sizeof(*e)));
out:
	bpf_map_delete_elem(&pam_calls, &id);
	return 0;
}

SEC("uprobe/pam_authenticate")
int BPF_KPROBE(pam_authenticate_enter, void *pamh)
{
	return call_enter((__u64)pamh, PAM_OP_AUTHENTICATE);
}

SEC("uprobe/pam_acct_mgmt")
int BPF_KPROBE(pam_acct_mgmt_enter, void *pamh)
{
	return call_enter((__u64)pamh, PAM_OP_ACCT_MGMT);
}

SEC("uprobe/pam_open_session")
int BPF_KPROBE(pam_open_session_enter, void *pamh)
{
	return call_enter((__u64)pamh, PAM_OP_OPEN_SESSION);
}

SEC("uprobe/pam_close_session")
int BPF_KPROBE(pam_close_session_enter, void *pamh)
{
	return call_enter((__u64)pamh, PAM_OP_CLOSE_SESSION);
}

/* (BPF_KPROBE/BPF_KRETPROBE read the same pt_regs a uprobe gets.) One return program serves the four calls: the call in progress says which it was. */
SEC("uretprobe/pam_call")
int BPF_KRETPROBE(pam_call_exit, int rc)
{
	return call_exit(rc);
}

static __always_inline void read_creds(struct cred_ids *c)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	const struct cred *cred = BPF_CORE_READ(task, cred);

	c->uid = BPF_CORE_READ(cred, uid.val);
	c->euid = BPF_CORE_READ(cred, euid.val);
	c->suid = BPF_CORE_READ(cred, suid.val);
	c->fsuid = BPF_CORE_READ(cred, fsuid.val);
	c->gid = BPF_CORE_READ(cred, gid.val);
	c->egid = BPF_CORE_READ(cred, egid.val);
	c->sgid = BPF_CORE_READ(cred, sgid.val);
	c->fsgid = BPF_CORE_READ(cred, fsgid.val);
}

/* The common layout of the syscalls:sys_enter_* and sys_exit_* tracepoint records. */
struct sys_enter_record {
	__u64 common;
	__s32 nr;
	__u32 _pad;
	__u64 args[6];
};

struct sys_exit_record {
	__u64 common;
	__s32 nr;
	__u32 _pad;
	__s64 ret;
};

/* Attached to sys_enter of every setuid-family syscall. */
SEC("tracepoint/syscalls/sys_enter_setuid")
int creds_enter(struct sys_enter_record *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct cred_ids c = {};

	if (is_self(id))
		return 0;
	read_creds(&c);
	bpf_map_update_elem(&creds_before, &id, &c, BPF_ANY);
	return 0;
}

static __always_inline bool creds_equal(const struct cred_ids *a, const struct cred_ids *b)
{
	return a->uid == b->uid && a->euid == b->euid && a->suid == b->suid && a->fsuid == b->fsuid &&
	       a->gid == b->gid && a->egid == b->egid && a->sgid == b->sgid && a->fsgid == b->fsgid;
}

/* Attached to sys_exit of every setuid-family syscall. */
SEC("tracepoint/syscalls/sys_exit_setuid")
int creds_exit(struct sys_exit_record *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct cred_ids *old = bpf_map_lookup_elem(&creds_before, &id);
	struct cred_ids now = {};
	struct creds_event *e;
	struct task_struct *task;

	if (!old)
		return 0;
	read_creds(&now);
	/* setfsuid and setfsgid return the previous id, never an error. */
	if (ctx->ret >= 0 && creds_equal(old, &now))
		goto out;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop();
		goto out;
	}
	task = (struct task_struct *)bpf_get_current_task();
	e->kind = RECORD_CREDS;
	e->syscall_nr = ctx->nr;
	e->ktime_ns = bpf_ktime_get_boot_ns();
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->ret = ctx->ret;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->_pad = 0;
	e->old = *old;
	e->new = now;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, wakeup_flags(&events, sizeof(*e)));
out:
	bpf_map_delete_elem(&creds_before, &id);
	return 0;
}

SEC("tracepoint/sched/sched_process_exec")
int setuid_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct task_struct *task;
	struct inode *inode;
	struct setuid_exec_event *e;
	__u32 mode;
	long n;

	if (is_self(id))
		return 0;
	task = (struct task_struct *)bpf_get_current_task();
	inode = BPF_CORE_READ(task, mm, exe_file, f_inode);
	if (!inode)
		return 0;
	mode = BPF_CORE_READ(inode, i_mode);
	if (!(mode & (MODE_SETUID | MODE_SETGID)))
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop();
		return 0;
	}
	e->kind = RECORD_SETUID_EXEC;
	e->mode = mode;
	e->ktime_ns = bpf_ktime_get_boot_ns();
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->pid = id >> 32;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->file_uid = BPF_CORE_READ(inode, i_uid.val);
	e->file_gid = BPF_CORE_READ(inode, i_gid.val);
	e->_pad = 0;
	read_creds(&e->creds);
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	/* __data_loc: the low 16 bits are the string's offset from the record's start. */
	n = bpf_probe_read_kernel_str(e->path, sizeof(e->path),
				      (void *)ctx + (ctx->__data_loc_filename & 0xffff));
	e->path_len = n > 0 ? n : 0;
	bpf_ringbuf_submit(e, wakeup_flags(&events, sizeof(*e)));
	return 0;
}
