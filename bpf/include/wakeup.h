/* SPDX-License-Identifier: GPL-2.0 */
/* Ring buffer wake-ups shared by the collectors' programs.
 *
 * By default the kernel wakes the reader for every record written while the reader waits:
 * under a storm of events that is a context switch per event, on the CPUs the workload runs
 * on. The collectors set wakeup_bytes instead: a record wakes the reader only once that much
 * data is waiting, and the reader looks at the ring on its own every 100 ms
 * (kernel.PollInterval), so a record waits at most that long. 0 keeps the kernel's way. */
#pragma once

volatile const __u64 wakeup_bytes = 0;

static __always_inline __u64 wakeup_flags(void *ring)
{
	if (!wakeup_bytes)
		return 0;
	return bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}
