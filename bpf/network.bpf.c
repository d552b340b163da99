// SPDX-License-Identifier: GPL-2.0
/* Network: TCP connection lifecycles, listening sockets, UDP flow summaries and DNS
 * responses, written to the "events" ring buffer as the records of network.h (UDP flows
 * are summed in the "udp_flows" map, which user space drains). Reserve or output failures
 * (ring buffer full) are counted per CPU in "drops".
 *
 * Attribution: the process that owns a TCP socket is recorded in "conns" (keyed by the
 * struct sock's address) when it connects (SYN_SENT, in the connect call) or accepts (the
 * accept call's return), so establishment and close, which often run in softirq context,
 * are attributed to it. No kprobes or fentry: tracepoints, tp_btf and iterators only. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

#include "arch.h" /* syscall_nr, NR_*: the syscalls whose arguments the UDP programs read */
#include "network.h"
#include "wakeup.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define DNS_PORT 53

/* Set by the loader before load. */
volatile const __u32 self_tgid = 0; /* this process's sockets are not reported */
volatile const __u8 dns_enabled = 1;
/* Connections are first reported by announce_conns once established this long (ns); one
 * that closes sooner gets one record for its whole life. 0: reported when established. */
volatile const __u64 coalesce_ns = 0;
/* Set by user space before each run of announce_conns (CLOCK_BOOTTIME, ns). */
volatile __u64 announce_before = 0;
/* Set by the loader before load: a connection that closes within the coalesce window is
 * added to tcp_summaries instead of being reported by a record of its own. */
volatile const __u8 summarize = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22); /* replaced by the loader */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

/* Connections a full conns map could not take, counted so user space can report them. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} conns_full SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); /* replaced by the loader: max_connections */
	__type(key, __u64);
	__type(value, struct conn_info);
} conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536); /* replaced by the loader: max_connections */
	__type(key, struct udp_key);
	__type(value, struct udp_flow);
} udp_flows SEC(".maps");

/* The short connections summed since user space last took the summaries out. User space
 * keeps two such maps and swaps them in the one slot of tcp_summaries: the kernel waits for
 * the programs running at a swap to finish before the swap returns, so the map swapped out
 * has no writer left, and user space reads it whole and empties it. An empty slot (not
 * summarizing, or stopping) has each connection reported by its own record. */
struct tcp_summary_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536); /* replaced by the loader: max_connections */
	__type(key, struct tcp_summary_key);
	__type(value, struct tcp_summary);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct tcp_summary_map);
} tcp_summaries SEC(".maps");

/* udp_recv_pending carries an unconnected UDP receive from sock_recv_length, where the
 * socket is known, to the syscall's exit, where the sender's address has been copied out. */
struct udp_recv {
	__u64 addr;    /* user pointer to the sockaddr the kernel fills */
	__u64 buf;     /* user pointer to the first buffer */
	__u64 buf_len; /* its length */
	__u16 family;
	__u16 local_port;
	__u32 _pad;
	__u8 local_addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* thread id */
	__type(value, struct udp_recv);
} udp_recv_pending SEC(".maps");

struct dns_scratch {
	struct dns_event hdr;
	__u8 data[DNS_MAX_BYTES];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dns_scratch);
} dns_scratch SEC(".maps");

/* Keep the record types in BTF so bpf2go can generate Go types for them. */
const struct conn_event *unused_conn_event __attribute__((unused));
const struct dns_event *unused_dns_event __attribute__((unused));
const struct tcp_summary_key *unused_tcp_summary_key __attribute__((unused));
const struct tcp_summary *unused_tcp_summary __attribute__((unused));
const enum net_event_kind *unused_kind __attribute__((unused));
const enum net_direction *unused_direction __attribute__((unused));
const enum net_report *unused_report __attribute__((unused));

static __always_inline void count(void *map)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(map, &zero);

	if (n)
		*n += 1; /* per-CPU slot */
}

static __always_inline bool is_self(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == self_tgid;
}

/* A sock's fields are read in two ways. A sock the verifier knows, as a tp_btf program's
 * argument, is read by direct loads (SK_DIRECT), which cost next to nothing: these programs run
 * on every TCP state change. Any other (found through a file descriptor, or a map key) goes
 * through bpf_probe_read_kernel, a helper call per field (SK_PROBE). */
