/* Records the file programs (file.bpf.c) write into the "events" ring buffer. User space
 * (collectors/file) decodes them with the Go types bpf2go generates from these definitions,
 * so a change here is a change of that contract: run go generate. */
#ifndef CRUMBS_FILE_H
#define CRUMBS_FILE_H

#define COMM_BYTES 16

/* A path's components are copied at most NAME_BYTES each, at most PATH_DEPTH deep. */
#define NAME_BYTES 256
#define PATH_DEPTH 48
/* A path string a process passed is copied at most PATH_BYTES. */
#define PATH_BYTES 4096
/* Key of the watched_tops map: a path's first component, NUL padded, cut at TOP_BYTES-1. */
#define TOP_BYTES 32
/* Of the acting process's argv, at most ARGS_BYTES are copied (ARGS_MASK = 2*ARGS_BYTES-1). */
#define ARGS_BYTES 1024
#define ARGS_MASK 2047

/* Sensitive reads: the kernel filter's key is the parent directory's name, "/" and the
 * file's name, each cut at READ_NAME_BYTES-1 bytes (user space matches the full globs). */
#define READ_NAME_BYTES 32
#define READ_KEY_BYTES (2 * READ_NAME_BYTES)

/* The record's data area: two paths, each a walked directory plus a string. Offsets into it
 * are masked with DATA_MASK; DATA_SLACK leaves room for the longest single copy past it. */
#define DATA_MASK 16383
#define DATA_SLACK PATH_BYTES
#define DATA_BYTES (DATA_MASK + 1 + DATA_SLACK)

enum file_op {
	FILE_OP_CREATE = 1,
	FILE_OP_WRITE = 2,
	FILE_OP_RENAME = 3,
	FILE_OP_DELETE = 4,
	FILE_OP_CHMOD = 5,
	FILE_OP_CHOWN = 6,
	/* A file of the sensitive-read filter opened for reading (once per process and file). */
	FILE_OP_READ = 7,
	/* The security.capability attribute set (file capabilities, as setcap gives). */
	FILE_OP_SETCAP = 8,
	/* Access and modification times set to given values (not "now"): touch -d or -r. */
	FILE_OP_UTIMES = 9,
};

enum file_flag {
	/* A walked path was deeper than PATH_DEPTH or longer than the data area: cut. */
	FILE_FLAG_TRUNCATED = 1,
	/* The kernel filter could not tell the path's first component; user space decides. */
	FILE_FLAG_UNFILTERED = 2,
	/* unlinkat with AT_REMOVEDIR: a directory was removed. */
	FILE_FLAG_DIR = 4,
	/* The file was opened with O_TRUNC (a write even without write calls). */
	FILE_FLAG_TRUNC = 8,
	/* The file was opened with O_APPEND (counted as written: its writer may be a child
	 * that inherited the descriptor, whose writes are not followed). */
	FILE_FLAG_APPEND = 16,
	/* Reported when its process exited, not at a close: the executable and argv are gone
	 * (the command line is the process's name). */
	FILE_FLAG_AT_EXIT = 32,
};

/* file_event is followed in the ring buffer by the two paths in data order: path[i] is
 * dir_len[i] bytes of the directory's components, leaf first, each NUL terminated
 * (dir_depth[i] of them; none means the root), then str_len[i] bytes of the string the
 * process passed (NUL terminated; empty for paths taken from an open file). The path is the
 * string resolved against the directory, or the directory itself when the string is empty.
 * Then exe_len bytes of the acting process's executable (components, leaf first) and
 * args_len bytes of its argv. */
struct file_event {
	__u32 op;
	__u32 flags;
	__u64 ktime_ns; /* CLOCK_BOOTTIME */
	__u64 cgroup_id;
	__u32 pid; /* tgid */
	__u32 tid;
	__u32 uid;
	__u32 gid;
	__u32 arg_mode; /* chmod: the mode asked for */
	__u32 arg_uid;  /* chown: the owner asked for ((uid_t)-1: unchanged) */
	__u32 arg_gid;
	__u32 dir_depth[2];
	__u32 dir_len[2];
	__u32 str_len[2];
	__u32 exe_depth; /* the acting process's executable, walked like a directory */
	__u32 exe_len;
	__u32 args_len; /* its argv, NUL separated, cut at ARGS_BYTES */
	char comm[COMM_BYTES];
};

#endif
