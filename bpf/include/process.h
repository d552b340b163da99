/* Records the process programs (process.bpf.c) write into the "events" ring buffer.
 * User space (collectors/process) decodes them with the Go types bpf2go generates from
 * these definitions, so a change here is a change of that contract: run go generate. */
#ifndef CRUMBS_PROCESS_H
#define CRUMBS_PROCESS_H

/* Largest filename and argv the exec program copies. The per-CPU scratch value holding
 * these and the walked paths must stay under 32 KiB, the kernel's limit for a per-CPU map
 * value. */
#define FILENAME_MAX_BYTES 4096
#define ARGS_MAX_BYTES 16384

/* The working directory and the executable are each walked at most WALK_MAX_BYTES long
 * (components and their NULs), WALK_MAX_STEPS steps (a component or a mount crossed) deep;
 * WALK_NAME_BYTES is the longest component (NAME_MAX and its NUL). */
#define WALK_MAX_BYTES 512
#define WALK_MAX_STEPS 64
#define WALK_NAME_BYTES 256

#define COMM_BYTES 16
#define TTY_BYTES 64

/* Unset audit login uid ((uid_t)-1). */
#define LOGINUID_UNSET 0xffffffff

enum event_kind {
	EVENT_KIND_EXEC = 1,
	EVENT_KIND_FORK = 2,
	EVENT_KIND_EXIT = 3,
};

enum exec_flag {
	/* argv was longer than max_arg_bytes and was cut. */
	EXEC_FLAG_ARGS_TRUNCATED = 1,
	/* argv could not be read from the new process's memory. */
	EXEC_FLAG_ARGS_UNREADABLE = 2,
	/* The filename was longer than FILENAME_MAX_BYTES and was cut. */
	EXEC_FLAG_FILENAME_TRUNCATED = 4,
	/* The working directory was not walked to the task's root (too long, too deep,
	 * unreadable, or outside that root): cwd_len bytes are a part of it at most. */
	EXEC_FLAG_CWD_TRUNCATED = 8,
	/* The same for the executable (exe_len). A memfd or a deleted file's pseudo path
	 * ends here too. */
	EXEC_FLAG_EXE_TRUNCATED = 16,
	/* The executable has no name left in any directory (i_nlink 0): a memfd, or a file
	 * deleted before it was executed through a descriptor (fexecve). */
	EXEC_FLAG_EXE_UNLINKED = 32,
};

/* What a standard descriptor (fd 0, 1) of a process is at exec. A shell whose input or
 * output is an internet socket is what a reverse shell looks like. */
enum fd_kind {
	FD_KIND_NONE = 0, /* closed, or not read */
	FD_KIND_FILE = 1,
	FD_KIND_PIPE = 2,
	FD_KIND_TTY = 3,  /* a terminal: virtual console, serial, pseudo-terminal */
	FD_KIND_CHAR = 4, /* another character device, such as /dev/null */
	FD_KIND_SOCKET_INET = 5,
	FD_KIND_SOCKET_UNIX = 6,
	FD_KIND_SOCKET = 7, /* a socket of another family */
	FD_KIND_OTHER = 8,
};

/* exec_event is followed in the ring buffer by cwd_len bytes of the working directory and
 * exe_len bytes of the executable (each walked from current->fs->pwd and mm->exe_file up to
 * the task's root: components leaf first, each NUL terminated; none is the root itself),
 * then filename_len bytes of filename (NUL terminated; as passed to execve, so possibly
 * relative to the working directory) and args_len bytes of argv (NUL separated, as in
 * mm->arg_start..arg_end). */
struct exec_event {
	__u32 kind;
	__u32 flags;
	__u64 ktime_ns; /* CLOCK_BOOTTIME */
	__u64 cgroup_id;
	__u32 pid; /* tgid */
	__u32 tid;
	__u32 ppid; /* real_parent->tgid */
	__u32 uid;
	__u32 gid;
	__u32 loginuid;
	__u32 filename_len;
	__u32 args_len;
	__u64 args_size; /* arg_end - arg_start: argv's full size before the cap */
	char comm[COMM_BYTES];
	char tty[TTY_BYTES];
	__u16 cwd_len;
	__u16 exe_len;
	__u32 exe_dev; /* the executable's inode: device (kernel encoding), inode number, */
	__u64 exe_ino; /* size and change time, which key the sha256 cache (0: unknown) */
	__u64 exe_size;
	__u64 exe_ctime_ns;
	__u64 start_ns;        /* the process's start (its fork), CLOCK_BOOTTIME */
	__u64 parent_start_ns; /* the parent's, likewise */
	__u32 euid;            /* effective ids, after the exec (a setuid binary's owner) */
	__u32 egid;
	__u32 sid;     /* session id: the pid of the session leader */
	__u8 stdin_kind;  /* enum fd_kind of fd 0 */
	__u8 stdout_kind; /* enum fd_kind of fd 1 */
	__u16 _pad;
};

/* fork_event: a new process (not a thread) was created. */
struct fork_event {
	__u32 kind;
	__u32 parent_pid; /* child->real_parent->tgid */
	__u64 ktime_ns;
	__u64 cgroup_id;
	__u32 child_pid;
	__u32 uid;
	__u32 gid;
	__u32 loginuid;
	__u64 child_start_ns;  /* CLOCK_BOOTTIME */
	__u64 parent_start_ns; /* likewise */
	__u32 euid;
	__u32 egid;
	__u32 sid;
	__u32 _pad;
};

/* exit_event: the last thread of a process exited. */
struct exit_event {
	__u32 kind;
	__u32 pid; /* tgid */
	__u64 ktime_ns;
	__u32 ppid;
	__u32 exit_code; /* task->exit_code: status << 8 | terminating signal */
	__u64 cgroup_id;
	__u32 uid;
	__u32 gid;
	__u32 loginuid;
	__u32 _pad;
	__u64 start_ns; /* CLOCK_BOOTTIME */
	__u32 euid;
	__u32 egid;
	__u32 sid;
	__u32 _pad2;
};

#endif
