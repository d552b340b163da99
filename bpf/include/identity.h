/* Records the identity programs (identity.bpf.c) write into the "events" ring buffer.
 * User space (collectors/identity) decodes them with the Go types bpf2go generates from
 * these definitions, so a change here is a change of that contract: run go generate. */
#ifndef CRUMBS_IDENTITY_H
#define CRUMBS_IDENTITY_H

#define COMM_BYTES 16
/* Sizes of the PAM items kept per handle; longer values are cut (and NUL terminated). */
#define PAM_SERVICE_BYTES 64
#define PAM_NAME_BYTES 64
#define PAM_RHOST_BYTES 128
#define PAM_TTY_BYTES 32
#define EXEC_PATH_BYTES 256

/* Item types of pam_set_item(3), from <security/_pam_types.h>; these numbers are ABI. */
#define PAM_ITEM_SERVICE 1
#define PAM_ITEM_USER 2
#define PAM_ITEM_TTY 3
#define PAM_ITEM_RHOST 4
#define PAM_ITEM_RUSER 8

#define MODE_SETUID 04000
#define MODE_SETGID 02000

enum record_kind {
	RECORD_PAM = 1,
	RECORD_CREDS = 2,
	RECORD_SETUID_EXEC = 3,
};

/* The PAM call a pam_event reports. */
enum pam_op {
	PAM_OP_AUTHENTICATE = 1,
	PAM_OP_OPEN_SESSION = 2,
	PAM_OP_CLOSE_SESSION = 3,
	PAM_OP_ACCT_MGMT = 4,
};

/* pam_items are the items of one PAM handle as the application set them, seen by probing
 * pam_start / pam_start_confdir (service, user) and pam_set_item (every later change).
 * Authentication tokens are never read. */
struct pam_items {
	char service[PAM_SERVICE_BYTES];
	char user[PAM_NAME_BYTES];
	char ruser[PAM_NAME_BYTES];
	char rhost[PAM_RHOST_BYTES];
	char tty[PAM_TTY_BYTES];
};

/* pam_event: pam_authenticate, pam_acct_mgmt, pam_open_session or pam_close_session
 * returned rc. known is 0 when the handle was opened before the programs were attached,
 * so its items are unknown. */
struct pam_event {
	__u32 kind;
	__u32 op;
	__u64 ktime_ns; /* CLOCK_BOOTTIME */
	__u64 cgroup_id;
	__u32 pid; /* tgid */
	__u32 tid;
	__u32 uid;
	__u32 gid;
	__s32 rc;
	__u32 known;
	char comm[COMM_BYTES];
	struct pam_items items;
};

/* cred_ids are a task's user and group ids. */
struct cred_ids {
	__u32 uid;
	__u32 euid;
	__u32 suid;
	__u32 fsuid;
	__u32 gid;
	__u32 egid;
	__u32 sgid;
	__u32 fsgid;
};

/* creds_event: a setuid-family syscall (syscall_nr) changed the calling thread's
 * credentials, or failed (ret < 0). */
struct creds_event {
	__u32 kind;
	__u32 syscall_nr;
	__u64 ktime_ns;
	__u64 cgroup_id;
	__s64 ret;
	__u32 pid;
	__u32 tid;
	__u32 ppid;
	__u32 _pad;
	struct cred_ids old;
	struct cred_ids new;
	char comm[COMM_BYTES];
};

/* setuid_exec_event: an exec of a file with the set-user-ID or set-group-ID bit. creds are
 * the new image's credentials: uid is still the caller's, euid the file owner's when the bit
 * took effect. */
struct setuid_exec_event {
	__u32 kind;
	__u32 mode; /* i_mode of the executable */
	__u64 ktime_ns;
	__u64 cgroup_id;
	__u32 pid;
	__u32 ppid;
	__u32 file_uid;
	__u32 file_gid;
	__u32 path_len;
	__u32 _pad;
	struct cred_ids creds;
	char comm[COMM_BYTES];
	char path[EXEC_PATH_BYTES];
};

#endif