#define SK_DIRECT(sk, field) ((sk)->field)
#define SK_PROBE(sk, field) BPF_CORE_READ(sk, field)

/* TUPLE fills t (zeroed) from the socket sk's own addresses and ports, read with GET. */
#define TUPLE(sk, t, GET)                                                                          \
	do {                                                                                       \
		__u16 family_ = GET(sk, __sk_common.skc_family);                                   \
		__u32 *s_ = (__u32 *)(t)->saddr, *d_ = (__u32 *)(t)->daddr;                        \
		(t)->family = family_;                                                             \
		(t)->sport = GET(sk, __sk_common.skc_num);                                         \
		(t)->dport = bpf_ntohs(GET(sk, __sk_common.skc_dport));                            \
		if (family_ == AF_INET6) {                                                         \
			s_[0] = GET(sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[0]);          \
			s_[1] = GET(sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[1]);          \
			s_[2] = GET(sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[2]);          \
			s_[3] = GET(sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[3]);          \
			d_[0] = GET(sk, __sk_common.skc_v6_daddr.in6_u.u6_addr32[0]);              \
			d_[1] = GET(sk, __sk_common.skc_v6_daddr.in6_u.u6_addr32[1]);              \
			d_[2] = GET(sk, __sk_common.skc_v6_daddr.in6_u.u6_addr32[2]);              \
			d_[3] = GET(sk, __sk_common.skc_v6_daddr.in6_u.u6_addr32[3]);              \
		} else {                                                                           \
			s_[0] = GET(sk, __sk_common.skc_rcv_saddr);                                \
			d_[0] = GET(sk, __sk_common.skc_daddr);                                    \
		}                                                                                  \
	} while (0)

/* read_tuple fills t from the socket's own addresses and ports; sk is a tp_btf argument. */
static __always_inline void read_tuple(struct sock *sk, struct tuple *t)
{
	__builtin_memset(t, 0, sizeof(*t));
	TUPLE(sk, t, SK_DIRECT);
}

/* probe_tuple is read_tuple for any other sock. */
static __always_inline void probe_tuple(struct sock *sk, struct tuple *t)
{
	__builtin_memset(t, 0, sizeof(*t));
	TUPLE(sk, t, SK_PROBE);
}

static __always_inline void fill_owner(struct conn_info *ci)
{
	__u64 ugid = bpf_get_current_uid_gid();

	ci->pid = bpf_get_current_pid_tgid() >> 32;
	ci->uid = (__u32)ugid;
	ci->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(ci->comm, sizeof(ci->comm));
}

/* DATA_BYTES sets sent and received to the data bytes the TCP socket sk (tp, the same as a
 * tcp_sock) in state has had acknowledged and has received, read with GET.
 * tcp_sock.bytes_acked and bytes_received count sequence space, which also holds the SYN
 * (acknowledged to the side that connected) and each side's FIN: those are taken out, so
 * the counts are what the applications sent and received. */
#define DATA_BYTES(sk, tp, state, direction, sent, received, GET)                                  \
	do {                                                                                       \
		__u64 acked_ = GET(tp, bytes_acked);                                               \
		__u64 rcvd_ = GET(tp, bytes_received);                                             \
		unsigned long flags_ = GET(sk, __sk_common.skc_flags);                             \
		bool fin_queued_ = (state) == TCP_FIN_WAIT1 || (state) == TCP_FIN_WAIT2 ||         \
				   (state) == TCP_CLOSING || (state) == TCP_LAST_ACK;              \
		if ((direction) == NET_DIR_OUTBOUND && acked_ > 0)                                 \
			acked_--;                                                                  \
		if (fin_queued_ && acked_ > 0 && GET(tp, snd_una) == GET(tp, write_seq))           \
			acked_--;                                                                  \
		/* SOCK_DONE: tcp_fin saw the peer's FIN, which bytes_received then counts. */     \
		if ((flags_ & (1UL << bpf_core_enum_value(enum sock_flags, SOCK_DONE))) && rcvd_ > 0) \
			rcvd_--;                                                                   \
		*(sent) = acked_;                                                                  \
		*(received) = rcvd_;                                                               \
	} while (0)

