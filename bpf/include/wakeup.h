/* SPDX-License-Identifier: GPL-2.0 */
/* Ring buffer wake-ups shared by the collectors' programs.
 *
 * By default the kernel wakes the reader for every record written while the reader waits:
 * under a storm of events that is a context switch per event, on the CPUs the workload runs
 * on. The collectors set wakeup_bytes instead: a record wakes the reader when the data
 * waiting in the ring crosses a multiple of wakeup_bytes, and the reader looks at the ring on
 * its own every 100 ms (kernel.PollInterval), so a record waits at most that long. Waking at
 * each crossing rather than for every record above the mark matters when the reader falls
 * behind: each forced wake-up is an interrupt on the writing CPU. (Records written side by
 * side on two CPUs may both miss a crossing; the next one is a sixteenth of the ring later.)
 * 0 keeps the kernel's way. */
#pragma once

volatile const __u64 wakeup_bytes = 0;

/* A record takes its size and an 8-byte header in the ring. */
#define RING_HEADER_BYTES 8

static __always_inline __u64 wakeup_crossing(__u64 before, __u64 after)
{
	return before / wakeup_bytes != after / wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

/* wakeup_flags gives bpf_ringbuf_submit its flags for a reserved record of size bytes. */
static __always_inline __u64 wakeup_flags(void *ring, __u64 size)
{
	__u64 after;

	if (!wakeup_bytes)
		return 0;
	after = bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA);
	size += RING_HEADER_BYTES;
	return wakeup_crossing(after > size ? after - size : 0, after);
}

/* output_wakeup_flags gives bpf_ringbuf_output its flags for a record of size bytes. */
static __always_inline __u64 output_wakeup_flags(void *ring, __u64 size)
{
	__u64 before;

	if (!wakeup_bytes)
		return 0;
	before = bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA);
	return wakeup_crossing(before, before + size + RING_HEADER_BYTES);
}
