/* SPDX-License-Identifier: GPL-2.0 */
/* What differs between the architectures the programs are built for. bpf2go compiles every
 * program once per target (-target amd64,arm64) and defines __TARGET_ARCH_x86 or
 * __TARGET_ARCH_arm64, which bpf_tracing.h reads to pick its PT_REGS_* registers.
 *
 * vmlinux.h is x86-64's (scripts/gen-vmlinux.sh reads the BTF of a running kernel, and none
 * of this project's machines is arm64). CO-RE relocates the fields of kernel structs by name
 * against the running kernel's BTF, so the same header serves arm64 for everything but the
 * registers, which the two architectures name differently: those are declared here, from the
 * arm64 kernel's headers, for the arm64 build only. Include after vmlinux.h and
 * bpf_tracing.h.
 *
 * Provides:
 *   struct user_pt_regs       (arm64) what a uprobe's context is; bpf_tracing.h's
 *                             PT_REGS_PARMn and BPF_KPROBE read its regs[]
 *   syscall_nr(regs)          the number of the syscall a task is in, from the pt_regs
 *                             bpf_task_pt_regs returns
 *   PT_REGS_PARMn_CORE_SYSCALL(regs)  (bpf_tracing.h) its arguments
 *   NR_read ... NR_recvmsg    the syscall numbers the programs compare it with
 */
#ifndef CRUMBS_ARCH_H
#define CRUMBS_ARCH_H

#if defined(__TARGET_ARCH_arm64)

/* arch/arm64/include/uapi/asm/ptrace.h. A stable ABI: read at fixed offsets, not
 * relocated. */
struct user_pt_regs {
	__u64 regs[31];
	__u64 sp;
	__u64 pc;
	__u64 pstate;
};

/* arch/arm64/include/asm/ptrace.h: struct pt_regs after the user registers. Only the field
 * read is declared; CO-RE finds it in the running kernel's struct pt_regs. */
struct pt_regs___crumbs_arm64 {
	__s32 syscallno;
} __attribute__((preserve_access_index));

#define syscall_nr(regs) ((long)BPF_CORE_READ((struct pt_regs___crumbs_arm64 *)(regs), syscallno))

/* include/uapi/asm-generic/unistd.h */
#define NR_read 63
#define NR_readv 65
#define NR_sendto 206
#define NR_recvfrom 207
#define NR_sendmsg 211
#define NR_recvmsg 212

#elif defined(__TARGET_ARCH_x86)

#define syscall_nr(regs) ((long)BPF_CORE_READ((regs), orig_ax))

/* arch/x86/entry/syscalls/syscall_64.tbl */
#define NR_read 0
#define NR_readv 19
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47

#else
#error "crumbs' BPF programs are built for x86-64 and arm64: bpf2go -target amd64,arm64"
#endif

#endif /* CRUMBS_ARCH_H */