/* data_bytes reads the data bytes of sk, a tp_btf argument. */
static __always_inline void data_bytes(struct sock *sk, int state, __u8 direction, __u64 *sent, __u64 *received)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);

	*sent = *received = 0;
	if (tp)
		DATA_BYTES(sk, tp, state, direction, sent, received, SK_DIRECT);
}

/* probe_data_bytes is data_bytes for any other TCP sock. */
static __always_inline void probe_data_bytes(struct sock *sk, int state, __u8 direction, __u64 *sent, __u64 *received)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;

	DATA_BYTES(sk, tp, state, direction, sent, received, SK_PROBE);
}

/* write_conn fills e, a record of kind for the connection sock owned by ci, at ktime. */
static __always_inline void write_conn(struct conn_event *e, __u32 kind, __u64 sock, struct conn_info *ci, __u64 ktime)
{
	e->kind = kind;
	e->pid = ci->pid;
	e->ktime_ns = ktime;
	e->sock_id = sock;
	e->cgroup_id = ci->cgroup_id;
	e->start_ns = ci->start_ns;
	e->uid = ci->uid;
	e->direction = ci->direction;
	e->closed = 0;
	e->stale = 0;
	e->_pad = 0;
	e->bytes_sent = 0;
	e->bytes_received = 0;
	__builtin_memcpy(&e->t, &ci->t, sizeof(e->t));
	__builtin_memcpy(e->comm, ci->comm, sizeof(e->comm));
}

static __always_inline __u32 open_kind(struct conn_info *ci)
{
	return ci->direction == NET_DIR_INBOUND ? NET_EVENT_ACCEPT : NET_EVENT_CONNECT;
}

/* emit_conn writes a record of kind for sk owned by ci, now. */
static __always_inline void emit_conn(__u32 kind, struct sock *sk, struct conn_info *ci)
{
	struct conn_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count(&drops);
		return;
	}
	write_conn(e, kind, (__u64)sk, ci, bpf_ktime_get_boot_ns());
	bpf_ringbuf_submit(e, wakeup_flags(&events, sizeof(*e)));
}

/* add_to_summary adds the connection ci, closed at now with these final bytes, to its entry
 * of the summaries in the slot of tcp_summaries; false when there is none (the slot is empty,
 * or the map is full), and the connection is to be reported by itself. */
static __always_inline bool add_to_summary(struct conn_info *ci, __u64 now, __u64 sent, __u64 received)
{
	struct tcp_summary_key k = {};
	struct tcp_summary *s;
	__u32 zero = 0;
	void *m = bpf_map_lookup_elem(&tcp_summaries, &zero);

	if (!m)
		return false;
	k.pid = ci->pid;
	k.direction = ci->direction;
	k.family = ci->t.family;
	k.port = ci->direction == NET_DIR_INBOUND ? ci->t.sport : ci->t.dport;
	__builtin_memcpy(k.addr, ci->t.daddr, sizeof(k.addr));
	s = bpf_map_lookup_elem(m, &k);
	if (!s) {
		struct tcp_summary init = {};

		init.first_ns = ci->start_ns;
		init.last_ns = now;
		init.cgroup_id = ci->cgroup_id;
		init.uid = ci->uid;
		__builtin_memcpy(init.local_addr, ci->t.saddr, sizeof(init.local_addr));
		__builtin_memcpy(init.comm, ci->comm, sizeof(init.comm));
		/* Another CPU may enter the same key meanwhile: then both add to its entry. */
		bpf_map_update_elem(m, &k, &init, BPF_NOEXIST);
		s = bpf_map_lookup_elem(m, &k);
		if (!s)
			return false;
	}
	__sync_fetch_and_add(&s->connections, 1);
	__sync_fetch_and_add(&s->bytes_sent, sent);
	__sync_fetch_and_add(&s->bytes_received, received);
	/* The span is kept without atomics: it may miss a few ns of a connection racing on
	 * another CPU; the counts above are exact. */
	if (ci->start_ns < s->first_ns)
		s->first_ns = ci->start_ns;
	if (now > s->last_ns)
		s->last_ns = now;
	return true;
}

