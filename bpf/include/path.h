/* Walking a dentry up to the current task's root, crossing mounts, one bpf_loop step at a
 * time. The walk is the one bpf/file.bpf.c does (its walk_step), split so that the part
 * that needs no map lives here and each program copies the names into its own scratch:
 *
 *	static long step(__u32 k, void *arg)
 *	{
 *		struct path_walk *w = arg;
 *
 *		if (path_walk_up(w) != PATH_WALK_NAME)
 *			return w->status != PATH_WALK_RUNNING;
 *		... copy the name at w->name into the program's scratch, at w->off ...
 *		path_walk_next(w, bytes_copied);
 *		return 0;
 *	}
 *
 * path_walk_init sets the walk up; bpf_loop(depth, step, &w, 0) runs it; w.status says how
 * it ended. Components are copied leaf first, each NUL terminated; the root gives none.
 *
 * bpf/file.bpf.c still carries its own copy (its owner may move it onto this header). */
#ifndef CRUMBS_PATH_H
#define CRUMBS_PATH_H

enum path_walk_status {
	PATH_WALK_RUNNING = 0,
	PATH_WALK_ROOT = 1,     /* reached the task's root: the path is complete */
	PATH_WALK_DETACHED = 2, /* reached a root that is not the task's (outside a chroot, a
				 * detached mount, a pseudo file such as a memfd) */
	PATH_WALK_CUT = 3,      /* a name did not fit or could not be read */
};

/* Results of path_walk_up. */
#define PATH_WALK_STOP 0    /* w->status says why */
#define PATH_WALK_CROSSED 1 /* moved to the parent mount: call again */
#define PATH_WALK_NAME 2    /* w->name is the next component to copy */

/* path_walk carries a walk across bpf_loop steps. The field offsets are relocated by
 * path_walk_init, in the caller, and kept here: the callback has no CO-RE relocations,
 * which cilium/ebpf does not apply to bpf_loop callbacks reliably. */
struct path_walk {
	void *dentry;
	void *vfsmnt;
	void *mnt;
	void *root_d;
	void *root_m;
	void *parent;              /* set by path_walk_up for PATH_WALK_NAME */
	const unsigned char *name; /* set by path_walk_up for PATH_WALK_NAME */
	__u32 start;               /* first byte of this path in the caller's buffer */
	__u32 off;                 /* next free byte */
	__u32 status;
	/* offsets */
	__u32 mnt_root, d_parent, d_name_name, mnt_parent, mnt_mountpoint, mount_mnt;
};

static __always_inline void *path_read_ptr(void *base, __u32 off)
{
	void *p = NULL;

	bpf_probe_read_kernel(&p, sizeof(p), base + off);
	return p;
}

/* path_walk_init sets w up to walk dentry on vfsmnt to task's root, writing from off. */
static __always_inline void path_walk_init(struct path_walk *w, struct task_struct *task,
					   struct dentry *dentry, struct vfsmount *vfsmnt, __u32 off)
{
	__builtin_memset(w, 0, sizeof(*w));
	w->dentry = dentry;
	w->vfsmnt = vfsmnt;
	w->mnt = (void *)vfsmnt - bpf_core_field_offset(struct mount, mnt);
	w->root_d = BPF_CORE_READ(task, fs, root.dentry);
	w->root_m = BPF_CORE_READ(task, fs, root.mnt);
	w->start = off;
	w->off = off;
	w->mnt_root = bpf_core_field_offset(struct vfsmount, mnt_root);
	w->d_parent = bpf_core_field_offset(struct dentry, d_parent);
	w->d_name_name = bpf_core_field_offset(struct dentry, d_name) + bpf_core_field_offset(struct qstr, name);
	w->mnt_parent = bpf_core_field_offset(struct mount, mnt_parent);
	w->mnt_mountpoint = bpf_core_field_offset(struct mount, mnt_mountpoint);
	w->mount_mnt = bpf_core_field_offset(struct mount, mnt);
}

/* path_walk_up takes one step up: it stops at a root, crosses to the parent mount at a
 * mount's root, or names the component to copy next. */
static __always_inline int path_walk_up(struct path_walk *w)
{
	void *parent, *mnt_root, *up;

	if (!w->dentry || !w->vfsmnt) {
		w->status = PATH_WALK_CUT;
		return PATH_WALK_STOP;
	}
	if (w->dentry == w->root_d && w->vfsmnt == w->root_m) {
		w->status = PATH_WALK_ROOT;
		return PATH_WALK_STOP;
	}
	mnt_root = path_read_ptr(w->vfsmnt, w->mnt_root);
	parent = path_read_ptr(w->dentry, w->d_parent);
	if (w->dentry != mnt_root && w->dentry != parent) {
		w->parent = parent;
		w->name = path_read_ptr(w->dentry, w->d_name_name);
		return PATH_WALK_NAME;
	}
	if (w->dentry != mnt_root) {
		/* A dentry that is its own parent but no mount's root: a pseudo file. */
		w->status = PATH_WALK_DETACHED;
		return PATH_WALK_STOP;
	}
	up = path_read_ptr(w->mnt, w->mnt_parent);
	if (up == w->mnt || !up) {
		w->status = PATH_WALK_DETACHED;
		return PATH_WALK_STOP;
	}
	w->dentry = path_read_ptr(w->mnt, w->mnt_mountpoint);
	w->mnt = up;
	w->vfsmnt = up + w->mount_mnt;
	return PATH_WALK_CROSSED;
}

/* path_walk_next records that n bytes (the name and its NUL) were copied at w->off. */
static __always_inline void path_walk_next(struct path_walk *w, __u32 n)
{
	w->off += n;
	w->dentry = w->parent;
}

#endif