/* emit_last writes the last record of the connection sock owned by ci: its close, or, when
 * it was never reported, its connect or accept marked closed. Either carries the final bytes,
 * read from sk, closing from state; or, when sk is NULL because the close was not seen, the
 * bytes of the last refresh, and the record is marked stale. With summarize, a connection
 * never reported that closes within the coalesce window is added to its summary instead: no
 * one else can have reported it, as open connections are announced (by announce_conns, or
 * by user space walking conns) only once older than the window. */
static __always_inline void emit_last(__u64 sock, struct conn_info *ci, struct sock *sk, int state)
{
	__u32 was = __sync_lock_test_and_set(&ci->reported, REPORT_CLOSED);
	struct conn_event *e;
	__u64 now, sent = 0, received = 0;

	if (was == REPORT_CLOSED)
		return;
	now = bpf_ktime_get_boot_ns();
	if (sk)
		data_bytes(sk, state, ci->direction, &sent, &received);
	if (summarize && was == REPORT_NONE && sk && now - ci->start_ns < coalesce_ns &&
	    add_to_summary(ci, now, sent, received))
		return;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(&drops);
		return;
	}
	write_conn(e, was == REPORT_NONE ? open_kind(ci) : NET_EVENT_CLOSE, sock, ci, now);
	e->closed = was == REPORT_NONE;
	if (sk) {
		e->bytes_sent = sent;
		e->bytes_received = received;
	} else {
		e->stale = 1;
		e->bytes_sent = ci->bytes_sent;
		e->bytes_received = ci->bytes_received;
	}
	bpf_ringbuf_submit(e, wakeup_flags(&events, sizeof(*e)));
}

#define EEXIST 17

/* track enters info as the connection of the sock at key. An established connection already
 * there is one whose close was not seen, the sock's memory holding a new connection now: its
 * last record is written first. */
static __always_inline bool track(__u64 key, struct conn_info *info)
{
	long err = bpf_map_update_elem(&conns, &key, info, BPF_NOEXIST);

	if (err == -EEXIST) {
		struct conn_info *old = bpf_map_lookup_elem(&conns, &key);

		if (old && old->established)
			emit_last(key, old, NULL, 0);
		err = bpf_map_update_elem(&conns, &key, info, BPF_ANY);
	}
	if (err < 0) {
		count(&conns_full);
		return false;
	}
	return true;
}

/* established completes ci, whose tuple is read and whose socket is now connected or
 * accepted. */
static __always_inline void established(struct conn_info *ci)
{
	ci->start_ns = bpf_ktime_get_boot_ns();
	ci->sport = ci->t.sport;
	ci->reported = coalesce_ns ? REPORT_NONE : REPORT_OPEN;
	asm volatile("" ::: "memory"); /* the iterator reads established first */
	ci->established = 1;
}

static __always_inline void on_set_state(struct sock *sk, int oldstate, int newstate)
{
	__u64 key = (__u64)sk;
	struct conn_info *ci;

	switch (newstate) {
	case TCP_SYN_SENT: {
		/* In the connect call: the current task owns the socket. */
		struct conn_info info = {};

		if (is_self())
			return;
		fill_owner(&info);
		info.direction = NET_DIR_OUTBOUND;
		track(key, &info);
		return;
	}
	case TCP_ESTABLISHED:
		ci = bpf_map_lookup_elem(&conns, &key);
		if (!ci)
			return;
		read_tuple(sk, &ci->t);
		established(ci);
		if (!coalesce_ns)
			emit_conn(NET_EVENT_CONNECT, sk, ci);
		return;
	case TCP_LISTEN: {
		/* In the listen call. */
		struct conn_info info = {};

		if (is_self())
			return;
		fill_owner(&info);
		info.start_ns = bpf_ktime_get_boot_ns();
		read_tuple(sk, &info.t);
		emit_conn(NET_EVENT_LISTEN, sk, &info);
		return;
	}
	case TCP_CLOSE:
		ci = bpf_map_lookup_elem(&conns, &key);
		if (!ci)
			return;
		if (ci->established)
			emit_last(key, ci, sk, oldstate);
		bpf_map_delete_elem(&conns, &key);
		return;
	}
}

/* interesting is whether a state change is one on_set_state acts on: it runs for every
 * change of every TCP socket, and most are not. */
static __always_inline bool interesting(struct sock *sk, int oldstate, int newstate)
{
	switch (newstate) {
	case TCP_SYN_SENT:
	case TCP_LISTEN:
	case TCP_CLOSE:
		break;
	case TCP_ESTABLISHED:
		if (oldstate != TCP_SYN_SENT)
			return false;
		break;
	default:
		return false;
	}
	return sk->sk_protocol == IPPROTO_TCP;
}

/* A tracing program does not run while it is already running on the same CPU: a state
 * change in softirq that interrupts handle_set_state (in a connect, listen or close call)
 * would be lost. handle_set_state_nested, a second program on the same tracepoint, handles
 * exactly those: it acts only while handle_set_state is marked busy on its CPU, which is
 * only the case when it interrupted it (softirqs do not nest, and tracepoint programs run
 * with preemption disabled). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} set_state_busy SEC(".maps");

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(handle_set_state, struct sock *sk, int oldstate, int newstate)
{
	__u32 zero = 0;
	__u32 *busy = bpf_map_lookup_elem(&set_state_busy, &zero);

	/* Busy from the first instruction to the last, whether this change is of interest or
	 * not: the kernel skips this program for the whole of its run. */
	if (!busy)
		return 0;
	*busy = 1;
	if (interesting(sk, oldstate, newstate))
		on_set_state(sk, oldstate, newstate);
	*busy = 0;
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(handle_set_state_nested, struct sock *sk, int oldstate, int newstate)
{
	__u32 zero = 0;
	__u32 *busy;

	if (!interesting(sk, oldstate, newstate))
		return 0;
	busy = bpf_map_lookup_elem(&set_state_busy, &zero);
	if (busy && *busy)
		on_set_state(sk, oldstate, newstate);
	return 0;
}

/* sock_of_fd returns the struct sock behind the current task's file descriptor fd. */
static __always_inline struct sock *sock_of_fd(int fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file **fds = BPF_CORE_READ(task, files, fdt, fd);
	unsigned int max = BPF_CORE_READ(task, files, fdt, max_fds);
	struct file *f = NULL;
	struct socket *sock;

	if (fd < 0 || (unsigned int)fd >= max)
		return NULL;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) < 0 || !f)
		return NULL;
	sock = BPF_CORE_READ(f, private_data);
	if (!sock)
		return NULL;
	return BPF_CORE_READ(sock, sk);
}

static __always_inline int on_accept(long ret)
{
	struct conn_info info = {};
	struct sock *sk;
	__u64 key;

	if (ret < 0 || is_self())
		return 0;
	sk = sock_of_fd((int)ret);
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	/* Closed before it was accepted: no TCP_CLOSE will come to remove the entry. */
	if (BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_CLOSE)
		return 0;
	key = (__u64)sk;
	fill_owner(&info);
	info.direction = NET_DIR_INBOUND;
	probe_tuple(sk, &info.t);
	established(&info);
	if (!track(key, &info))
		return 0;
	if (!coalesce_ns)
		emit_conn(NET_EVENT_ACCEPT, sk, &info);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int handle_accept4(struct trace_event_raw_sys_exit *ctx)
{
	return on_accept(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int handle_accept(struct trace_event_raw_sys_exit *ctx)
{
	return on_accept(ctx->ret);
}

/* Two jobs run when user space asks (it reads an iterator): refreshing the byte counters of
 * open connections in their conns entries, for periodic updates, and announcing the
 * connections established before announce_before and not yet reported. Both run over the
 * conns map (iter/bpf_map_elem), which sees every connection. For kernels that refuse
 * map-element iterators, refreshing runs over TCP sockets too (iter/tcp: those of crumbs'
 * network namespace, each looked up in conns), and user space announces connections from
 * its own walk of conns (collectors/network), which needs no socket. */

/* refresh copies the data bytes of sk, the connection ci's socket at key, into ci. A sock
 * freed since (its entry not yet removed) or holding another connection now no longer has
 * the stored port and is left alone. */
static __always_inline void refresh(__u64 key, struct conn_info *ci)
{
	struct sock *sk = (struct sock *)key;

	if (!ci->established || BPF_CORE_READ(sk, __sk_common.skc_num) != ci->sport)
		return;
	probe_data_bytes(sk, BPF_CORE_READ(sk, __sk_common.skc_state), ci->direction, &ci->bytes_sent, &ci->bytes_received);
}

/* announce writes the connect or accept record of ci, the connection at key, when it was
 * established before announce_before and is not reported yet. The record is reserved before
 * the connection is claimed, so that a close that finds it claimed writes its record after
 * this one. A full ring buffer leaves the connection for the next run (or its close). */
static __always_inline void announce(__u64 key, struct conn_info *ci)
{
	struct conn_event *e;

	if (!ci->established || ci->reported != REPORT_NONE || ci->start_ns > announce_before)
		return;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return;
	if (__sync_val_compare_and_swap(&ci->reported, REPORT_NONE, REPORT_OPEN) != REPORT_NONE) {
		bpf_ringbuf_discard(e, BPF_RB_NO_WAKEUP);
		return;
	}
	write_conn(e, open_kind(ci), key, ci, ci->start_ns);
	bpf_ringbuf_submit(e, wakeup_flags(&events, sizeof(*e)));
}

SEC("iter/bpf_map_elem")
int refresh_bytes(struct bpf_iter__bpf_map_elem *ctx)
{
	__u64 *key = ctx->key;
	struct conn_info *ci = ctx->value;

	if (key && ci)
		refresh(*key, ci);
	return 0;
}

SEC("iter/bpf_map_elem")
int announce_conns(struct bpf_iter__bpf_map_elem *ctx)
{
	__u64 *key = ctx->key;
	struct conn_info *ci = ctx->value;

	if (key && ci)
		announce(*key, ci);
	return 0;
}

/* tracked returns the conns entry of the full TCP socket skc, and its key. */
static __always_inline struct conn_info *tracked(struct sock_common *skc, __u64 *key)
{
	struct tcp_sock *tp;

	if (!skc)
		return NULL;
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return NULL; /* a request or time-wait socket */
	*key = (__u64)tp; /* the struct sock's address: the tcp_sock starts with it */
	return bpf_map_lookup_elem(&conns, key);
}

SEC("iter/tcp")
int refresh_bytes_tcp(struct bpf_iter__tcp *ctx)
{
	__u64 key = 0;
	struct conn_info *ci = tracked(ctx->sk_common, &key);

	if (ci)
		refresh(key, ci);
	return 0;
}

/* ---- UDP ---- */

/* read_sockaddr reads a user sockaddr_in or sockaddr_in6 into family, port and addr. */
static __always_inline bool read_sockaddr(const void *uaddr, struct udp_key *k)
{
	struct sockaddr_in6 sa = {};

	if (!uaddr || bpf_probe_read_user(&sa, sizeof(struct sockaddr_in), uaddr) < 0)
		return false;
	if (sa.sin6_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&sa;

		k->family = AF_INET;
		k->port = bpf_ntohs(in->sin_port);
		__builtin_memcpy(k->addr, &in->sin_addr, 4);
		return true;
	}
	if (sa.sin6_family != AF_INET6 || bpf_probe_read_user(&sa, sizeof(sa), uaddr) < 0)
		return false;
	k->family = AF_INET6;
	k->port = bpf_ntohs(sa.sin6_port);
	__builtin_memcpy(k->addr, &sa.sin6_addr, 16);
	return true;
}

/* peer_of fills k with the connected peer of sk; false when sk is not connected. */
static __always_inline bool peer_of(struct sock *sk, struct udp_key *k)
{
	struct tuple t = {};

	read_tuple(sk, &t);
	if (t.dport == 0)
		return false;
	k->family = t.family;
	k->port = t.dport;
	__builtin_memcpy(k->addr, t.daddr, 16);
	return true;
}

static __always_inline void account_udp(struct udp_key *k, __u16 local_port, const __u8 *local_addr,
					__u64 bytes, bool sent)
{
	struct udp_flow *f = bpf_map_lookup_elem(&udp_flows, k);

	if (!f) {
		struct udp_flow init = {};
		__u64 ugid = bpf_get_current_uid_gid();

		init.first_ns = bpf_ktime_get_boot_ns();
		init.cgroup_id = bpf_get_current_cgroup_id();
		init.uid = (__u32)ugid;
		init.local_port = local_port;
		__builtin_memcpy(init.local_addr, local_addr, 16);
		init.direction = sent ? NET_DIR_OUTBOUND : NET_DIR_INBOUND;
		bpf_get_current_comm(init.comm, sizeof(init.comm));
		bpf_map_update_elem(&udp_flows, k, &init, BPF_NOEXIST);
		f = bpf_map_lookup_elem(&udp_flows, k);
		if (!f)
			return;
	}
	f->last_ns = bpf_ktime_get_boot_ns();
	if (sent) {
		__sync_fetch_and_add(&f->bytes_sent, bytes);
		__sync_fetch_and_add(&f->packets_sent, 1);
	} else {
		__sync_fetch_and_add(&f->bytes_received, bytes);
		__sync_fetch_and_add(&f->packets_received, 1);
	}
}

static __always_inline bool is_udp(struct sock *sk)
{
	__u16 family;

	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_UDP)
		return false;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	return family == AF_INET || family == AF_INET6;
}

static __always_inline struct pt_regs *syscall_regs(void)
{
	return (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
}

/* sock_send_length runs for every send on a socket, in the sending task: the destination
 * is the sendto/sendmsg address when there is one, else the connected peer. */
SEC("tp_btf/sock_send_length")
int BPF_PROG(handle_send_length, struct sock *sk, int ret, int flags)
{
	struct udp_key k = {};
	struct tuple t = {};
	struct pt_regs *regs;
	const void *uaddr = NULL;
	long nr;

	if (ret <= 0 || !is_udp(sk) || is_self())
		return 0;
	regs = syscall_regs();
	nr = syscall_nr(regs);
	if (nr == NR_sendto) {
		uaddr = (const void *)PT_REGS_PARM5_CORE_SYSCALL(regs);
	} else if (nr == NR_sendmsg) {
		struct user_msghdr *msg = (struct user_msghdr *)PT_REGS_PARM2_CORE_SYSCALL(regs);
		void *name = NULL;

		bpf_probe_read_user(&name, sizeof(name), &msg->msg_name);
		uaddr = name;
	}
	if (!read_sockaddr(uaddr, &k) && !peer_of(sk, &k))
		return 0;
	k.pid = bpf_get_current_pid_tgid() >> 32;
	read_tuple(sk, &t);
	account_udp(&k, t.sport, t.saddr, ret, true);
	return 0;
}

/* first_buffer returns the user buffer the receive syscall nr filled, and its length. */
static __always_inline __u64 first_buffer(struct pt_regs *regs, long nr, __u64 *len)
{
	struct iovec iov = {};

	switch (nr) {
	case NR_read:
	case NR_recvfrom:
		*len = PT_REGS_PARM3_CORE_SYSCALL(regs);
		return PT_REGS_PARM2_CORE_SYSCALL(regs);
	case NR_readv: {
		bpf_probe_read_user(&iov, sizeof(iov), (void *)PT_REGS_PARM2_CORE_SYSCALL(regs));
		break;
	}
	case NR_recvmsg: {
		struct user_msghdr *msg = (struct user_msghdr *)PT_REGS_PARM2_CORE_SYSCALL(regs);
		struct iovec *first = NULL;

		bpf_probe_read_user(&first, sizeof(first), &msg->msg_iov);
		if (first)
			bpf_probe_read_user(&iov, sizeof(iov), first);
		break;
	}
	}
	*len = iov.iov_len;
	return (__u64)iov.iov_base;
}

/* emit_dns copies the first bytes of a DNS response from the user buffer. */
static __always_inline void emit_dns(struct udp_key *peer, __u16 family, __u16 local_port,
				     const __u8 *local_addr, __u64 buf, __u64 buf_len, __u32 size)
{
	struct dns_scratch *s;
	__u32 zero = 0;
	__u64 n = size, ugid;

	if (!dns_enabled || !buf)
		return;
	s = bpf_map_lookup_elem(&dns_scratch, &zero);
	if (!s)
		return;
	if (n > buf_len)
		n = buf_len;
	if (n > DNS_MAX_BYTES)
		n = DNS_MAX_BYTES;
	n &= (DNS_MAX_BYTES << 1) - 1;
	if (n > DNS_MAX_BYTES || n == 0)
		return;
	if (bpf_probe_read_user(s->data, n, (void *)buf) < 0)
		return;
	ugid = bpf_get_current_uid_gid();
	s->hdr.kind = NET_EVENT_DNS;
	s->hdr.pid = bpf_get_current_pid_tgid() >> 32;
	s->hdr.ktime_ns = bpf_ktime_get_boot_ns();
	s->hdr.cgroup_id = bpf_get_current_cgroup_id();
	s->hdr.uid = (__u32)ugid;
	s->hdr.len = n;
	s->hdr.size = size;
	s->hdr._pad = 0;
	__builtin_memset(&s->hdr.t, 0, sizeof(s->hdr.t));
	s->hdr.t.family = family;
	s->hdr.t.sport = peer->port;
	s->hdr.t.dport = local_port;
	__builtin_memcpy(s->hdr.t.saddr, peer->addr, 16);
	__builtin_memcpy(s->hdr.t.daddr, local_addr, 16);
	bpf_get_current_comm(s->hdr.comm, sizeof(s->hdr.comm));
	if (bpf_ringbuf_output(&events, s, sizeof(s->hdr) + n, output_wakeup_flags(&events, sizeof(s->hdr) + n)) < 0)
		count(&drops);
}

/* sock_recv_length runs for every receive on a socket, in the receiving task. A connected
 * socket's peer is known here; an unconnected one's sender is known only once the syscall
 * copied it out, so that case finishes at the syscall's exit. */
SEC("tp_btf/sock_recv_length")
int BPF_PROG(handle_recv_length, struct sock *sk, int ret, int flags)
{
	struct udp_key k = {};
	struct pt_regs *regs;
	struct tuple t = {};
	long nr;

	if (ret <= 0 || !is_udp(sk) || is_self())
		return 0;
	regs = syscall_regs();
	nr = syscall_nr(regs);
	read_tuple(sk, &t);
	if (peer_of(sk, &k)) {
		k.pid = bpf_get_current_pid_tgid() >> 32;
		account_udp(&k, t.sport, t.saddr, ret, 0);
		if (k.port == DNS_PORT) {
			__u64 len = 0, buf = first_buffer(regs, nr, &len);

			emit_dns(&k, t.family, t.sport, t.saddr, buf, len, ret);
		}
		return 0;
	}
	if (nr == NR_recvfrom || nr == NR_recvmsg) {
		struct udp_recv r = {};
		__u32 tid = (__u32)bpf_get_current_pid_tgid();

		r.family = t.family;
		r.local_port = t.sport;
		__builtin_memcpy(r.local_addr, t.saddr, 16);
		r.buf = first_buffer(regs, nr, &r.buf_len);
		if (nr == NR_recvfrom) {
			r.addr = PT_REGS_PARM5_CORE_SYSCALL(regs);
		} else {
			struct user_msghdr *msg = (struct user_msghdr *)PT_REGS_PARM2_CORE_SYSCALL(regs);
			void *name = NULL;

			bpf_probe_read_user(&name, sizeof(name), &msg->msg_name);
			r.addr = (__u64)name;
		}
		bpf_map_update_elem(&udp_recv_pending, &tid, &r, BPF_ANY);
	}
	return 0;
}

static __always_inline int on_recv_exit(long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct udp_recv *r = bpf_map_lookup_elem(&udp_recv_pending, &tid);
	struct udp_key k = {};

	if (!r)
		return 0;
	if (ret > 0 && read_sockaddr((const void *)r->addr, &k)) {
		k.pid = bpf_get_current_pid_tgid() >> 32;
		account_udp(&k, r->local_port, r->local_addr, ret, 0);
		if (k.port == DNS_PORT)
			emit_dns(&k, r->family, r->local_port, r->local_addr, r->buf, r->buf_len, ret);
	}
	bpf_map_delete_elem(&udp_recv_pending, &tid);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_recvfrom")
int handle_recvfrom_exit(struct trace_event_raw_sys_exit *ctx)
{
	return on_recv_exit(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_recvmsg")
int handle_recvmsg_exit(struct trace_event_raw_sys_exit *ctx)
{
	return on_recv_exit(ctx->ret);
}
